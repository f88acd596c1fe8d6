"""`flask --app app batch …` on the tiny demo."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def cli(app):
    runner = app.server.test_cli_runner()
    assert runner.invoke(args=["demo", "seed", "--size", "tiny"]).exit_code == 0
    return runner


def test_batch_start_runs_to_the_end_and_status_and_cancel_answer(cli):
    started = cli.invoke(args=["batch", "start", "--prefix", "acme/north", "--json"])
    assert started.exit_code == 0, started.output
    record = json.loads(started.output)
    assert record["status"] == "complete" and record["counts"]["analysed"] == record["total"] >= 2
    assert all(run["coordinate"].startswith("acme/north/") for run in record["runs"])
    shown = cli.invoke(args=["batch", "status", record["batch_id"]])
    assert shown.exit_code == 0 and "complete" in shown.output and "analysed" in shown.output
    assert "already ended" in cli.invoke(args=["batch", "cancel", record["batch_id"]]).output
    listed = json.loads(cli.invoke(args=["batch", "list", "--json"]).output)
    assert [item["batch_id"] for item in listed] == [record["batch_id"]]
    again = cli.invoke(args=["batch", "start", "--prefix", "acme/north"])
    assert again.exit_code == 1 and "Nothing to analyse" in again.output


def test_batch_refuses_bad_input(cli):
    assert cli.invoke(args=["batch", "start", "--prefix", "acme/../x"]).exit_code == 2
    assert cli.invoke(args=["batch", "start", "--prefix", "a/b/c/d/e/f"]).exit_code == 2
    unknown = cli.invoke(args=["batch", "status", "../../etc"])
    assert unknown.exit_code == 1 and "Unknown batch" in unknown.output
