"""Time the views' inventory queries on the previous implementation and this one, interleaved in one process.

Run: git archive edd2311 | tar -x -C /tmp/old-bagboard   (the commit before issue 14)
     .venv/bin/python bench/compare_inventory_versions.py --old-tree /tmp/old-bagboard [--objects 1000000]

Both inventories are built from the same synthetic listing; each query runs on the old and the new service in turn,
so machine load hits both alike. Reports the median and p95 per query kind and the ratio old / new.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from cachelib import SimpleCache

from bench.bench_inventory import build_snapshot, synthetic_listing


class _NoBucket:
    url = "none://"

    def iter_objects(self, *_: Any, **__: Any) -> Any:
        raise AssertionError("no listing in this benchmark")


def old_service(old_tree: Path, objects: int, seed: int, work: Path) -> Any:
    """Build the old parquet snapshot with the old module and return its service, loaded."""
    spec = importlib.util.spec_from_file_location("old_inventory", old_tree / "src" / "services" / "inventory.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules["old_inventory"] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    path = work / "old.parquet"
    inventory = module.build_inventory(synthetic_listing(objects, seed), built_at=datetime.now(UTC))
    module.write_snapshot(inventory, path)
    del inventory
    service = module.CloudInventoryService(_NoBucket(), _NoBucket(), path, SimpleCache(), refresh_on_query=False)
    service.load()
    return service


def main() -> None:
    """Build both, then time each query kind on both, alternating."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-tree", type=Path, required=True)
    parser.add_argument("--objects", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--queries", type=int, default=60)
    args = parser.parse_args()

    from src.models.coordinate import FILTER_LEVELS
    from src.services.data_state import DataStateService
    from src.services.inventory import CloudInventoryService
    from src.services.local_state import LocalStateService

    work = Path(tempfile.mkdtemp(prefix="bench-compare-"))
    pointer = work / "new" / "snapshot.json"
    build_snapshot(args.objects, args.seed, pointer)
    new = CloudInventoryService(_NoBucket(), _NoBucket(), pointer, SimpleCache(), refresh_on_query=False)
    new.load()
    old = old_service(args.old_tree, args.objects, args.seed, work)
    local = LocalStateService(work / "root")
    states = {"old": DataStateService(old, local, 17), "new": DataStateService(new, local, 17)}
    services = {"old": old, "new": new}

    index = new.load().index
    rng = np.random.default_rng(args.seed)
    paths = [
        tuple(index.values[d][index.codes[d][i]] for d in range(6)) for i in rng.integers(0, index.n_runs, args.queries)
    ]
    depths = rng.integers(0, len(FILTER_LEVELS) + 1, args.queries)

    def filters(path: tuple[str, ...], depth: int) -> dict[str, str]:
        return dict(zip(FILTER_LEVELS, path[:depth], strict=False))

    kinds = {
        "coverage report, no filter": lambda who, p, d: states[who].get_coverage_report({}, 17, 50.0),
        "coverage report, random depth": lambda who, p, d: states[who].get_coverage_report(filters(p, d), 17, 50.0),
        "download manager table, random depth": lambda who, p, d: states[who].get_state_summary(filters(p, d), 1000),
        "filter options, random depth": lambda who, p, d: states[who].get_filter_options(
            FILTER_LEVELS[min(d, 4)], filters(p, min(d, 4))
        ),
        "per-run raw objects": lambda who, p, d: services[who].get_raw_objects("/".join(p)),
        "per-run ML samples": lambda who, p, d: services[who].get_ml_samples_info("/".join(p)),
    }
    print(f"{args.objects:,} objects, {index.n_runs:,} runs; {args.queries} queries per kind, old and new alternating")
    print(f"{'query':<40} {'old median / p95':>20} {'new median / p95':>20} {'old/new (median)':>17}")
    for name, call in kinds.items():
        times: dict[str, list[float]] = {"old": [], "new": []}
        for who in ("old", "new"):
            call(who, paths[0], int(depths[0]))  # warm caches (categories, memos) once
        for path, depth in zip(paths, depths, strict=True):
            for who in ("old", "new"):
                t0 = time.perf_counter()
                call(who, path, int(depth))
                times[who].append((time.perf_counter() - t0) * 1000)
        o, n = times["old"], times["new"]
        ratio = statistics.median(o) / statistics.median(n)
        print(
            f"{name:<40} {statistics.median(o):>9.2f} / {np.percentile(o, 95):>6.2f} ms"
            f" {statistics.median(n):>9.2f} / {np.percentile(n, 95):>6.2f} ms {ratio:>16.2f}x"
        )


if __name__ == "__main__":
    main()
