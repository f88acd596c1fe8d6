"""The docker runner's path mapping: identity on a host, the engine's view of the mounts inside a container."""

from __future__ import annotations

from pathlib import Path

import pytest

from src.models import ExtractionJob, RunCoordinate
from src.services.engine_paths import NotOnAMount, engine_path, engine_path_mapper, own_container_id
from src.services.extraction import ExtractionService, ExtractorSettings
from src.services.local_state import LocalStateService

CID = "3f" * 32
# What /proc/self/mountinfo shows in a container (volume at /data) and on a host running containers.
IN_CONTAINER = f"""\
622 540 0:52 / / rw,relatime - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/X
640 622 254:1 /var/lib/docker/volumes/proj_bagboard-data/_data /data rw,relatime - ext4 /dev/vda1 rw
641 622 254:1 /var/lib/docker/containers/{CID}/resolv.conf /etc/resolv.conf rw - ext4 /dev/vda1 rw
642 622 254:1 /var/lib/docker/containers/{CID}/hostname /etc/hostname rw - ext4 /dev/vda1 rw
"""
ON_HOST = f"""\
22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
700 22 0:60 / /var/lib/docker/containers/{CID}/mounts/shm rw - tmpfs shm rw
"""
MOUNTS = [
    {"Type": "volume", "Name": "proj_bagboard-data", "Source": "/var/lib/docker/volumes/proj_bagboard-data/_data",
     "Destination": "/data"},
    {"Type": "bind", "Source": "/srv/bags", "Destination": "/data/raw"},
    {"Type": "bind", "Source": "/var/run/docker.sock", "Destination": "/var/run/docker.sock"},
]  # fmt: skip


def test_the_container_id_comes_from_the_hostname_mount_and_a_host_has_none(tmp_path, monkeypatch):
    monkeypatch.delenv("BAGBOARD_CONTAINER_ID", raising=False)
    (tmp_path / "in").write_text(IN_CONTAINER)
    (tmp_path / "host").write_text(ON_HOST)
    assert own_container_id(tmp_path / "in") == CID
    assert own_container_id(tmp_path / "host") is None
    assert own_container_id(tmp_path / "missing") is None
    monkeypatch.setenv("BAGBOARD_CONTAINER_ID", "bagboard-app-1")
    assert own_container_id(tmp_path / "host") == "bagboard-app-1"


def test_paths_map_to_the_source_of_the_deepest_mount():
    assert engine_path(Path("/data/processed/a/b"), MOUNTS) == Path(
        "/var/lib/docker/volumes/proj_bagboard-data/_data/processed/a/b"
    )
    assert engine_path(Path("/data/raw/acme/x"), MOUNTS) == Path("/srv/bags/acme/x")
    assert engine_path(Path("/data"), MOUNTS) == Path("/var/lib/docker/volumes/proj_bagboard-data/_data")
    with pytest.raises(NotOnAMount, match="put BAGBOARD_DATA_ROOT on a volume"):
        engine_path(Path("/app/data/raw"), MOUNTS)
    with pytest.raises(NotOnAMount):
        engine_path(Path("/datafoo/x"), MOUNTS)  # a prefix of the string is not a parent directory


class FakeClient:
    class containers:  # mirrors docker.DockerClient.containers
        @staticmethod
        def get(container_id):
            assert container_id == CID
            return type("Container", (), {"attrs": {"Mounts": MOUNTS}})()


def test_the_container_spec_mounts_what_the_engine_sees(tmp_path):
    service = ExtractionService(LocalStateService(Path("/data")), ExtractorSettings(runner="docker", memory="1g"))
    coord = RunCoordinate.from_path("acme/north/f1/tw1/lb1/2024-01-01T00-00-00")
    job = ExtractionJob("j", coord, Path("/data/raw/x"), Path("/data/processed/x"))
    spec = service.container_spec(job, Path("/data/processed/.x.docker-1"), engine_path_mapper(FakeClient(), CID))
    assert spec["volumes"] == {
        "/srv/bags/x": {"bind": "/input", "mode": "ro"},
        "/var/lib/docker/volumes/proj_bagboard-data/_data/processed/.x.docker-1": {"bind": "/output", "mode": "rw"},
    }
    assert spec["memswap_limit"] == "1g" and spec["labels"]["bagboard.role"] == "extractor"
    on_host = engine_path_mapper(FakeClient(), None) if own_container_id() is None else None
    if on_host is not None:
        assert on_host(tmp_path) == tmp_path
