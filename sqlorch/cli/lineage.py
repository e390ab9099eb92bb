"""`sqlorch lineage` and `diff`: column lineage, and what a change affects downstream."""

from __future__ import annotations

import click

from sqlorch.cli.options import common, console, emit_json, handle_errors, load_settings, warn


@click.command()
@click.argument("target_ref", metavar="KEY[.COLUMN]")
@common
@click.option(
    "--upstream",
    "direction",
    flag_value="upstream",
    default=True,
    help="Trace the columns it is derived from (default).",
)
@click.option(
    "--downstream", "direction", flag_value="downstream", help="Trace the columns derived from it."
)
@click.option("--depth", type=click.IntRange(min=1), help="Stop after N hops.")
@click.option(
    "--keys",
    "with_keys",
    is_flag=True,
    help="Also follow the columns queries filter, join or group on.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (DESIGN.md §10).")
@handle_errors
def lineage(
    target_ref: str,
    project_dir: str | None,
    profiles_dir: str | None,
    target: str | None,
    debug: bool,
    direction: str,
    depth: int | None,
    with_keys: bool,
    as_json: bool,
) -> None:
    """Column lineage: KEY.COLUMN as a tree, or every column of KEY with its direct upstream."""
    from sqlorch.app.lineage import trace_lineage

    answer = trace_lineage(
        load_settings(project_dir, profiles_dir, target),
        target_ref,
        direction=direction,
        depth=depth,
        with_keys=with_keys,
        warn=warn,
    )
    if as_json:
        emit_json(answer.document)
        return
    from sqlorch.cli.render_lineage import render_table, render_tree

    if answer.column is None:
        render_table(console(), answer.document)
    else:
        render_tree(console(), answer.document, answer.direction)


@click.command()
@common
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
def diff(
    project_dir: str | None,
    profiles_dir: str | None,
    target: str | None,
    debug: bool,
    as_json: bool,
) -> None:
    """Changed models since their last materialization, and the downstream columns affected."""
    from sqlorch.app.lineage import diff as changes
    from sqlorch.cli.render_lineage import render_impact

    doc = changes(load_settings(project_dir, profiles_dir, target), warn)
    if as_json:
        emit_json(doc)
    else:
        render_impact(console(), doc)
