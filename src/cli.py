"""Command-line tools: `flask --app app users|demo|inventory|pipeline|jobs …`."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from typing import Any, NoReturn

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from src.auth.roles import Role
from src.auth.users import UserStore, UserStoreError
from src.cli_batch import batch_cli
from src.core.extensions import get_services
from src.jobs.base import Job, JobKind
from src.jobs.runner import JobRunner
from src.models import HIERARCHY_LEVELS, ProcessingStatus, RunCoordinate
from src.models._serde import dataclass_to_dict
from src.storage import StorageError

users_cli = AppGroup("users", help="Manage the users file.")
demo_cli = AppGroup("demo", help="Create demo data to try bagboard without cloud credentials.")
inventory_cli = AppGroup("inventory", help="Build and inspect the cloud inventory.")

ROLE_CHOICE = click.Choice([role.value for role in Role])


def _store() -> UserStore:
    return current_app.extensions["bagboard.users"]


def _revoke(name: str) -> None:
    """End every session of the user on every worker and host sharing the cache."""
    current_app.extensions["bagboard.sessions"].revoke_all(name)


def _read_password() -> str:
    """Prompt twice on a terminal; read one line from stdin otherwise (for scripts)."""
    if sys.stdin.isatty():
        return click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return sys.stdin.readline().rstrip("\r\n")


def _fail(message: str) -> NoReturn:
    raise click.ClickException(message)


@users_cli.command("add")
@click.argument("name")
@click.option("--role", type=ROLE_CHOICE, default=Role.VIEWER.value, show_default=True)
def add_user(name: str, role: str) -> None:
    """Add a user; the password is read from stdin."""
    try:
        _store().add(name, _read_password(), Role(role))
    except (ValueError, UserStoreError) as exc:
        _fail(str(exc))
    click.echo(f"added {name} ({role})")


@users_cli.command("list")
def list_users() -> None:
    """List users and their roles."""
    try:
        users = _store().all()
    except UserStoreError as exc:
        _fail(str(exc))
    for user in sorted(users.values(), key=lambda u: u.name):
        click.echo(f"{user.name}\t{user.role.value}{'  (demo)' if user.demo else ''}")


@users_cli.command("remove")
@click.argument("name")
def remove_user(name: str) -> None:
    """Remove a user."""
    try:
        _store().remove(name)
    except (ValueError, UserStoreError) as exc:
        _fail(str(exc))
    _revoke(name)
    click.echo(f"removed {name}; their sessions are ended")


@users_cli.command("set-role")
@click.argument("name")
@click.argument("role", type=ROLE_CHOICE)
def set_role(name: str, role: str) -> None:
    """Change a user's role."""
    try:
        _store().set_role(name, Role(role))
    except (ValueError, UserStoreError) as exc:
        _fail(str(exc))
    _revoke(name)
    click.echo(f"{name} is now {role}; their sessions are ended")


@users_cli.command("set-password")
@click.argument("name")
def set_password(name: str) -> None:
    """Change a user's password (read from stdin) and end their sessions."""
    try:
        _store().set_password(name, _read_password())
    except (ValueError, UserStoreError) as exc:
        _fail(str(exc))
    _revoke(name)
    click.echo(f"password of {name} changed; their sessions are ended")


@users_cli.command("revoke")
@click.argument("name")
def revoke_sessions(name: str) -> None:
    """End every session of a user now, on every worker and host ("sign out everywhere")."""
    try:
        known = _store().get(name) is not None
    except UserStoreError as exc:
        _fail(str(exc))
    if not known:
        _fail(f"no user named {name!r}")
    _revoke(name)
    click.echo(f"every session of {name} is ended")


def ensure_demo_user(store: UserStore, env: str) -> bool:
    """Create the demo/demo admin in development; return whether it was created."""
    if env != "development":
        return False
    if store.get("demo") is not None:
        return False
    store.add("demo", "demo", Role.ADMIN, demo=True)
    return True


@demo_cli.command("user")
def demo_user() -> None:
    """Create the demo/demo admin (development only)."""
    settings = current_app.config["BAGBOARD_SETTINGS"]
    if settings.env != "development":
        _fail("the demo account exists only in development (BAGBOARD_ENV=development)")
    created = ensure_demo_user(_store(), settings.env)
    click.echo("created demo / demo (admin)" if created else "demo user already exists")


