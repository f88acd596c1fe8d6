"""Plan and fetch a named dataset: the samples and labels of a filter selection plus a manifest."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import structlog

from src.jobs.base import JobContext, JobError
from src.models import FILTER_LEVELS, HIERARCHY_LEVELS, RunCoordinate, validate_part
from src.services.operations.files import (
    Digest,
    check_inside,
    fsync_dir,
    is_hidden_or_inflight,
    make_dirs,
    remove_tree,
    try_dir_lock,
    write_json_atomic,
)
from src.services.operations.plans import DatasetPlan, DatasetResult, DatasetRun, FileAction
from src.services.operations.transfer import Progress, fetch_verified, run_parallel, storage_job_error
from src.storage.base import ObjectInfo, StorageError, validate_key

if TYPE_CHECKING:
    from src.services.operations.service import CloudOperationService

log = structlog.get_logger(__name__)

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MANIFEST_NAME = "manifest.json"
SAMPLES_DIR = "samples"
SAMPLE_SUFFIXES = (".jpg", ".jpeg", ".png")
LABEL_SUFFIXES = (".json", ".txt")
SPLIT_METHOD = "sha256 of the sample path below samples/ as a fraction in [0, 1); < train_fraction is train"


@dataclass(frozen=True)
class _Item:
    """One file to fetch: the object, its path in the dataset, kind and split."""

    action: FileAction
    info: ObjectInfo
    run: str
    kind: str  # "sample" or "label"
    split: str | None
    sample: str | None  # for a label: the dataset path of its image


def validate_dataset_name(name: object) -> str:
    """Return name if it is a safe dataset name, else raise JobError saying why."""
    try:
        validate_part("dataset name", name)
    except ValueError as err:
        raise JobError(f"invalid dataset name {name!r}: {err}") from None
    assert isinstance(name, str)
    if not NAME_PATTERN.fullmatch(name):
        raise JobError(
            f"invalid dataset name {name!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def validate_filters(filters: Mapping[str, str | None] | None) -> dict[str, str]:
    """Return the selection as a validated prefix of cid/regionid/fieldid/twid/lbid, else raise JobError."""
    given = {key: value for key, value in (filters or {}).items() if value not in (None, "")}
    unknown = sorted(set(given) - set(FILTER_LEVELS))
    if unknown:
        raise JobError(f"unknown filter level(s) {', '.join(unknown)}; use {', '.join(FILTER_LEVELS)}")
    clean: dict[str, str] = {}
    for level in FILTER_LEVELS:
        if level not in given:
            break
        try:
            clean[level] = validate_part(level, given[level])
        except ValueError as err:
            raise JobError(f"invalid filter: {err}") from None
    if len(clean) != len(given):
        missing = FILTER_LEVELS[len(clean)]
        raise JobError(f"filters must be a prefix of {'/'.join(FILTER_LEVELS)}: {missing} is missing")
    return clean


def validate_split(split: float | None) -> float | None:
    """Return the train fraction (0 to 1) or None; raise JobError otherwise."""
    if split is None:
        return None
    if isinstance(split, bool) or not isinstance(split, (int, float)) or not math.isfinite(split):
        raise JobError(f"split must be a train fraction between 0 and 1, got {split!r}")
    if not 0 <= split <= 1:
        raise JobError(f"split must be a train fraction between 0 and 1, got {split}")
    return float(split)


def split_of(sample_path: str, train_fraction: float) -> str:
    """Assign a sample to 'train' or 'val' by a hash of its path: stable across datasets and runs."""
    digest = hashlib.sha256(sample_path.encode("utf-8")).digest()
    return "train" if int.from_bytes(digest[:8], "big") / 2**64 < train_fraction else "val"


def plan(
    svc: CloudOperationService,
    name: str,
    filters: Mapping[str, str | None] | None,
    split: float | None,
    expected_samples_per_bag: int,
) -> tuple[DatasetPlan, list[_Item]]:
    """List the selection in the ML bucket and decide which files the dataset gets."""
    name = validate_dataset_name(name)
    clean = validate_filters(filters)
    train = validate_split(split)
    if expected_samples_per_bag <= 0:
        raise JobError("expected samples per bag must be positive")
    target = check_inside(svc.local.ml_root / "datasets" / name, svc.data_root)
    _refuse_existing(target, name)
    objects, ignored = _list_selection(svc, clean)
    bags = _bags_per_run(svc, clean)
    runs: list[DatasetRun] = []
    items: list[_Item] = []
    for run in sorted(set(objects) | set(bags)):
        run_items = _run_items(run, objects.get(run, {}), train)
        ignored += len(objects.get(run, {})) - len(run_items)
        samples = sum(1 for item in run_items if item.kind == "sample")
        expected = bags.get(run, 0) * expected_samples_per_bag
        runs.append(
            DatasetRun(
                coordinate=run,
                bags=bags.get(run, 0),
                samples=samples,
                labels=len(run_items) - samples,
                expected_samples=expected,
                coverage_pct=round(samples / expected * 100, 2) if expected else None,
                bytes=sum(item.info.size for item in run_items),
            )
        )
        items.extend(run_items)
    split_counts: dict[str, int] = {}
    if train is not None:
        split_counts = {"train": 0, "val": 0}
        for item in items:
            if item.kind == "sample" and item.split:
                split_counts[item.split] += 1
    result = DatasetPlan(
        source=svc.ml_bucket.url,
        target=str(target),
        conflict_resolution="refuse",  # an existing dataset is never merged into
        files=[item.action for item in items],
        name=name,
        filters=clean,
        split=train,
        expected_samples_per_bag=expected_samples_per_bag,
        runs=runs,
        split_counts=split_counts,
        ignored_objects=ignored,
    )
    return result, items


def _refuse_existing(target: Path, name: str) -> None:
    """Raise JobError when anything already has the dataset's name."""
    if os.path.lexists(target):
        raise JobError(f"dataset {name!r} already exists at {target}; choose another name or delete it first")


