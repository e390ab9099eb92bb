"""`sqlorch state migrate` and `sqlorch state copy`: upgrade or move the state store."""

from __future__ import annotations

import click

from sqlorch.cli.options import common, console, handle_errors, load_settings


@click.group()
def state() -> None:
    """Upgrade or move the state store (`migrate`, `copy --from sqlite --to postgresql://...`)."""


@state.command()
@common
@handle_errors
def migrate(
    project_dir: str | None, profiles_dir: str | None, target: str | None, debug: bool
) -> None:
    """Create or upgrade the state store (SQLORCH_STATE_URL / state_url, else the SQLite file)."""
    from sqlorch.app.stores import migrate_store

    result = migrate_store(load_settings(project_dir, profiles_dir, target))
    console().print(f"State store {result.location} is at schema version {result.version}.")


@state.command()
@common
@click.option(
    "--from",
    "source",
    default="sqlite",
    show_default=True,
    help="`sqlite` (the project's .sqlorch/state.db) or a path to a state.db.",
)
@click.option("--to", "dest", required=True, help="The PostgreSQL state URL to copy into.")
@handle_errors
def copy(
    project_dir: str | None,
    profiles_dir: str | None,
    target: str | None,
    debug: bool,
    source: str,
    dest: str,
) -> None:
    """Copy a SQLite state store into an empty PostgreSQL one (ids and history kept)."""
    from sqlorch.app.stores import copy_store
    from sqlorch.settings import mask_url

    rows = copy_store(load_settings(project_dir, profiles_dir, target), source, dest)
    total = sum(rows.values())
    detail = ", ".join(f"{t} {n}" for t, n in rows.items() if n)
    console().print(f"Copied {total} rows into {mask_url(dest)} ({detail or 'nothing to copy'}).")
    console().print("Set SQLORCH_STATE_URL (or `state_url`) to it to use it.")
