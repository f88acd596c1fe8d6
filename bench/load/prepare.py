"""Prepare data roots for the load test: cached dataset templates and a fresh working root per run.

A template holds the data that is slow to make (the seeded demo buckets, the 1M-object snapshot) plus
`hierarchy.json`, the distinct filter paths of its inventory. Templates are built once in a subprocess (the
synthetic build needs ~2 GB that the client process should not keep) and cached under the temp dir by name.
Each run then gets a fresh working root: bucket files and the snapshot hard-linked from the template, and a new
cache dir (so login-throttle counters never carry over), users file and job registry.

Run alone to (re)build a template: .venv/bin/python bench/load/prepare.py demo|synthetic [--force]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = Path(tempfile.gettempdir()) / "bagboard-bench-load"
DATASETS = ("demo", "synthetic")
DEMO_SIZE, SEED, SYNTHETIC_OBJECTS = "small", 7, 1_000_000
HIERARCHY_FILE, META_FILE = "hierarchy.json", "template.json"
# Whatever is under these is only read by the server in this benchmark, so hard links are safe. The snapshot is
# replaced atomically (temp file + rename) when rewritten, which never touches the linked inode.
LINKED = ("buckets", "inventory")
FINISHED_JOBS = (("complete", 14), ("failed", 4), ("cancelled", 2))


@dataclass(frozen=True)
class WorkingRoot:
    """A data root ready for one server: where it is, who may sign in, and the filter paths."""

    path: Path
    users: list[tuple[str, str]]
    hierarchy: list[list[str]]
    meta: dict[str, Any]


def template_dir(dataset: str) -> Path:
    """Return the cache directory of a dataset's template."""
    key = f"demo-{DEMO_SIZE}-seed{SEED}" if dataset == "demo" else f"synthetic-{SYNTHETIC_OBJECTS}-seed{SEED}"
    return CACHE_DIR / key