def _list_selection(
    svc: CloudOperationService, filters: dict[str, str]
) -> tuple[dict[str, dict[str, ObjectInfo]], int]:
    """Return the ML objects under the selection grouped by run (name below the run -> info), and a skip count."""
    prefix = "".join(value + "/" for value in filters.values())
    runs: dict[str, dict[str, ObjectInfo]] = {}
    ignored = 0
    try:
        for info in svc.ml_bucket.iter_objects(prefix):
            parts = info.name.split("/")
            if len(parts) <= len(HIERARCHY_LEVELS):
                ignored += 1
                continue
            rel = "/".join(parts[len(HIERARCHY_LEVELS) :])
            try:
                coord = RunCoordinate(*parts[: len(HIERARCHY_LEVELS)])
                validate_key(rel)
            except ValueError:
                ignored += 1
                continue
            if is_hidden_or_inflight(rel):
                ignored += 1
                continue
            runs.setdefault(coord.to_path_str(), {})[rel] = info
    except StorageError as err:
        raise storage_job_error(err, "ML", svc.ml_bucket) from err
    return runs, ignored


def _bags_per_run(svc: CloudOperationService, filters: dict[str, str]) -> dict[str, int]:
    """Return the raw bag count of each run under the selection, from the inventory."""
    frame = svc.inventory.get_runs(filters)
    if frame.empty:
        return {}
    paths = frame[list(HIERARCHY_LEVELS)].astype(str).agg("/".join, axis=1)
    return dict(zip(paths.tolist(), frame["raw_bags"].astype(int).tolist(), strict=True))


def _run_items(run: str, objects: dict[str, ObjectInfo], train: float | None) -> list[_Item]:
    """Pick the run's images and the label sidecars that belong to them; the sidecar follows its image."""
    images = sorted(rel for rel in objects if rel.lower().endswith(SAMPLE_SUFFIXES))
    by_dir_base: dict[tuple[str, str], str] = {}
    by_dir_stem: dict[tuple[str, str], str] = {}
    by_base: dict[str, str] = {}
    by_stem: dict[str, str] = {}
    for rel in images:  # sorted, so setdefault keeps the first image of an ambiguous stem
        path = PurePosixPath(rel)
        directory = str(path.parent)
        by_dir_base.setdefault((directory, path.name), rel)
        by_dir_stem.setdefault((directory, path.stem), rel)
        by_base.setdefault(path.name, rel)
        by_stem.setdefault(path.stem, rel)
    splits = {rel: split_of(f"{run}/{rel}", train) if train is not None else None for rel in images}
    items = [_item(run, rel, objects[rel], "sample", splits[rel], None) for rel in images]
    for rel in sorted(objects):
        if rel in splits or not rel.lower().endswith(LABEL_SUFFIXES):
            continue
        path = PurePosixPath(rel)
        key = (str(path.parent), path.stem)
        # 'a.png.json' names its image in full; 'a.json' by stem; same folder first, then anywhere in the run.
        image = by_dir_base.get(key) or by_dir_stem.get(key) or by_base.get(path.stem) or by_stem.get(path.stem)
        if image is not None:
            items.append(_item(run, rel, objects[rel], "label", splits[image], f"{SAMPLES_DIR}/{run}/{image}"))
    return items


def _item(run: str, rel: str, info: ObjectInfo, kind: str, split: str | None, sample: str | None) -> _Item:
    """Build one item with its plan entry."""
    reason = "sample" if sample is None else f"label of {sample.rsplit('/', 1)[-1]}"
    if split:
        reason += f" ({split})"
    action = FileAction(f"{SAMPLES_DIR}/{run}/{rel}", info.size, "download", reason)
    return _Item(action, info, run, kind, split, sample)