@demo_cli.command("seed")
@click.option("--size", type=click.Choice(["tiny", "small", "medium"]), default="small", show_default=True)
@click.option("--seed", "seed_value", type=int, default=7, show_default=True, help="Same seed, same data.")
@click.option("--raw-bucket", help="Seed this bucket instead of BAGBOARD_RAW_BUCKET (gs://… or file:///…).")
@click.option("--ml-bucket", help="Seed this bucket instead of BAGBOARD_ML_BUCKET.")
@click.option("--no-refresh", is_flag=True, help="Do not rebuild the inventory afterwards.")
@click.option("--create-buckets", is_flag=True, help="Create missing gs:// buckets first (emulator only).")
def demo_seed(
    size: str, seed_value: int, raw_bucket: str | None, ml_bucket: str | None, no_refresh: bool, create_buckets: bool
) -> None:
    """Write real demo bags and ML samples into the buckets, then build the inventory."""
    from src.demo.seed import create_emulator_buckets, seed_buckets

    settings = current_app.config["BAGBOARD_SETTINGS"]
    raw_url = raw_bucket or settings.raw_bucket
    ml_url = ml_bucket or settings.ml_bucket
    try:
        if create_buckets:
            for name in create_emulator_buckets(raw_url, ml_url):
                click.echo(f"created bucket {name}", err=True)
        summary = seed_buckets(raw_url, ml_url, settings.data_root, size=size, seed=seed_value, progress=_progress)
    except (ValueError, StorageError) as exc:
        _fail(str(exc))
    click.echo(
        f"seeded {summary.runs} runs, {summary.bags} bags ({summary.ros1_bags} ROS1, {summary.ros2_bags} ROS2), "
        f"{summary.samples} ML samples, export {summary.export_id} in {summary.seconds:.1f} s"
    )
    if ensure_demo_user(_store(), settings.env):
        click.echo("created demo / demo (admin) — development only")
    if not no_refresh and raw_url == settings.raw_bucket and ml_url == settings.ml_bucket:
        _refresh_inventory()


def _progress(message: str, *_: object) -> None:
    click.echo(message, err=True)


def _refresh_inventory(prefixes: tuple[str, ...] = ()) -> dict:
    services = get_services()
    try:
        # The CLI is not a web worker: build here, with progress on stderr.
        services.inventory.refresh_inventory(progress=_progress, prefixes=list(prefixes) or None, in_process=True)
    except ValueError as exc:
        _fail(f"bad --prefix: {exc}")
    except StorageError as exc:
        _fail(f"inventory refresh failed: {exc}")
    info = services.inventory.get_cache_info()
    click.echo(
        f"inventory: {info['runs']} runs, {info['objects']['raw']} raw and {info['objects']['ml']} ML objects, "
        f"{info['unrecognised_count']} unrecognised, built in {info['last_refresh_duration']:.1f} s"
    )
    return info


@inventory_cli.command("refresh")
@click.option(
    "--prefix",
    "prefixes",
    multiple=True,
    help="Refresh only this subtree (cid/regionid/…, one to six levels) and merge it in; repeatable.",
)
def inventory_refresh(prefixes: tuple[str, ...]) -> None:
    """List both buckets (or only --prefix subtrees), update the inventory and write its snapshot."""
    _refresh_inventory(prefixes)


@inventory_cli.command("info")
@click.option("--json", "as_json", is_flag=True, help="Print the cache info as JSON.")
def inventory_info(as_json: bool) -> None:
    """Show the inventory's age, counts and staleness."""
    info = get_services().inventory.get_cache_info()
    if as_json:
        click.echo(json.dumps(info, indent=2, default=str))
        return
    for key, value in info.items():
        click.echo(f"{key}: {value}")


