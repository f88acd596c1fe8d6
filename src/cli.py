"""Command-line tools: `flask --app app users|demo|inventory …`."""

from __future__ import annotations

import json
import sys

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from src.auth.roles import Role
from src.auth.users import UserStore, UserStoreError
from src.cli_batch import batch_cli
from src.core.extensions import get_services
from src.models import HIERARCHY_LEVELS
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


def _fail(message: str) -> None:
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
def demo_seed(size: str, seed_value: int, raw_bucket: str | None, ml_bucket: str | None, no_refresh: bool) -> None:
    """Write real demo bags and ML samples into the buckets, then build the inventory."""
    from src.demo.seed import seed_buckets

    settings = current_app.config["BAGBOARD_SETTINGS"]
    raw_url = raw_bucket or settings.raw_bucket
    ml_url = ml_bucket or settings.ml_bucket
    try:
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