def ensure_template(dataset: str, force: bool = False) -> Path:
    """Return the dataset's template, building it in a subprocess when missing (or when forced)."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose from {DATASETS}")
    target = template_dir(dataset)
    if (target / META_FILE).exists() and not force:
        return target
    t0 = time.perf_counter()
    print(f"building the {dataset} template in {target} (cached for later runs) ...", flush=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), dataset, "--build-only"]
    subprocess.run(cmd, cwd=ROOT, check=True, env=clean_env())
    print(f"  built in {time.perf_counter() - t0:.0f} s", flush=True)
    return target


def clean_env(**extra: str) -> dict[str, str]:
    """Return this environment without BAGBOARD_* / GUNICORN_* variables, plus extra."""
    # A variable the caller happened to export must not change which data root or buckets the server uses.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BAGBOARD_", "GUNICORN_"))}
    env.update(extra)
    return env


def build_template(dataset: str) -> None:
    """Build the template into a temp dir next to its final place, then rename it in."""
    target = template_dir(dataset)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        meta = build_demo(staging) if dataset == "demo" else build_synthetic(staging)
        write_hierarchy(staging, meta)
        (staging / META_FILE).write_text(json.dumps(meta, indent=2))
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def build_demo(root: Path) -> dict[str, Any]:
    """Seed the small demo into root with the app's own CLI, as a developer would."""
    env = clean_env(
        BAGBOARD_ENV="development",
        BAGBOARD_DATA_ROOT=str(root),
        # The seed command refreshes the inventory itself; a second, background refresh would race with it.
        BAGBOARD_INVENTORY_REFRESH_ON_START="false",
        BAGBOARD_LOG_FORMAT="console",
        BAGBOARD_LOG_LEVEL="WARNING",
    )
    flask = Path(sys.executable).with_name("flask")
    cmd = [str(flask), "--app", "app", "demo", "seed", "--size", DEMO_SIZE, "--seed", str(SEED)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"demo seed failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    # The demo/demo admin exists only in development and every run makes its own users, cache and jobs.
    for name in ("users.json", "jobs.sqlite3", "jobs.sqlite3-wal", "jobs.sqlite3-shm"):
        (root / name).unlink(missing_ok=True)
    shutil.rmtree(root / "cache", ignore_errors=True)
    return {"dataset": "demo", "size": DEMO_SIZE, "seed": SEED, "seed_output": done.stdout.strip().splitlines()}


def build_synthetic(root: Path) -> dict[str, Any]:
    """Link bench_coverage's cached 1M-object snapshot (built on first use) into root, with empty buckets."""
    sys.path.insert(0, str(ROOT))
    # bench_coverage sets BAGBOARD_* for its own module-level app on import; harmless in this throwaway process.
    from bench.bench_coverage import cached_snapshot, link_tree

    snapshot, how = cached_snapshot(SYNTHETIC_OBJECTS, SEED)
    link_tree(snapshot.parent, root / "inventory")
    for bucket in ("raw", "ml"):
        (root / "buckets" / bucket).mkdir(parents=True)
    return {"dataset": "synthetic", "objects": SYNTHETIC_OBJECTS, "seed": SEED, "snapshot": str(snapshot), "how": how}


def write_hierarchy(root: Path, meta: dict[str, Any]) -> None:
    """Write the inventory's distinct filter paths (cid … lbid), which the virtual users pick selections from."""
    sys.path.insert(0, str(ROOT))
    from src.models import FILTER_LEVELS
    from src.services.inventory import read_snapshot

    inventory = read_snapshot(root / "inventory" / "snapshot.json")
    runs = inventory.runs[list(FILTER_LEVELS)].astype(str).drop_duplicates()
    paths = sorted(runs.itertuples(index=False, name=None))
    (root / HIERARCHY_FILE).write_text(json.dumps({"levels": list(FILTER_LEVELS), "paths": paths}))
    meta.update(
        runs=int(inventory.run_count),
        objects=inventory.object_count,
        timestamps=int(inventory.runs["timestamp"].nunique()),
        leaf_paths=len(paths),
    )


def link_or_copy(source: Path, target: Path) -> None:
    """Hard-link source to target, copying when the file systems differ."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def link_file(source: str, target: str) -> str:
    """Hard-link (else copy) one file for shutil.copytree."""
    link_or_copy(Path(source), Path(target))
    return target


def working_root(dataset: str, users: int, shared_user: bool, jobs: bool = True) -> WorkingRoot:
    """Return a fresh data root for one server run: linked data, new users, seeded finished jobs, no cache."""
    template = ensure_template(dataset)
    root = Path(tempfile.mkdtemp(prefix=f"run-{dataset}-", dir=CACHE_DIR))
    for item in template.iterdir():
        if item.name in (HIERARCHY_FILE, META_FILE):
            continue
        if item.is_dir():
            shutil.copytree(item, root / item.name, copy_function=link_file if item.name in LINKED else shutil.copy2)
        else:
            shutil.copy2(item, root / item.name)
    credentials = add_users(root, 1 if shared_user else users)
    if jobs:
        seed_jobs(root, credentials[0][0])
    hierarchy = json.loads((template / HIERARCHY_FILE).read_text())["paths"]
    meta = json.loads((template / META_FILE).read_text())
    return WorkingRoot(root, credentials, hierarchy, meta)


def add_users(root: Path, count: int) -> list[tuple[str, str]]:
    """Create count operators with random passwords in root's users file; return (name, password) pairs."""
    sys.path.insert(0, str(ROOT))
    from src.auth.roles import Role
    from src.auth.users import UserStore

    store = UserStore(root / "users.json")
    credentials = []
    for i in range(count):
        name, password = f"load{i:03d}", secrets.token_urlsafe(18)
        store.add(name, password, Role.OPERATOR)  # operators see the Cancel buttons, the heavier job rows
        credentials.append((name, password))
    return credentials


def seed_jobs(root: Path, started_by: str) -> None:
    """Write finished jobs into the registry, so job polling renders real rows (no job ever runs)."""
    sys.path.insert(0, str(ROOT))
    from src.jobs.base import JobKind
    from src.jobs.registry import open_registry
    from src.models.status import ProcessingStatus

    registry = open_registry(root)
    try:
        n = 0
        for status, count in FINISHED_JOBS:
            for _ in range(count):
                n += 1
                target = f"customer0/region0/field0/tw0/lb0/run{n:03d}"
                job, _ = registry.create(JobKind.DOWNLOAD, target, {}, started_by)
                registry.start(job.id)
                registry.update_progress(job.id, files_done=3, files_total=4, bytes_done=3_000, bytes_total=4_000)
                error = "disk full (seeded by the load test)" if status == "failed" else None
                registry.finish(job.id, ProcessingStatus(status), message="seeded", error=error)
    finally:
        registry.close()


def remove_root(root: WorkingRoot) -> None:
    """Delete a working root (the template's linked files stay)."""
    shutil.rmtree(root.path, ignore_errors=True)


def main() -> None:
    """Build a template (the subprocess side of ensure_template, or by hand)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=DATASETS)
    parser.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--force", action="store_true", help="rebuild even when cached")
    args = parser.parse_args()
    if args.build_only:
        build_template(args.dataset)
        return
    print(ensure_template(args.dataset, force=args.force))


if __name__ == "__main__":
    main()
