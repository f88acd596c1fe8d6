"""Translate this process's paths into paths the Docker engine can mount, on a host or inside a container.

A bind mount names a path on the engine's host. On the host that is the path itself. Inside a container (the app
with the engine's socket mounted) the data root is a volume or bind mount of that container, so the engine's own
view of the container (its Mounts) says where the path lives on the host: Source + the rest of the path.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

MOUNTINFO = Path("/proc/self/mountinfo")
# The engine bind-mounts /etc/hostname from /var/lib/docker/containers/<id>/hostname into every container.
_HOSTNAME_SOURCE = re.compile(r"/containers/([0-9a-f]{64})/hostname$")


class NotOnAMount(ValueError):
    """A path inside a container's own filesystem, which no other container can see."""


def own_container_id(mountinfo: Path = MOUNTINFO) -> str | None:
    """Return the id of the container this process runs in (BAGBOARD_CONTAINER_ID wins), or None on a host."""
    explicit = os.environ.get("BAGBOARD_CONTAINER_ID", "").strip()
    if explicit:
        return explicit
    try:
        lines = mountinfo.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) > 4 and fields[4] == "/etc/hostname":
            match = _HOSTNAME_SOURCE.search(fields[3])
            if match:
                return match.group(1)
    return None


def engine_path(path: Path, mounts: Sequence[dict[str, Any]]) -> Path:
    """Return where path lives on the engine's host, given the container's Mounts (longest destination wins)."""
    target = PurePosixPath(os.path.realpath(path))
    best: dict[str, Any] | None = None
    for mount in mounts:
        destination = PurePosixPath(mount.get("Destination", ""))
        if (target == destination or destination in target.parents) and (
            best is None or len(destination.parts) > len(PurePosixPath(best["Destination"]).parts)
        ):
            best = mount
    if best is None or not best.get("Source"):
        raise NotOnAMount(
            f"{target} is in the app container's own filesystem: put BAGBOARD_DATA_ROOT on a volume or bind mount"
        )
    return Path(best["Source"]) / target.relative_to(best["Destination"])


def engine_path_mapper(client: Any, container_id: str | None = None) -> Callable[[Path], Path]:
    """Return a function mapping this process's paths to the engine's (identity on a host)."""
    container_id = container_id if container_id is not None else own_container_id()
    if container_id is None:
        return lambda path: path
    mounts = client.containers.get(container_id).attrs.get("Mounts") or []
    return lambda path: engine_path(path, mounts)
