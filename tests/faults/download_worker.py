"""A download worker the fault tests can SIGKILL: python -m tests.faults.download_worker ARGS.

Arguments: raw bucket URL, ML bucket URL, inventory snapshot path, data root, run coordinate, workers,
and optionally the slicing policy: threshold bytes, slice bytes, slices in flight.
The inventory is read from the snapshot (no listing); STORAGE_EMULATOR_HOST comes from the environment.
Prints "started" before the first byte moves and "done <files>" when the download completed.
"""

from __future__ import annotations

import sys
from pathlib import Path

from cachelib import SimpleCache

from src.services.inventory import CloudInventoryService
from src.services.local_state import LocalStateService
from src.services.operations import CloudOperationService
from src.services.operations.transfer import SlicePolicy
from src.storage import open_bucket


def main(argv: list[str]) -> int:
    """Download one run as the app's job handler would, with no job context."""
    raw_url, ml_url, snapshot, data_root, coordinate, workers, *slicing = argv
    policy = SlicePolicy(*map(int, slicing)) if slicing else SlicePolicy()
    raw, ml = open_bucket(raw_url), open_bucket(ml_url)
    inventory = CloudInventoryService(raw, ml, Path(snapshot), SimpleCache())
    if inventory.load() is None:
        print("no inventory snapshot", file=sys.stderr, flush=True)
        return 2
    root = Path(data_root)
    ops = CloudOperationService(
        inventory, LocalStateService(root), raw, ml, root, max_workers=int(workers), slicing=policy
    )
    print("started", flush=True)
    job = ops.execute_raw_download(coordinate)
    print(f"done {job.files_downloaded}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
