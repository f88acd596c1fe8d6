"""The ops CLI: pipeline and jobs commands on the app's own job system (embedded pool, no Docker)."""

from __future__ import annotations

import json

import pytest

from src.cli import follow_job
from src.jobs.base import JobKind
from src.models import ProcessingStatus


class QueueOnly:
    """Stands in for Celery: jobs are queued and stay pending, so the CLI returns without waiting."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def dispatch(self, job_id: str) -> None:
        self.sent.append(job_id)


@pytest.fixture
def cli(app):
    """Return a CLI runner on the app with the tiny demo seeded."""
    runner = app.server.test_cli_runner()
    seeded = runner.invoke(args=["demo", "seed", "--size", "tiny"])
    assert seeded.exit_code == 0, seeded.output
    return runner


def first_run(cli) -> str:
    runs = json.loads(cli.invoke(args=["inventory", "runs", "--json"]).output)
    return next(row["coordinate"] for row in runs if row["raw_bags"])


def test_a_run_goes_download_extract_analyse_with_wait(cli):
    coord = first_run(cli)
    for step in ("download", "extract", "analyse"):
        result = cli.invoke(args=["pipeline", step, coord, "--wait"])
        assert result.exit_code == 0, result.output
        kind = "analyze" if step == "analyse" else step  # the job kind keeps the code's spelling
        assert f"{kind} {coord}: complete" in result.output
    status = json.loads(cli.invoke(args=["pipeline", "status", coord, "--json"]).output)
    assert status["downloaded"] and status["extracted"] and status["analysed"] and status["active_jobs"] == []
    jobs = json.loads(cli.invoke(args=["jobs", "list", "--json"]).output)
    assert [(job["kind"], job["started_by"], job["status"]) for job in jobs] == [
        ("analyze", "cli", "complete"),
        ("extract", "cli", "complete"),
        ("download", "cli", "complete"),
    ]
    # Without a terminal the progress comes as plain lines, one per change.
    shown = cli.invoke(args=["jobs", "show", jobs[1]["id"]])
    assert shown.exit_code == 0 and "extract" in shown.output and "frames" in shown.output


def test_a_failed_job_exits_1_with_its_one_line_error(cli):
    coord = first_run(cli)
    result = cli.invoke(args=["pipeline", "extract", coord, "--wait"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == f"Error: {coord} has no downloaded bags: download it first"


def test_json_wait_prints_the_finished_job(cli):
    coord = first_run(cli)
    result = cli.invoke(args=["pipeline", "download", coord, "--wait", "--json"])
    assert result.exit_code == 0, result.output
    job = json.loads(result.output.strip().splitlines()[-1])
    assert job["status"] == "complete" and job["started_by"] == "cli" and job["result"]["files"] > 0


@pytest.mark.parametrize("coord", ["acme/north", "acme/../x/f/t/l/2024-01-01T00-00-00", "a/b/c/d/e/f/g"])
def test_bad_coordinates_are_a_one_line_usage_error(cli, coord):
    for args in (["pipeline", "download", coord], ["pipeline", "status", coord]):
        result = cli.invoke(args=args)
        assert result.exit_code == 2
        assert len(result.output.strip().splitlines()) == 1 and result.output.startswith("Error: bad coordinate")


def test_unknown_job_ids_are_a_usage_error(cli):
    for command in ("show", "cancel"):
        result = cli.invoke(args=["jobs", command, "nope"])
        assert result.exit_code == 2 and result.output.strip() == "Error: no job 'nope'"


def test_cli_jobs_deduplicate_with_the_uis_and_can_be_cancelled(app, cli):
    services = app.server.extensions["bagboard.services"]
    services.jobs.celery = QueueOnly()  # queued jobs stay pending: the CLI returns at once
    coord = first_run(cli)
    operator = type("User", (), {"name": "operator", "can": lambda self, role: True})()
    ui_job = services.jobs.submit(JobKind.DOWNLOAD, coord, {"coordinate": coord, "conflict": "skip"}, operator)

    joined = json.loads(cli.invoke(args=["pipeline", "download", coord, "--json"]).output)
    assert joined["id"] == ui_job.id and joined["started_by"] == "operator"
    own = json.loads(cli.invoke(args=["pipeline", "extract", coord, "--json"]).output)
    assert own["started_by"] == "cli" and own["status"] == "pending"

    active = cli.invoke(args=["jobs", "list", "--active"]).output.splitlines()
    assert {line.split()[0] for line in active} == {ui_job.id, own["id"]}
    status = json.loads(cli.invoke(args=["pipeline", "status", coord, "--json"]).output)
    assert {job["kind"] for job in status["active_jobs"]} == {"download", "extract"}

    cancelled = cli.invoke(args=["jobs", "cancel", own["id"]])
    assert cancelled.exit_code == 0 and f"cancel requested for {own['id']}" in cancelled.output
    assert services.jobs.registry.get(own["id"]).status is ProcessingStatus.CANCELLED
    again = cli.invoke(args=["jobs", "cancel", own["id"]])
    assert again.exit_code == 1 and "is not active (cancelled)" in again.output


def test_wait_draws_a_bar_on_a_terminal(app, capsys):
    registry = app.server.extensions["bagboard.services"].jobs.registry
    job, _ = registry.create(JobKind.SLEEP, "t", {}, "cli")
    registry.start(job.id)
    registry.update_progress(job.id, files_done=1, files_total=2, message="half way")
    registry.finish(job.id, ProcessingStatus.COMPLETE, "done")
    assert follow_job(registry, job.id, tty=True).status is ProcessingStatus.COMPLETE
    out = capsys.readouterr().out
    assert out.startswith("\r[####################] complete 100.0% done") and out.endswith("\n")


def test_create_buckets_is_for_an_emulator_only(app, monkeypatch):
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    args = ["demo", "seed", "--size", "tiny", "--create-buckets"]
    result = app.server.test_cli_runner().invoke(args=[*args, "--raw-bucket", "gs://r", "--ml-bucket", "gs://m"])
    assert result.exit_code == 1 and "--create-buckets works only against an emulator" in result.output