def execute(
    svc: CloudOperationService,
    name: str,
    filters: Mapping[str, str | None] | None,
    *,
    split: float | None,
    created_by: str,
    expected_samples_per_bag: int,
    ctx: JobContext,
) -> DatasetResult:
    """Fetch the selection into a hidden temp directory, write the manifest, then rename it into place."""
    dataset_plan, items = plan(svc, name, filters, split, expected_samples_per_bag)
    name = dataset_plan.name
    if not items:
        raise JobError(f"no samples under {_describe(dataset_plan.filters)}; nothing to fetch")
    root = make_dirs(svc.local.ml_root / "datasets", svc.data_root)
    _clear_stale_builds(root, name)
    tmp = check_inside(root / f".{name}.tmp-{secrets.token_hex(4)}", svc.data_root)
    tmp.mkdir()
    # The lock tells a later fetch of the same name that this build is alive, not a leftover.
    lock = try_dir_lock(tmp)
    try:
        progress = Progress(ctx, files_total=len(items), bytes_total=dataset_plan.bytes_to_transfer)
        progress.start(f"fetching {len(items)} file(s) into dataset {name}")
        for directory in sorted({(tmp / item.action.name).parent for item in items}):
            make_dirs(directory, svc.data_root)

        def fetch(item: _Item) -> Digest:
            digest = fetch_verified(
                svc.ml_bucket, "ML", item.info.name, tmp / item.action.name, item.info, progress, svc.slicing
            )
            progress.file_done(f"fetched {item.action.name}")
            return digest

        digests = run_parallel(items, fetch, svc.max_workers, progress)
        created_at = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
        manifest = _manifest(svc, dataset_plan, items, digests, created_by, created_at)
        write_json_atomic(tmp / MANIFEST_NAME, json.dumps(manifest, indent=2) + "\n")
        fsync_dir(tmp)
        final = root / name
        _refuse_existing(final, name)  # someone may have taken the name while we fetched
        os.rename(tmp, final)
        fsync_dir(root)
    except BaseException:
        remove_tree(tmp)
        raise
    finally:
        if lock is not None:
            os.close(lock)
    log.info("dataset_fetched", name=name, files=len(items), bytes=dataset_plan.bytes_to_transfer)
    samples = sum(run.samples for run in dataset_plan.runs)
    return DatasetResult(
        name=name,
        path=final,
        manifest_path=final / MANIFEST_NAME,
        created_at=created_at,
        runs=len(dataset_plan.runs),
        samples=samples,
        labels=len(items) - samples,
        files=len(items),
        bytes=dataset_plan.bytes_to_transfer,
        split_counts=dataset_plan.split_counts,
    )


def _clear_stale_builds(root: Path, name: str) -> None:
    """Delete temp directories of earlier, dead fetches of name; refuse if one is still running."""
    for entry in root.glob(f".{_glob_escape(name)}.tmp-*"):
        if entry.is_symlink() or not entry.is_dir():
            continue
        fd = try_dir_lock(entry)
        if fd is None:
            raise JobError(f"a fetch of dataset {name!r} is already running")
        try:
            remove_tree(entry)
        finally:
            os.close(fd)


def _glob_escape(text: str) -> str:
    """Escape glob metacharacters (dataset names allow none, but be safe)."""
    return re.sub(r"([*?\[])", r"[\1]", text)


def _manifest(
    svc: CloudOperationService,
    dataset_plan: DatasetPlan,
    items: list[_Item],
    digests: list[Digest],
    created_by: str,
    created_at: str,
) -> dict[str, Any]:
    """Describe the dataset: who, when, what selection, per run counts and coverage, per file checksums."""
    files_by_run: dict[str, list[dict[str, Any]]] = {}
    for item, digest in zip(items, digests, strict=True):
        entry: dict[str, Any] = {
            "path": item.action.name,
            "size": digest.size,
            "crc32c": digest.crc32c,
            "split": item.split,
            "kind": item.kind,
        }
        if item.sample is not None:
            entry["sample"] = item.sample
        files_by_run.setdefault(item.run, []).append(entry)
    runs = dataset_plan.runs
    return {
        "name": dataset_plan.name,
        "created_by": created_by,
        "created_at": created_at,
        "source": svc.ml_bucket.url,
        "filters": dataset_plan.filters,
        "split": None
        if dataset_plan.split is None
        else {"train_fraction": dataset_plan.split, "method": SPLIT_METHOD, "counts": dataset_plan.split_counts},
        "expected_samples_per_bag": dataset_plan.expected_samples_per_bag,
        "totals": {
            "runs": len(runs),
            "bags": sum(run.bags for run in runs),
            "samples": sum(run.samples for run in runs),
            "labels": sum(run.labels for run in runs),
            "files": len(items),
            "bytes": sum(digest.size for digest in digests),
        },
        "runs": [{**run.to_dict(), "files": files_by_run.get(run.coordinate, [])} for run in runs],
    }


def _describe(filters: dict[str, str]) -> str:
    """Describe a selection for messages."""
    return "/".join(filters.values()) if filters else "the whole ML bucket"
