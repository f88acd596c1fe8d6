"""CSV exports cannot run code in a spreadsheet: formula-like cells from bucket names are neutralised."""

from __future__ import annotations

import base64
import csv
import io
import re
from pathlib import Path

import pandas as pd
import pytest

from src.csv_safe import neutralise, to_safe_csv
from tests.conftest import post_callback

ROOT = Path(__file__).resolve().parents[1]
COV_SEARCH = '{"type":"filter-url","view":"coverage"}.search'


@pytest.mark.parametrize("cell", ["=1+2", "+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1", '=HYPERLINK("http://x","y")'])
def test_formula_like_text_becomes_plain_text(cell):
    assert neutralise(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["acme", "2024-05-14T10-32-00", "a=b", "", -3, -2.5, 0, None])
def test_other_cells_are_unchanged(cell):
    assert neutralise(cell) == cell


def test_numbers_stay_numbers_and_text_columns_are_neutralised():
    frame = pd.DataFrame({"name": ["=cmd", "ok"], "gap_pct": [-1.5, 50.0], "=header": [1, 2]})
    rows = list(csv.reader(io.StringIO(to_safe_csv(frame))))
    assert rows == [["name", "gap_pct", "'=header"], ["'=cmd", "-1.5", "1"], ["ok", "50.0", "2"]]


def write_bag(settings, *parts: str) -> None:
    """Put one raw bag (no ML samples: fully under-labelled) at the given coordinate in the local raw bucket."""
    run = Path(settings.raw_bucket.removeprefix("file://")).joinpath(*parts)
    run.mkdir(parents=True, exist_ok=True)
    (run / "drive_001.bag").write_bytes(b"#ROSBAG V2.0\n")


def test_the_under_labelled_export_neutralises_names_from_the_bucket(app, client, auth, settings):
    evil = ("=cid", "+region", "-field", "@tw", "lb1", '=HYPERLINK("http:x","y")')
    write_bag(settings, *evil)
    write_bag(settings, "acme", "north", "field-01", "tw01", "lb1", "2024-05-14T10-32-00")
    result = app.server.test_cli_runner().invoke(args=["inventory", "refresh"])
    assert result.exit_code == 0, result.output

    auth.login("viewer")
    response = post_callback(
        client,
        app,
        "cov-download.data",
        {"cov-export.n_clicks": 1, COV_SEARCH: "", "cov-expected.value": 17, "cov-threshold.value": "50"},
        triggered="cov-export.n_clicks",
    )
    assert response.status_code == 200, response.data
    download = response.get_json()["response"]["cov-download"]["data"]
    content = base64.b64decode(download["content"]).decode() if download.get("base64") else download["content"]
    rows = list(csv.DictReader(io.StringIO(content)))
    evil_row = next(row for row in rows if "HYPERLINK" in row["timestamp"])
    assert evil_row["coordinate"] == "'" + "/".join(evil)
    assert evil_row["timestamp"] == "'" + evil[-1]
    assert all(not cell.startswith(("=", "+", "-", "@", "\t", "\r")) for row in rows for cell in row.values())
    assert any(row["coordinate"] == "acme/north/field-01/tw01/lb1/2024-05-14T10-32-00" for row in rows)


def test_every_csv_export_goes_through_the_neutraliser():
    """Any module that sends a file to the browser or writes CSV text must use src.csv_safe."""
    exporters = []
    for path in [*ROOT.glob("pages/**/*.py"), *ROOT.glob("src/**/*.py")]:
        text = path.read_text()
        if path.name == "csv_safe.py":
            continue
        assert not re.search(r"send_data_frame|\.to_csv\(|csv\.writer\(", text), f"{path}: use src.csv_safe"
        if re.search(r"dcc\.send_(string|bytes|file)\(", text):
            exporters.append(path.relative_to(ROOT).as_posix())
            # Either the callback neutralises itself or it sends a service's export_csv text (tested on its own).
            assert re.search(r"to_safe_csv|\.export_csv\(", text) or ".csv" not in text, f"{path}: use to_safe_csv"
    assert sorted(exporters) == ["pages/coverage/callbacks.py", "pages/fleet/callbacks.py"]
    for path in ROOT.glob("src/services/**/*.py"):
        text = path.read_text()
        if "def export_csv(" in text:
            assert "to_safe_csv(" in text, f"{path}: export_csv must return to_safe_csv text"
