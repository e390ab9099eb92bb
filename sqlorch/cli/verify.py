"""`sqlorch verify`: build the selection with dbt and natively, and compare the relations."""

from __future__ import annotations

import json
import sys

import click

from sqlorch.cli.options import common, console, handle_errors, load_settings, selection


@click.command()
@common
@selection
@click.option(
    "--full-refresh",
    is_flag=True,
    help="Build both copies with dbt's --full-refresh (incremental models rebuilt).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
@handle_errors
def verify(
    project_dir: str | None,
    profiles_dir: str | None,
    target: str | None,
    debug: bool,
    select: tuple[str, ...],
    exclude: tuple[str, ...],
    full_refresh: bool,
    as_json: bool,
) -> None:
    """Build the selected dbt nodes with dbt and natively into two copies; compare them.

    Both copies start from the warehouse as it is: on DuckDB two copies of the file (under
    .sqlorch/verify/), on PostgreSQL two copies of the database (CREATE DATABASE ... TEMPLATE:
    needs CREATEDB and no other session on it). Per model: relation kind, column names and
    types, row count and a content hash; per dbt test: its outcome. Exit 1 when anything
    differs.
    """
    from sqlorch.app.verify import verify as run_verify
    from sqlorch.cli.render import escape

    settings = load_settings(project_dir, profiles_dir, target)
    result = run_verify(settings, select, exclude, full_refresh=full_refresh)
    if as_json:
        doc = {
            "same": result.same,
            "models": [
                {
                    "key": m.key,
                    "execution": m.execution,
                    "same": m.same,
                    "differences": list(m.differences),
                    "rows": m.native.rows,
                    "kind": m.native.kind,
                    "columns": [list(c) for c in m.native.columns],
                }
                for m in result.models
            ],
            "tests": {uid: {"dbt": a, "native": b} for uid, (a, b) in result.tests.items()},
            "failed_runs": list(result.failed_runs),
        }
        click.echo(json.dumps(doc, indent=2))
    else:
        out = console()
        for m in result.models:
            mark = "[green]SAME[/]" if m.same else "[red]DIFF[/]"
            detail = "; ".join(m.differences) or f"{m.native.kind}, {m.native.rows} rows"
            out.print(f"{mark} {escape(m.key):<44} {escape(detail)} [dim]{escape(m.execution)}[/]")
        for uid, (a, b) in result.tests.items():
            if a != b:
                out.print(f"[red]DIFF[/] test {escape(uid)}: dbt {a}, native {b}")
        for mode in result.failed_runs:
            out.print(f"[red]The {mode} build failed[/]: see `sqlorch logs` under .sqlorch/verify/")
        same = sum(1 for m in result.models if m.same)
        tests_same = sum(1 for a, b in result.tests.values() if a == b)
        out.print(
            f"{same} of {len(result.models)} models and {tests_same} of {len(result.tests)} "
            "tests the same both ways."
        )
    if not result.same:
        sys.exit(1)
