"""Run the bag extractor for one run: in a subprocess (default) or in a Docker container."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from src.jobs.base import JobCancelled, JobContext, JobError, NullContext
from src.models import ExtractionJob, ProcessingStatus, RunCoordinate
from src.services.engine_paths import NotOnAMount, engine_path_mapper
from src.services.local_state import LocalStateService

PROJECT_ROOT = Path(__file__).resolve().parents[2]
RUNNERS = ("local", "docker")
# Every extraction container carries this label (value "extractor"): ops and tests find them by it.
EXTRACTOR_LABEL = "bagboard.role"


@dataclass(frozen=True)
class ExtractorSettings:
    """How extractions run: where, with which image, and within which limits."""

    runner: str = "local"
    image: str = "bagboard:latest"
    memory: str = "2g"
    cpus: float = 1.0
    timeout_s: float = 3600.0


class ExtractionService:
    """Check, start and follow extractions; each is atomic per coordinate."""

    def __init__(self, local: LocalStateService, settings: ExtractorSettings | None = None) -> None:
        self.local = local
        self.settings = settings or ExtractorSettings()
        if self.settings.runner not in RUNNERS:
            raise ValueError(f"extractor runner must be one of {', '.join(RUNNERS)}")

    def check_extraction_possible(self, coord: RunCoordinate) -> bool:
        """Tell whether the run's bags are downloaded (the extractor's only input)."""
        return self.local.check_raw_downloaded(coord).downloaded

    def execute_extraction(self, coord: RunCoordinate, ctx: JobContext | None = None) -> ExtractionJob:
        """Extract the run's bags into processed/{coord}, reporting bags and frames through ctx."""
        ctx = ctx or NullContext()
        ctx.check_cancelled()  # a job cancelled while it waited never starts the extractor
        raw = self.local.check_raw_downloaded(coord)
        if not raw.downloaded:
            raise JobError(f"{coord} has no downloaded bags: download it first")
        job = ExtractionJob(
            job_id=ctx.job_id,
            coordinate=coord,
            source_path=self.local.raw_path(coord),
            output_path=self.local.processed_path(coord),
            total_bags=raw.bag_count,
            status=ProcessingStatus.IN_PROGRESS,
            started_at=datetime.now(UTC),
        )
        job.output_path.parent.mkdir(parents=True, exist_ok=True)
        run = self._run_docker if self.settings.runner == "docker" else self._run_local
        lines = run(job, ctx)
        job.docker_output = "\n".join(lines[-50:]) if self.settings.runner == "docker" else None
        job.status = ProcessingStatus.COMPLETE
        job.completed_at = datetime.now(UTC)
        return job

    # -- local: a subprocess, so a crash in a bag library cannot take the web worker down ------------

    def _run_local(self, job: ExtractionJob, ctx: JobContext) -> list[str]:
        command = [sys.executable, "-m", "src.extraction", str(job.source_path), str(job.output_path)]
        process = subprocess.Popen(  # noqa: S603 - fixed argv, paths built from a validated coordinate
            command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1
        )
        stdout: list[str] = []
        reader = threading.Thread(target=lambda: stdout.extend(process.stdout or []), daemon=True)
        reader.start()
        deadline = time.monotonic() + self.settings.timeout_s
        lines = self._follow(iter(process.stderr or []), job, ctx, lambda: _stop(process), deadline)
        code = process.wait()
        reader.join(timeout=5)
        if code != 0:
            raise JobError(_last_error(lines) or f"the extractor exited with code {code}")
        return lines

    # -- docker: the same CLI in the project's image (or a team's own that honours the contract) ---

    def container_spec(
        self, job: ExtractionJob, scratch: Path, to_engine: Callable[[Path], Path] = lambda path: path
    ) -> dict[str, Any]:
        """Return the docker SDK arguments for one extraction (raw read-only, fresh output, no network).

        to_engine maps this process's paths to the engine host's (see src.services.engine_paths).
        """
        return {
            "image": self.settings.image,
            "command": ["python", "-m", "src.extraction", "/input", f"/output/{job.output_path.name}"],
            "volumes": {
                str(to_engine(job.source_path)): {"bind": "/input", "mode": "ro"},
                str(to_engine(scratch)): {"bind": "/output", "mode": "rw"},
            },
            "network_disabled": True,
            "mem_limit": self.settings.memory,
            "memswap_limit": self.settings.memory,  # no swap: over the limit means the OOM killer, not a crawl
            "nano_cpus": int(self.settings.cpus * 1e9),
            "user": f"{os.getuid()}:{os.getgid()}",
            "healthcheck": {"test": ["NONE"]},  # the image's web check means nothing for the extractor
            "labels": {
                EXTRACTOR_LABEL: "extractor",
                "bagboard.job": job.job_id,
                "bagboard.run": job.coordinate.to_path_str(),
            },
        }

    def _run_docker(self, job: ExtractionJob, ctx: JobContext) -> list[str]:
        import docker
        from docker.errors import DockerException, ImageNotFound, NotFound

        try:
            client = docker.from_env()
            client.ping()
        except DockerException as exc:
            where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
            raise JobError(f"Docker daemon not reachable at {where}: {_one_line(exc)}") from None
        try:
            # Look first: containers.run would try to pull a missing image, slowly, and from wherever.
            client.images.get(self.settings.image)
        except ImageNotFound:
            raise JobError(f"extractor image {self.settings.image!r} not found: build or pull it") from None
        except DockerException as exc:
            raise JobError(f"Docker daemon not reachable: {_one_line(exc)}") from None
        try:
            to_engine = engine_path_mapper(client)
        except (DockerException, NotOnAMount) as exc:
            raise JobError(f"cannot share the data root with the extractor container: {_one_line(exc)}") from None
        # The container writes into a scratch dir beside the final one; only a complete output is moved in.
        scratch = job.output_path.parent / f".{job.output_path.name}.docker-{uuid.uuid4().hex[:8]}"
        scratch.mkdir(parents=True)
        container = None
        try:
            try:
                # Created, then started: a failed start still leaves a handle for the finally to remove.
                container = client.containers.create(**self.container_spec(job, scratch, to_engine))
                container.start()
            except DockerException as exc:
                raise JobError(f"the extractor container did not start: {_one_line(exc)}") from None
            deadline = time.monotonic() + self.settings.timeout_s
            try:
                logs = (chunk.decode("utf-8", "replace") for chunk in container.logs(stream=True, follow=True))
                lines = self._follow(_split_lines(logs), job, ctx, container.kill, deadline)
                code = container.wait(timeout=max(1.0, deadline - time.monotonic())).get("StatusCode", 1)
                container.reload()
                oom = bool(container.attrs.get("State", {}).get("OOMKilled"))
            except NotFound:
                raise JobError("the extractor container was removed while it ran") from None
            except (DockerException, OSError) as exc:
                raise JobError(f"lost the extractor container: {_one_line(exc)}") from None
            if oom:
                raise JobError(f"the extractor ran out of memory (limit {self.settings.memory}) and was killed")
            if code != 0:
                raise JobError(_container_error(lines, code))
            _replace_dir(scratch / job.output_path.name, job.output_path)
            return lines
        finally:
            if container is not None:
                with contextlib.suppress(DockerException):
                    container.remove(force=True, v=True)  # the image declares VOLUME /data: drop its anonymous volume
            shutil.rmtree(scratch, ignore_errors=True)

    # -- shared -----------------------------------------------------------------------------------

    def _follow(
        self,
        lines: Iterator[str],
        job: ExtractionJob,
        ctx: JobContext,
        stop: Callable[[], Any],
        deadline: float,
    ) -> list[str]:
        """Turn the extractor's JSON progress lines into job progress; keep the rest as the log."""
        seen: list[str] = []
        for raw in lines:
            line = raw.rstrip("\n")
            try:
                ctx.check_cancelled()
            except JobCancelled:
                stop()
                raise
            if time.monotonic() > deadline:
                stop()
                raise JobError(f"the extraction took longer than {self.settings.timeout_s:.0f} s and was stopped")
            event = _progress_event(line)
            if event is None:
                seen.append(line)
                ctx.log(line)
                continue
            job.bags_processed = int(event.get("bags_done", job.bags_processed))
            job.total_bags = int(event.get("bags_total", job.total_bags))
            job.frames_extracted = int(event.get("frames", job.frames_extracted))
            ctx.progress(
                files_done=job.bags_processed,
                files_total=job.total_bags,
                message=f"{job.frames_extracted:,} frames from {job.bags_processed}/{job.total_bags} bags",
            )
        return seen