@inventory_cli.command("runs")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines' worth as one JSON array.")
@click.option("--cid")
@click.option("--regionid")
@click.option("--fieldid")
@click.option("--twid")
@click.option("--lbid")
def inventory_runs(as_json: bool, **filters: str | None) -> None:
    """List runs with their raw bag and ML sample counts."""
    services = get_services()
    if services.inventory.get_full_inventory(build_if_missing=False) is None:
        _fail("no inventory yet: run 'flask --app app inventory refresh'")
    try:
        runs = services.inventory.get_runs({k: v for k, v in filters.items() if v})
    except ValueError as exc:
        _fail(str(exc))
    rows = [
        {
            "coordinate": "/".join(str(row[level]) for level in HIERARCHY_LEVELS),
            "raw_bags": int(row["raw_bags"]),
            "raw_bytes": int(row["raw_bytes"]),
            "ml_samples": int(row["ml_samples"]),
        }
        for row in runs.to_dict("records")
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(f"{row['coordinate']}\t{row['raw_bags']} bags\t{row['ml_samples']} samples")


def register_cli(server: Flask) -> None:
    """Attach the command groups to the Flask CLI."""
    server.cli.add_command(users_cli)
    server.cli.add_command(demo_cli)
    server.cli.add_command(inventory_cli)
    server.cli.add_command(batch_cli)
    register_ops_cli(server)


# -- ops: the pipeline and its jobs, on the same job system as the UI --------------------------------------------

pipeline_cli = AppGroup("pipeline", help="Download, extract and analyse one run through the job system.")
jobs_cli = AppGroup("jobs", help="List, show and cancel jobs (the UI's Jobs tab).")
CLI_ACTOR = "cli"
# A coordinate or job id the command cannot use: a usage error, as click's own.
USAGE_ERROR = 2
PIPELINE_KINDS = {"download": JobKind.DOWNLOAD, "extract": JobKind.EXTRACT, "analyse": JobKind.ANALYZE}


@dataclass(frozen=True)
class CliActor:
    """Whoever runs the ops CLI: shell access to the server already is operator power, so jobs are theirs."""

    name: str = CLI_ACTOR
    role: Role = Role.OPERATOR

    def can(self, required: Role) -> bool:
        """Tell whether the CLI's role includes required."""
        return self.role.allows(required)


def _usage_error(message: str) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    sys.exit(USAGE_ERROR)


def _coordinate(value: str) -> RunCoordinate:
    try:
        return RunCoordinate.from_path(value.strip("/"))
    except ValueError as exc:
        _usage_error(f"bad coordinate {value!r}: {exc}")


def _runner() -> JobRunner:
    runner = get_services().jobs
    if runner is None:
        _fail("this process has no job runner")
    return runner


def job_dict(job: Job) -> dict[str, Any]:
    """Return a job as JSON-ready data."""
    return {**dataclass_to_dict(job), "percent": round(job.percent, 1)}


def _job_line(job: Job) -> str:
    return f"{job.id}  {job.kind.value:<9} {job.status.value:<11} {job.percent:5.1f}%  {job.started_by:<8} {job.target}"


def follow_job(registry: Any, job_id: str, *, poll: float = 0.5, tty: bool | None = None) -> Job:
    """Show a job's progress until it ends (a bar on a terminal, a line per change otherwise); return it."""
    tty = sys.stdout.isatty() if tty is None else tty
    last = ""
    while True:
        job = registry.get(job_id)
        if job is None:
            _fail(f"job {job_id} disappeared from the registry")
        line = f"{job.status.value} {job.percent:5.1f}% {job.message}".rstrip()
        if line != last:
            if tty:
                bar = "#" * int(job.percent / 5)
                click.echo(f"\r[{bar:<20}] {line[:100]:<100}", nl=False)
            else:
                click.echo(f"{job.kind.value} {job.target}: {line}")
            last = line
        if not job.is_active:
            if tty:
                click.echo()
            return job
        time.sleep(poll)


def _submit(kind: JobKind, coord: RunCoordinate, wait: bool, as_json: bool) -> None:
    runner = _runner()
    target = coord.to_path_str()
    try:
        job = runner.submit(kind, target, {"coordinate": target}, CliActor())
    except (ValueError, RuntimeError) as exc:
        _fail(str(exc))
    if not wait and runner.celery is None:
        # Without Celery this process is the job's worker: leaving now would interrupt it.
        click.echo("no Celery broker configured: this process runs the job, so it waits for it", err=True)
        wait = True
    if not wait:
        click.echo(json.dumps(job_dict(job)) if as_json else f"{job.id} {kind.value} {target}: {job.status.value}")
        return
    if not as_json:
        click.echo(f"{job.id} {kind.value} {target}", err=True)
    job = follow_job(runner.registry, job.id, tty=False if as_json else None)
    if as_json:
        click.echo(json.dumps(job_dict(job)))
    elif job.status in (ProcessingStatus.COMPLETE, ProcessingStatus.CACHED):
        click.echo(f"{kind.value} {target}: complete {json.dumps(job.result, default=str)}")
    if job.status not in (ProcessingStatus.COMPLETE, ProcessingStatus.CACHED):
        click.echo(f"Error: {job.error or job.status.value}", err=True)
        sys.exit(1)


def _pipeline_command(name: str, kind: JobKind) -> click.Command:
    @click.argument("coordinate")
    @click.option("--wait", is_flag=True, help="Follow the job's progress; exit 1 with its error if it fails.")
    @click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
    def command(coordinate: str, wait: bool, as_json: bool) -> None:
        _submit(kind, _coordinate(coordinate), wait, as_json)

    command.__doc__ = f"Start (or join) the {name} job of a run COORD (cid/regionid/fieldid/twid/lbid/timestamp)."
    return pipeline_cli.command(name)(command)


for _name, _kind in PIPELINE_KINDS.items():
    _pipeline_command(_name, _kind)


@pipeline_cli.command("status")
@click.argument("coordinate")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def pipeline_status(coordinate: str, as_json: bool) -> None:
    """Show what is done for a run COORD (downloaded, extracted, analysed) and its active jobs."""
    coord = _coordinate(coordinate)
    services = get_services()
    raw = services.local_state.check_raw_downloaded(coord)
    extracted = services.local_state.check_extracted(coord).extracted
    target = coord.to_path_str()
    active = [job for job in _runner().registry.list(limit=500, active_only=True) if job.target == target]
    status = {
        "coordinate": target,
        "downloaded": raw.downloaded,
        "bags": raw.bag_count,
        "extracted": extracted,
        "analysed": extracted and services.analytics.has_current_analysis(coord),
        "active_jobs": [job_dict(job) for job in active],
    }
    if as_json:
        click.echo(json.dumps(status, indent=2))
        return
    click.echo(f"{target}")
    click.echo(f"  downloaded: {'yes' if raw.downloaded else 'no'} ({raw.bag_count} bags)")
    click.echo(f"  extracted:  {'yes' if extracted else 'no'}")
    click.echo(f"  analysed:   {'yes' if status['analysed'] else 'no'}")
    for job in active:
        click.echo(f"  active: {_job_line(job)}")


@jobs_cli.command("list")
@click.option("--active", is_flag=True, help="Only pending and running jobs.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the jobs as a JSON array.")
def jobs_list(active: bool, limit: int, as_json: bool) -> None:
    """List jobs, newest first: id, kind, status, progress, who started it, target."""
    jobs = _runner().registry.list(limit=limit, active_only=active)
    if as_json:
        click.echo(json.dumps([job_dict(job) for job in jobs], indent=2))
        return
    for job in jobs:
        click.echo(_job_line(job))


def _job_or_exit(job_id: str) -> Job:
    job = _runner().registry.get(job_id)
    if job is None:
        _usage_error(f"no job {job_id!r}")
    return job


@jobs_cli.command("show")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
def jobs_show(job_id: str, as_json: bool) -> None:
    """Show one job: status, progress, error, result and the tail of its log."""
    job = _job_or_exit(job_id)
    if as_json:
        click.echo(json.dumps(job_dict(job), indent=2))
        return
    click.echo(_job_line(job))
    for label, value in (("message", job.message), ("error", job.error), ("result", job.result or None)):
        if value:
            click.echo(f"  {label}: {value}")
    for line in job.log_tail:
        click.echo(f"  | {line}")


@jobs_cli.command("cancel")
@click.argument("job_id")
def jobs_cancel(job_id: str) -> None:
    """Ask a pending or running job to stop."""
    job = _job_or_exit(job_id)
    if not _runner().cancel(job.id, CliActor()):
        _fail(f"job {job.id} is not active ({job.status.value})")
    click.echo(f"cancel requested for {job.id}")


def register_ops_cli(server: Flask) -> None:
    """Attach the pipeline and jobs groups to the Flask CLI."""
    server.cli.add_command(pipeline_cli)
    server.cli.add_command(jobs_cli)
