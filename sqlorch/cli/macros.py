"""`sqlorch macros`: write sqlorch's dbt macros into the project."""

from __future__ import annotations

import click

from sqlorch.cli.options import common, console, handle_errors, load_settings


@click.command()
@common
@click.option("--print", "to_stdout", is_flag=True, help="Print the macros instead of writing.")
@handle_errors
def macros(
    project_dir: str | None,
    profiles_dir: str | None,
    target: str | None,
    debug: bool,
    to_stdout: bool,
) -> None:
    """Write sqlorch's dbt macros (sqlorch_window: a partition's filter) into the project."""
    from sqlorch.app.macros import macros_text, write_macros

    if to_stdout:
        click.echo(macros_text(), nl=False)
        return
    path, changed = write_macros(load_settings(project_dir, profiles_dir, target))
    state = "written" if changed else "already up to date"
    console().print(
        f"{path}: {state}. Use {{{{ sqlorch_window('your_time_column') }}}} in a model."
    )
