"""Plan and run the upload of one local ML export, then record it in the tracking file."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from src.jobs.base import JobContext, JobError
from src.models import HIERARCHY_LEVELS, RunCoordinate, validate_part
from src.services.local_state import ExportTrackingError, parse_tracking
from src.services.operations.files import (
    Digest,
    check_inside,
    file_digest,
    file_lock,
    is_hidden_or_inflight,
    needs_md5,
    same_content,
    write_json_atomic,
)
from src.services.operations.plans import Action, FileAction, UploadPlan, UploadResult
from src.services.operations.transfer import Progress, one_line, run_parallel, storage_job_error
from src.storage.base import Bucket, ObjectInfo, PreconditionFailed, StorageError, validate_key

if TYPE_CHECKING:
    from src.services.operations.service import CloudOperationService

log = structlog.get_logger(__name__)
LABEL = "ML"


@dataclass(frozen=True)
class _Item:
    """One planned file: its local path, object name and digest."""

    action: FileAction
    path: Path
    digest: Digest


@dataclass
class _Tally:
    """What the upload workers did, shared between threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    uploaded: int = 0
    identical: int = 0
    bytes: int = 0
    conflicts: list[FileAction] = field(default_factory=list)


def validate_export_id(export_id: str) -> str:
    """Return export_id if it is a safe single path segment, else raise JobError."""
    try:
        return validate_part("export_id", export_id)
    except ValueError as err:
        raise JobError(f"invalid export id {export_id!r}: {err}") from None


def plan(svc: CloudOperationService, export_id: str, policy: str) -> tuple[UploadPlan, list[_Item]]:
    """Compare every file of the export with the ML bucket and decide per file."""
    export_id = validate_export_id(export_id)
    try:
        svc.local.get_export_info(export_id)  # a corrupt tracking file must stop us before any upload
    except ExportTrackingError as err:
        raise JobError(one_line(str(err))) from err
    export_dir = svc.local.exports_root / export_id
    if export_dir.is_symlink():
        raise JobError(f"export {export_id} is a symlink at {export_dir}; links are never followed")
    if not export_dir.is_dir():
        raise JobError(f"export {export_id} has no directory at {export_dir}")
    check_inside(export_dir, svc.data_root, verb="read")
    files = list(_export_files(export_dir))
    if not files:
        raise JobError(f"export {export_id} has no files in {export_dir}")
    mapped: list[tuple[str, Path]] = []
    unmapped: list[str] = []
    for rel, path in files:
        if _maps_to_run(rel):
            mapped.append((rel, path))
        else:
            unmapped.append(rel)
    remote = _remote_objects(svc.ml_bucket, sorted({_run_of(rel) for rel, _ in mapped}), svc.max_workers)
    actions: list[FileAction] = []
    items: list[_Item] = []
    for rel, path in mapped:
        try:
            digest = file_digest(path)
        except OSError as err:
            raise JobError(f"cannot read {path}: {err.strerror or err}") from err
        verb, reason, digest = _decide(path, digest, remote.get(rel), svc.ml_bucket, policy)
        action = FileAction(rel, digest.size, verb, reason)
        actions.append(action)
        items.append(_Item(action, path, digest))
    for rel in unmapped:
        size = (export_dir / rel).stat().st_size
        actions.append(FileAction(rel, size, "skip", "not below a valid run coordinate; never uploaded"))
    result = UploadPlan(
        source=str(export_dir),
        target=svc.ml_bucket.url,
        conflict_resolution=policy,
        files=actions,
        export_id=export_id,
        unmapped=unmapped,
    )
    return result, items


