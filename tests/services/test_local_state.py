"""Tests for LocalStateService: downloaded bags, extraction outputs and ML export tracking."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from src.models.coordinate import RunCoordinate
from src.models.state import EXPECTED_EXTRACTION_FILES
from src.services.local_state import ExportTrackingError, LocalStateService
from tests.services.conftest import RUN_A, RUN_B, write_tree

COORD = RunCoordinate.from_path(RUN_A)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """Return an empty data root."""
    return tmp_path / "data"


@pytest.fixture
def local(root: Path) -> LocalStateService:
    """Return the service on the data root."""
    return LocalStateService(root)


def write_tracking(root: Path, data: object) -> Path:
    """Write data as the export tracking file."""
    path = root / "ml" / ".export_tracking.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


# -- raw ----------------------------------------------------------------------------------------


def test_raw_not_downloaded(local: LocalStateService) -> None:
    status = local.check_raw_downloaded(COORD)
    assert (status.downloaded, status.bag_count, status.bag_names, status.total_size, status.path) == (
        False,
        0,
        [],
        0,
        None,
    )


def test_raw_downloaded_counts_bags_and_skips_temp_files(root: Path, local: LocalStateService) -> None:
    write_tree(
        root / "raw",
        {
            f"{RUN_A}/a.bag": 5,
            f"{RUN_A}/bag_x/metadata.yaml": 10,
            f"{RUN_A}/bag_x/bag_x_0.mcap": 100,
            f"{RUN_A}/bag_x/bag_x_1.MCAP": 200,
            f"{RUN_A}/c.db3": 7,
            f"{RUN_A}/.a.bag.part": 3,  # a download in progress
            f"{RUN_A}/.hidden/x.bag": 3,
            f"{RUN_A}/d.bag.tmp": 3,
            f"{RUN_A}/e.bag.active": 3,
            f"{RUN_B}/other.bag": 1,
        },
    )
    status = local.check_raw_downloaded(RUN_A)
    assert status.downloaded is True
    assert status.bag_names == ["a.bag", "bag_x/bag_x_0.mcap", "bag_x/bag_x_1.MCAP", "c.db3"]
    assert (status.bag_count, status.total_size) == (4, 312)
    assert status.path == str(root / "raw" / Path(*RUN_A.split("/")))


def test_raw_folder_without_bags_is_not_downloaded(root: Path, local: LocalStateService) -> None:
    write_tree(root / "raw", {f"{RUN_A}/.partial.bag": 1, f"{RUN_A}/notes.txt": 1})
    status = local.check_raw_downloaded(COORD)
    assert (status.downloaded, status.bag_count) == (False, 0)
    assert status.path is not None


def test_invalid_coordinate_is_refused(local: LocalStateService) -> None:
    with pytest.raises(ValueError, match="regionid must not be"):
        local.check_raw_downloaded("c1/../f1/t1/l1/ts")
    with pytest.raises(ValueError, match="6 parts"):
        local.check_extracted("c1/r1")


# -- extraction ---------------------------------------------------------------------------------


def test_extraction_states(root: Path, local: LocalStateService) -> None:
    assert local.check_extracted(COORD).extracted is False
    assert local.check_extracted(COORD).path is None
    processed = root / "processed" / Path(*RUN_A.split("/"))
    write_tree(root / "processed", {f"{RUN_A}/frames.csv": 10, f"{RUN_A}/metadata.json": 2})
    partial = local.check_extracted(COORD)
    assert partial.extracted is False
    assert partial.files["frames.csv"] and not partial.files["tracking.csv"]
    assert set(partial.missing_files) == set(EXPECTED_EXTRACTION_FILES) - {"frames.csv", "metadata.json"}
    assert partial.path == str(processed)
    write_tree(root / "processed", {f"{RUN_A}/{name}": 1 for name in EXPECTED_EXTRACTION_FILES})
    assert local.check_extracted(COORD).extracted is True


def test_extraction_output_info(root: Path, local: LocalStateService) -> None:
    write_tree(root / "processed", {f"{RUN_A}/frames.csv": 10, f"{RUN_A}/tracking.json": 4})
    info = local.get_extraction_output_info(COORD)
    assert info["extracted"] is False
    assert info["total_size"] == 14
    assert info["files"]["frames.csv"]["exists"] is True
    assert info["files"]["frames.csv"]["size"] == 10
    assert info["files"]["frames.csv"]["mtime"].endswith("+00:00")
    assert info["files"]["detections.csv"] == {"exists": False, "size": None, "mtime": None}
    assert list(info["files"]) == list(EXPECTED_EXTRACTION_FILES)


# -- ML exports ---------------------------------------------------------------------------------


def test_no_exports(local: LocalStateService) -> None:
    assert local.get_export_ids() == []
    assert local.check_ml_exported(COORD) == {
        "exported": False,
        "export_ids": [],
        "sample_count": 0,
        "samples_per_export": {},
        "uploaded": False,
    }


def test_exports_from_tracking_and_disk(root: Path, local: LocalStateService) -> None:
    write_tracking(
        root,
        {
            "exp-1": {
                "created_at": "2024-06-01T10:00:00+00:00",
                "source": "dashboard",
                "coordinates": [RUN_A, RUN_B],
                "sample_count": 3,
                "uploaded": True,
                "uploaded_at": "2024-06-01T11:00:00+00:00",
            },
            "exp-2": {"coordinates": [RUN_B], "sample_count": 1, "uploaded": False},
        },
    )
    write_tree(
        root / "ml" / "exports",
        {
            f"exp-1/{RUN_A}/img/1.jpg": 1,
            f"exp-1/{RUN_A}/img/1.json": 1,
            f"exp-1/{RUN_A}/img/2.PNG": 1,
            f"exp-1/{RUN_A}/img/.3.jpg.tmp": 1,
            f"exp-3/{RUN_A}/4.jpeg": 1,  # on disk but not tracked
        },
    )
    (root / "ml" / "exports" / ".staging").mkdir()
    assert local.get_export_ids() == ["exp-1", "exp-2", "exp-3"]
    exported = local.check_ml_exported(COORD)
    assert exported == {
        "exported": True,
        "export_ids": ["exp-1", "exp-3"],
        "sample_count": 3,
        "samples_per_export": {"exp-1": 2, "exp-3": 1},
        "uploaded": True,
    }
    info = local.get_export_info("exp-1")
    assert info["tracked"] and info["exists"] and info["uploaded"]
    assert info["coordinates"] == [RUN_A, RUN_B] and info["sample_count"] == 3
    info["coordinates"].append("mutated")
    assert local.get_export_info("exp-1")["coordinates"] == [RUN_A, RUN_B]
    untracked = local.get_export_info("exp-3")
    assert (untracked["tracked"], untracked["exists"], untracked["sample_count"]) == (False, True, 0)
    missing = local.get_export_info("exp-9")
    assert (missing["tracked"], missing["exists"]) == (False, False)
    with pytest.raises(ValueError, match="export_id must not"):
        local.get_export_info("../etc")


def test_tracking_file_changes_are_picked_up(root: Path, local: LocalStateService) -> None:
    write_tracking(root, {"a": {"coordinates": []}})
    assert local.get_export_ids() == ["a"]
    write_tracking(root, {"a": {"coordinates": []}, "bb": {"coordinates": [RUN_A]}})
    assert local.get_export_ids() == ["a", "bb"]
    assert local.check_ml_exported(COORD)["export_ids"] == ["bb"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"exp-1": {', "invalid JSON at line 1"),
        ("[1, 2]", "expected an object of exports, got list"),
        ('{"exp-1": []}', "export 'exp-1': expected an object, got list"),
        ('{"exp-1": {"coordinates": "c1/r1"}}', "coordinates must be list"),
        ('{"exp-1": {"coordinates": ["c1/r1"]}}', "needs 6 parts"),
        ('{"exp-1": {"coordinates": [7]}}', "coordinates must hold strings"),
        ('{"exp-1": {"sample_count": true}}', "sample_count must be int"),
        ('{"exp-1": {"sample_count": -1}}', "must not be negative"),
        ('{"exp-1": {"uploaded": "yes"}}', "uploaded must be bool"),
        ('{"..": {}}', "export '..'"),
    ],
)
def test_corrupt_tracking_file(root: Path, local: LocalStateService, content: str, message: str) -> None:
    path = root / "ml" / ".export_tracking.json"
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.raises(ExportTrackingError, match=message) as excinfo:
        local.get_export_ids()
    assert str(path) in str(excinfo.value)
    assert isinstance(excinfo.value, ValueError)
    with pytest.raises(ExportTrackingError):
        local.check_ml_exported(COORD)
