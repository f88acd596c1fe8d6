"""Plan and run the download of one run's raw objects into data_root/raw/{coord}."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from src.jobs.base import JobContext, JobError
from src.models import DownloadJob, ProcessingStatus, RunCoordinate
from src.services.operations.files import (
    check_inside,
    dir_lock,
    file_digest,
    is_hidden_or_inflight,
    make_dirs,
    needs_md5,
    prune_empty_dirs,
    remove_leftover_parts,
    same_content,
)
from src.services.operations.plans import Action, DownloadPlan, FileAction
from src.services.operations.transfer import Progress, fetch_verified, run_parallel, storage_job_error
from src.storage.base import Bucket, ObjectInfo, StorageError, validate_key

if TYPE_CHECKING:
    from src.services.operations.service import CloudOperationService

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class _Item:
    """One planned file with what executing it needs."""

    action: FileAction
    info: ObjectInfo
    final: Path


def plan(svc: CloudOperationService, coord: RunCoordinate, policy: str) -> tuple[DownloadPlan, list[_Item]]:
    """Compare the run's live raw objects with what is on disk and decide per file."""
    target = check_inside(svc.local.raw_path(coord), svc.data_root)
    prefix = coord.to_path_str() + "/"
    items: list[_Item] = []
    actions: list[FileAction] = []
    for info in sorted(svc.inventory.get_raw_objects(coord), key=lambda o: o.name):
        rel = info.name.removeprefix(prefix)
        try:
            validate_key(rel)
        except ValueError as err:
            actions.append(FileAction(rel, info.size, "skip", f"unsafe object name: {err}"))
            continue
        if is_hidden_or_inflight(rel):
            # Dot names are our temp files locally; in-flight objects are still being written.
            actions.append(FileAction(rel, info.size, "skip", "hidden or in-flight name, never downloaded"))
            continue
        final = check_inside(target.joinpath(*rel.split("/")), svc.data_root)
        verb, reason = decide(final, info, svc.raw_bucket, policy, "download")
        action = FileAction(rel, info.size, verb, reason)
        actions.append(action)
        items.append(_Item(action, info, final))
    result = DownloadPlan(
        source=svc.raw_bucket.url,
        target=str(target),
        conflict_resolution=policy,
        files=actions,
        coordinate=coord,
    )
    return result, items


def decide(final: Path, info: ObjectInfo, bucket: Bucket, policy: str, verb: Action) -> tuple[Action, str]:
    """Decide what to do with one object given the local file at final (if any)."""
    try:
        st = os.lstat(final)
    except FileNotFoundError:
        return verb, "missing locally"
    except NotADirectoryError:
        return "conflict", "a parent path is a file locally; never replaced"
    if not stat.S_ISREG(st.st_mode):
        return "conflict", "a directory or link is in its place locally; never replaced"
    if st.st_size == info.size:
        reference = info
        if not (info.crc32c or info.md5):
            try:
                reference = bucket.stat(info.name)  # local listings carry no checksum
            except StorageError as err:
                raise storage_job_error(err, "source", bucket, info.name) from err
        if same_content(file_digest(final, md5=needs_md5(reference)), reference):
            return "skip", "identical locally"
    if policy == "overwrite":
        return "overwrite", "differs locally; will be replaced"
    return "conflict", "differs locally; kept (choose overwrite to replace it)"


def execute(svc: CloudOperationService, coord: RunCoordinate, policy: str, ctx: JobContext) -> DownloadJob:
    """Download what is missing (or, with overwrite, different) and return the finished job record."""
    started = datetime.now(UTC)
    if not svc.inventory.get_raw_objects(coord):
        raise JobError(f"{coord} has no raw objects in the inventory; refresh the inventory if they are new")
    target = svc.local.raw_path(coord)
    make_dirs(target, svc.data_root)
    # The run directory's lock keeps a second download of the same run from deleting our .part files.
    with dir_lock(target, f"another download of {coord} is running"):
        try:
            stale = remove_leftover_parts(target)
            if stale:
                ctx.log(f"removed {len(stale)} partial file(s) left by an interrupted download")
            download_plan, items = plan(svc, coord, policy)
            todo = [item for item in items if item.action.transfers]
            progress = Progress(ctx, files_total=len(todo), bytes_total=sum(i.info.size for i in todo))
            progress.start(f"downloading {len(todo)} file(s) of {coord}")
            for directory in sorted({item.final.parent for item in todo}):
                make_dirs(directory, svc.data_root)

            def fetch(item: _Item) -> None:
                fetch_verified(svc.raw_bucket, "raw", item.info.name, item.final, item.info, progress, svc.slicing)
                progress.file_done(f"downloaded {item.action.name}")

            run_parallel(todo, fetch, svc.max_workers, progress)
        except BaseException:
            # Only empty directories go: a failed first download leaves no trace, earlier files stay.
            prune_empty_dirs(target, svc.local.raw_root)
            raise
    conflicts = download_plan.conflicts
    for conflict in conflicts:
        ctx.log(f"kept {conflict.name}: {conflict.reason}")
    log.info("raw_download_done", coordinate=str(coord), files=len(todo), bytes=progress.bytes_done)
    return DownloadJob(
        job_id=getattr(ctx, "job_id", "-"),
        coordinate=coord,
        source_bucket=svc.raw_bucket.url,
        target_path=target,
        files_to_download=[item.action.name for item in todo],
        total_files=len(todo),
        files_downloaded=progress.files_done,
        total_bytes=progress.bytes_total,
        bytes_downloaded=progress.bytes_done,
        status=ProcessingStatus.COMPLETE,
        started_at=started,
        completed_at=datetime.now(UTC),
        error_message=_conflict_message(conflicts),
    )


def _conflict_message(conflicts: list[FileAction]) -> str | None:
    """Summarise kept conflicting files in one line, or None."""
    if not conflicts:
        return None
    names = ", ".join(c.name for c in conflicts[:5]) + (", …" if len(conflicts) > 5 else "")
    return f"{len(conflicts)} local file(s) differ from the bucket and were kept: {names}"