def _export_files(export_dir: Path) -> Iterator[tuple[str, Path]]:
    """Yield (relative '/' name, path) of regular files, sorted; dot names, in-flight files and links skipped."""
    for directory, dirnames, filenames in os.walk(export_dir, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        base = Path(directory)
        rel_dir = base.relative_to(export_dir).as_posix()
        for name in sorted(filenames):
            path = base / name
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            # A symlink could point anywhere; uploading its target could leak files from outside.
            if is_hidden_or_inflight(rel) or path.is_symlink() or not path.is_file():
                continue
            yield rel, path


def _maps_to_run(rel: str) -> bool:
    """Tell whether rel lies below a valid run coordinate and is a safe object key."""
    parts = rel.split("/")
    if len(parts) <= len(HIERARCHY_LEVELS):
        return False
    try:
        RunCoordinate(*parts[: len(HIERARCHY_LEVELS)])
        validate_key(rel)
    except ValueError:
        return False
    return True


def _run_of(rel: str) -> str:
    """Return the coordinate path of a mapped name."""
    return "/".join(rel.split("/")[: len(HIERARCHY_LEVELS)])


def _remote_objects(bucket: Bucket, runs: list[str], max_workers: int) -> dict[str, ObjectInfo]:
    """List what the bucket already holds under each run, in parallel; key by object name."""

    def list_run(run: str) -> list[ObjectInfo]:
        return list(bucket.iter_objects(run + "/", parallel=False))  # one small listing per run

    try:
        with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(runs) or 1))) as pool:
            return {info.name: info for infos in pool.map(list_run, runs) for info in infos}
    except StorageError as err:
        raise storage_job_error(err, LABEL, bucket) from err


def _decide(
    path: Path, digest: Digest, remote: ObjectInfo | None, bucket: Bucket, policy: str
) -> tuple[Action, str, Digest]:
    """Decide what to do with one local file given the object of the same name (if any)."""
    if remote is None:
        return "upload", "not in the bucket", digest
    if remote.size == digest.size:
        reference = remote
        if not (remote.crc32c or remote.md5):
            try:
                reference = bucket.stat(remote.name)  # local listings carry no checksum
            except StorageError as err:
                raise storage_job_error(err, LABEL, bucket, remote.name) from err
        if needs_md5(reference):
            digest = file_digest(path, md5=True)
        if same_content(digest, reference):
            return "skip", "already in the bucket with the same content", digest
    if policy == "overwrite":
        return "overwrite", "differs in the bucket; will be replaced", digest
    return "conflict", "differs in the bucket; left untouched (choose overwrite to replace it)", digest


def execute(svc: CloudOperationService, export_id: str, policy: str, ctx: JobContext) -> UploadResult:
    """Upload the export's new (or, with overwrite, different) files and record a complete upload."""
    upload_plan, items = plan(svc, export_id, policy)
    export_id = upload_plan.export_id
    check_inside(svc.local.tracking_path, svc.data_root)
    todo = [item for item in items if item.action.transfers]
    tally = _Tally(identical=sum(1 for item in items if item.action.action == "skip"))
    progress = Progress(ctx, files_total=len(todo), bytes_total=sum(item.digest.size for item in todo))
    progress.start(f"uploading {len(todo)} file(s) of export {export_id}")

    def push(item: _Item) -> None:
        _upload_one(svc.ml_bucket, item, tally, progress)
        progress.add_bytes(item.digest.size)
        progress.file_done(f"uploaded {item.action.name}")

    try:
        run_parallel(todo, push, svc.max_workers, progress)
    finally:
        if tally.uploaded:
            # The bucket changed even if a later file failed: list what we wrote and merge it in.
            written = sorted({_run_of(item.action.name) for item in todo})
            progress.log(f"refreshing the inventory of {len(written)} run(s) written")
            _refresh_written(svc, export_id, written)
    conflicts = upload_plan.conflicts + tally.conflicts
    for conflict in conflicts:
        ctx.log(f"not uploaded {conflict.name}: {conflict.reason}")
    complete = not conflicts and not upload_plan.unmapped
    uploaded_at = None
    if complete:
        uploaded_at = _utc_stamp()
        mark_uploaded(svc.local.tracking_path, export_id, _default_entry(upload_plan), uploaded_at)
    log.info("ml_upload_done", export_id=export_id, uploaded=tally.uploaded, conflicts=len(conflicts))
    return UploadResult(
        export_id=export_id,
        destination=svc.ml_bucket.url,
        files_uploaded=tally.uploaded,
        files_identical=tally.identical,
        bytes_uploaded=tally.bytes,
        conflicts=conflicts,
        unmapped=upload_plan.unmapped,
        uploaded=complete,
        tracking_updated=complete,
        uploaded_at=uploaded_at,
    )