def _progress_event(line: str) -> dict[str, Any] | None:
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) and "bags_done" in event else None


def _last_error(lines: list[str]) -> str | None:
    errors = [line.removeprefix("error: ") for line in lines if line.startswith("error: ")]
    return errors[-1] if errors else (lines[-1] if lines else None)


def _container_error(lines: list[str], code: int) -> str:
    """Say why a container failed: the extractor's own error, or that something outside killed it."""
    errors = [line for line in lines if line.startswith("error: ")]
    if errors:
        return errors[-1].removeprefix("error: ")
    if code in (137, 143):  # SIGKILL / SIGTERM from outside: docker kill, docker stop, a reboot
        return f"the extractor container was stopped from outside (exit code {code})"
    return _last_error(lines) or f"the extractor container exited with code {code}"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]


def _stop(process: subprocess.Popen) -> None:
    """Ask the extractor to stop (it cleans its temp output on SIGTERM), then insist."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


def _split_lines(chunks: Iterator[str]) -> Iterator[str]:
    buffer = ""
    for chunk in chunks:
        buffer += chunk
        *complete, buffer = buffer.split("\n")
        yield from complete
    if buffer:
        yield buffer


def _replace_dir(new: Path, final: Path) -> None:
    """Move a complete output into place, replacing an older one without a moment of half state."""
    if not (new / "metadata.json").is_file():
        raise JobError("the extractor container finished without writing metadata.json")
    old = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
    if final.exists():
        final.rename(old)
    new.rename(final)
    shutil.rmtree(old, ignore_errors=True)
