"""`flask --app app batch …`: analyse a selection from the shell (start, status, cancel, list)."""

from __future__ import annotations

import json
import time

import click
from flask.cli import AppGroup

from src.core.extensions import get_services
from src.models import FILTER_LEVELS
from src.models.fleet import BatchRecord
from src.services.batch import BatchActor, BatchError, BatchService
from src.services.data_state import clean_filters

batch_cli = AppGroup("batch", help="Analyse many runs: download → extract → analyse, one job per run and step.")
FINAL = ("complete", "failed", "cancelled")


# Whoever runs the CLI on the server acts as an operator, like the ops CLI's jobs (actor "cli").
SHELL_ACTOR = BatchActor("cli")


def _batches() -> BatchService:
    batches = get_services().batches
    if batches is None:
        raise click.ClickException("batches need the job runner (this process has none)")
    return batches


def parse_prefix(prefix: str | None) -> dict[str, str]:
    """Turn 'cid/regionid/…' (up to lbid) into filters, refusing invalid parts."""
    parts = [part for part in (prefix or "").strip("/").split("/") if part]
    if len(parts) > len(FILTER_LEVELS):
        raise click.BadParameter(f"at most {len(FILTER_LEVELS)} levels: {'/'.join(FILTER_LEVELS)}")
    try:
        return clean_filters(dict(zip(FILTER_LEVELS, parts, strict=False)))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _line(record: BatchRecord) -> str:
    counts = record.counts()
    shown = ", ".join(f"{value} {state}" for state, value in counts.items() if value)
    return f"{record.batch_id} {record.status}: {record.finished}/{len(record.runs)} done ({shown})"


@batch_cli.command("start")
@click.option("--prefix", default="", help="cid/regionid/fieldid/twid/lbid (any leading part); empty: every run")
@click.option("--run", "runs", multiple=True, help="a run's coordinate path (repeatable) instead of a prefix")
@click.option(
    "--concurrency", type=click.IntRange(1, 64), default=None, help="runs at once (BAGBOARD_BATCH_CONCURRENCY)"
)
@click.option("--wait", is_flag=True, help="print progress every few seconds")
@click.option("--json", "as_json", is_flag=True, help="print the final record as JSON")
def start(prefix: str, runs: tuple[str, ...], concurrency: int | None, wait: bool, as_json: bool) -> None:
    """Start a batch and run it to the end (its driver lives in this process; Ctrl-C cancels it)."""
    batches = _batches()
    try:
        record = batches.start(SHELL_ACTOR, parse_prefix(prefix), list(runs) or None, concurrency=concurrency)
    except (BatchError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if not as_json:
        click.echo(f"batch {record.batch_id}: {len(record.runs)} run(s)")
    try:
        while record.status not in FINAL:
            time.sleep(2.0)
            record = batches.status(record.batch_id)
            if wait and not as_json:
                click.echo(_line(record))
    except KeyboardInterrupt:
        batches.cancel(record.batch_id, SHELL_ACTOR)
        click.echo("cancelling: running steps stop at their next file…", err=True)
        while (record := batches.status(record.batch_id)).status not in FINAL:
            time.sleep(1.0)
    batches.shutdown(wait=True)
    click.echo(json.dumps(record.to_dict(), indent=1) if as_json else _line(record))
    if record.status != "complete":
        raise SystemExit(1)


@batch_cli.command("status")
@click.argument("batch_id")
@click.option("--json", "as_json", is_flag=True)
def status(batch_id: str, as_json: bool) -> None:
    """Show a batch and its runs."""
    try:
        record = _batches().status(batch_id)
    except BatchError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(record.to_dict(), indent=1))
        return
    click.echo(_line(record))
    for run in record.runs:
        click.echo(f"  {run.state.value:<12}{run.coordinate}{'  ' + run.error if run.error else ''}")


@batch_cli.command("cancel")
@click.argument("batch_id")
def cancel(batch_id: str) -> None:
    """Cancel a batch: queued runs are dropped, running steps stop at their next file."""
    try:
        accepted = _batches().cancel(batch_id, SHELL_ACTOR)
    except BatchError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo("cancel requested" if accepted else "that batch had already ended")


@batch_cli.command("list")
@click.option("--json", "as_json", is_flag=True)
def list_batches(as_json: bool) -> None:
    """List the newest batches."""
    records = _batches().list()
    if as_json:
        click.echo(json.dumps([record.to_dict(with_runs=False) for record in records], indent=1))
        return
    for record in records:
        click.echo(_line(record))
