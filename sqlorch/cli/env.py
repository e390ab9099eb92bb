"""`sqlorch env drop NAME`: remove an environment (a pull request's schemas and state)."""

from __future__ import annotations

import click

from sqlorch.cli.options import common, console, handle_errors, load_settings


@click.group()
def env() -> None:
    """Environments (SQLORCH_ENV=NAME builds into NAME__<schema>): `drop NAME` removes one."""


@env.command()
@common
@click.argument("name")
@handle_errors
def drop(
    project_dir: str | None, profiles_dir: str | None, target: str | None, debug: bool, name: str
) -> None:
    """Drop environment NAME: every `NAME__*` schema of the target's database, and its state.

    Production's schemas and state are never touched. A pull request's cleanup job runs
    `sqlorch env drop pr_123` when the PR closes.
    """
    from sqlorch.app.environments import drop_environment
    from sqlorch.cli.render import escape

    settings = load_settings(project_dir, profiles_dir, target).production()
    result = drop_environment(settings, name)
    out = console()
    if result.schemas:
        out.print(f"Dropped {len(result.schemas)} schema(s): {escape(', '.join(result.schemas))}.")
    else:
        out.print(f"The warehouse holds no schema of environment {name!r}.")
    if result.state:
        out.print(f"Removed the environment's state ({escape(result.state)}).")