def _refresh_written(svc: CloudOperationService, export_id: str, runs: list[str]) -> None:
    """Re-list only the runs the upload wrote; mark the inventory stale when that cannot happen now."""
    try:
        # Skipped (None) while another refresh runs: that one may have listed before our files landed.
        refreshed = svc.inventory.refresh_if_idle(prefixes=runs)
    except Exception as err:  # a listing or the refresh process failed: a later full refresh catches up
        log.warning("upload_inventory_refresh_failed", export_id=export_id, error=one_line(str(err)))
        refreshed = None
    if refreshed is None:
        _mark_stale(svc, export_id)
    else:
        log.info("upload_inventory_refreshed", export_id=export_id, runs=len(runs))


def _mark_stale(svc: CloudOperationService, export_id: str) -> None:
    """Tell the inventory the ML bucket changed; a cache failure must not hide the upload's own outcome."""
    try:
        svc.inventory.mark_stale(f"ml upload {export_id}")
    except Exception as err:  # the shared cache is down: the next scheduled refresh still catches up
        log.warning("mark_stale_failed", export_id=export_id, error=one_line(str(err)))


def _upload_one(bucket: Bucket, item: _Item, tally: _Tally, progress: Progress) -> None:
    """Upload one file; a refused 'must not exist' upload is fine when the remote copy is identical."""
    name = item.action.name
    try:
        bucket.upload(item.path, name, overwrite=item.action.action == "overwrite")
    except PreconditionFailed:
        # Our own earlier (retried or interrupted) upload, or someone else's: compare contents.
        try:
            remote = bucket.stat(name)
        except StorageError as err:
            raise storage_job_error(err, LABEL, bucket, name) from err
        digest = file_digest(item.path, md5=True) if needs_md5(remote) else item.digest
        with tally.lock:
            if same_content(digest, remote):
                tally.identical += 1
                progress.log(f"{name} is already in the bucket with the same content")
            else:
                reason = "appeared in the bucket with different content while uploading; left untouched"
                tally.conflicts.append(FileAction(name, item.digest.size, "conflict", reason))
        return
    except StorageError as err:
        raise storage_job_error(err, LABEL, bucket, name) from err
    except OSError as err:
        raise JobError(f"cannot read {item.path}: {err.strerror or err}") from err
    with tally.lock:
        tally.uploaded += 1
        tally.bytes += item.digest.size


def _default_entry(upload_plan: UploadPlan) -> dict[str, Any]:
    """Return a tracking entry for an export nobody recorded, built from what was uploaded."""
    runs = sorted({_run_of(f.name) for f in upload_plan.files if _maps_to_run(f.name)})
    samples = sum(1 for f in upload_plan.files if f.name.lower().endswith((".jpg", ".jpeg", ".png")))
    return {
        "created_at": None,
        "source": None,
        "coordinates": runs,
        "sample_count": samples,
        "uploaded": False,
        "uploaded_at": None,
    }


def mark_uploaded(tracking_path: Path, export_id: str, default: dict[str, Any], uploaded_at: str) -> None:
    """Set uploaded/uploaded_at of one export in the tracking file; other exports stay as they are.

    Read-modify-write happens under an flock on a hidden lock file next to it, and the new file
    replaces the old atomically, so concurrent jobs never lose each other's updates.
    """
    tracking_path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(tracking_path.with_name(f"{tracking_path.name}.lock")):
        try:
            parse_tracking(tracking_path)  # validates; names the file when it is corrupt
        except ExportTrackingError as err:
            raise JobError(one_line(str(err))) from err
        try:
            data: dict[str, Any] = json.loads(tracking_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            data = {}
        entry = dict(data.get(export_id) or default)
        entry.update(uploaded=True, uploaded_at=uploaded_at)
        data[export_id] = entry
        try:
            write_json_atomic(tracking_path, json.dumps(data, indent=2, sort_keys=True) + "\n")
        except OSError as err:
            raise JobError(f"cannot write {tracking_path}: {err.strerror or err}") from err


def _utc_stamp() -> str:
    """Return now in UTC as an ISO string ending in Z, like the tracking file's created_at."""
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
