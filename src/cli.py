"""Command-line tools: `flask --app app users|demo|inventory …`."""

from __future__ import annotations

import sys

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from src.auth.roles import Role
from src.auth.users import UserStore, UserStoreError

users_cli = AppGroup("users", help="Manage the users file.")
demo_cli = AppGroup("demo", help="Create demo data to try bagboard without cloud credentials.")

ROLE_CHOICE = click.Choice([role.value for role in Role])


def _store() -> UserStore:
    return current_app.extensions["bagboard.users"]


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
    click.echo(f"removed {name}")


@users_cli.command("set-role")
@click.argument("name")
@click.argument("role", type=ROLE_CHOICE)
def set_role(name: str, role: str) -> None:
    """Change a user's role."""
    try:
        _store().set_role(name, Role(role))
    except (ValueError, UserStoreError) as exc:
        _fail(str(exc))
    click.echo(f"{name} is now {role}")


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


def register_cli(server: Flask) -> None:
    """Attach the command groups to the Flask CLI."""
    server.cli.add_command(users_cli)
    server.cli.add_command(demo_cli)
