"""`sqlorch runs`, `logs` and `history`: what ran, what it logged, an asset over time."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from sqlorch.cli.options import (
    common,
    console,
    emit_json,
    handle_errors,
    load_settings,
    print_table,
)

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

_LEVELS = ("debug", "info", "warning", "error")  # sqlorch.app.runs.LEVELS, without importing it


@click.command()
@common
@click.option("--json", "as_json", is_flag=True, help="Print JSON (DESIGN.md §10).")
@click.option("--limit", "-n", type=int, default=50, show_default=True, help="Newest N runs.")
@handle_errors
def runs(
    project_dir: str | None,
    profiles_dir: str | None,
    target: str | None,
    debug: bool,
    as_json: bool,
    limit: int,
) -> None:
    """List runs: id, started, finished, status, counts."""
    from sqlorch.app.runs import run_documents

    docs = run_documents(load_settings(project_dir, profiles_dir, target), limit)
    if as_json:
        emit_json(docs)
        return
    if not docs:
        console().print("No runs yet. `sqlorch build` starts one.")
        return
    colors = {"success": "green", "failed": "red", "running": "cyan"}
    # the aligned printer: a run id is never cut (piped, or at 80 columns) so it can be
    # pasted into `sqlorch logs`
    print_table(
        ("run", "started", "finished", "status", "ok", "failed", "skipped", "selection"),
        [
            (
                d["run_id"],
                d["started_at"][:19].replace("T", " "),
                (d["finished_at"] or "-")[:19].replace("T", " "),
                d["status"],
                str(d["assets"]["succeeded"]),
                str(d["assets"]["failed"]),
                str(d["assets"]["skipped"]),
                d["selection"] or "*",
            )
            for d in docs
        ],
        right={"ok", "failed", "skipped"},
        color=lambda head, cell: colors.get(cell, "yellow") if head == "status" else None,
    )


@click.command()
@click.argument("run_id", required=False)
@common
@click.option("--json", "as_json", is_flag=True, help="One JSON document per line (jq-ready).")
@click.option("--asset", "assets", multiple=True, help="Only events of this asset (key or name).")
@click.option(
    "--level",
    type=click.Choice(list(_LEVELS), case_sensitive=False),
    default="debug",
    show_default=True,
    help="Only events at or above this level.",
)
@handle_errors
def logs(
    run_id: str | None,
    project_dir: str | None,
    profiles_dir: str | None,
    target: str | None,
    debug: bool,
    as_json: bool,
    assets: tuple[str, ...],
    level: str,
) -> None:
    """Print a run's structured event log (default: the last run), filtered."""
    from sqlorch.app.runs import event_document, run_log
    from sqlorch.cli.render import print_event

    settings = load_settings(project_dir, profiles_dir, target)
    events = run_log(settings, run_id, assets=assets, level=level)
    out = None if as_json else console()
    for ev in events:
        if out is None:
            click.echo(json.dumps(event_document(ev), default=str))
        else:
            print_event(out, ev, debug=debug)


@click.command()
@click.argument("asset")
@common
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("--limit", "-n", type=click.IntRange(min=1), default=30, show_default=True)
@handle_errors
def history(
    asset: str,
    project_dir: str | None,
    profiles_dir: str | None,
    target: str | None,
    debug: bool,
    as_json: bool,
    limit: int,
) -> None:
    """Show an asset's materializations over time: rows, duration, checks, failures."""
    from sqlorch.app.history import history_of

    key, doc = history_of(load_settings(project_dir, profiles_dir, target), asset, limit)
    if as_json:
        emit_json(doc)
        return
    _print_history(console(), key, doc)


def _print_history(out: Console, key: str, doc: dict[str, Any]) -> None:
    """Print an asset's history: trends, one row per materialization, failures."""
    from sqlorch.cli.render import escape

    mats = doc["materializations"]
    out.print(f"[bold]{escape(key)}[/]: {len(mats)} materializations (newest last)")
    if mats:
        chrono = list(reversed(mats))
        _print_trends(out, chrono)
        out.print(_materializations_table(chrono))
    failing = [c for c in doc["checks"] if c["status"] in ("fail", "error", "warn")]
    for c in failing[:10]:
        color = "yellow" if c["status"] == "warn" else "red"
        out.print(
            f"[{color}]{c['status'].upper():<5}[/] {c['checked_at'][:16].replace('T', ' ')} "
            f"{escape(c['message'] or c['check'])}",
            highlight=False,
        )
    for f in doc["failures"][:10]:
        out.print(
            f"[red]{f['status'].upper():<7}[/] {(f['at'] or '')[:16].replace('T', ' ')} "
            f"run {f['run_id']}: {escape(f['error'] or '')}",
            highlight=False,
        )


def _print_trends(out: Console, chrono: list[dict[str, Any]]) -> None:
    """Print a sparkline of rows and of duration, oldest first."""
    from sqlorch.app.history import sparkline
    from sqlorch.cli.render import fmt_rows, fmt_seconds

    # a partitioned asset records each partition run and the whole table: plot the table
    whole = [m for m in chrono if m["partition"] is None] or chrono
    for label, field, fmt in (
        ("rows", "rows", fmt_rows),
        ("duration", "duration_s", fmt_seconds),
    ):
        values = [m[field] for m in whole]
        known = [v for v in values if v is not None]
        if not known:
            continue
        out.print(
            f"{label:<9} {sparkline(values)}  {fmt(values[-1]) or '-'} "
            f"[dim](min {fmt(min(known))}, max {fmt(max(known))})[/]",
            highlight=False,
        )


def _materializations_table(chrono: list[dict[str, Any]]) -> Table:
    """Return one row per materialization, oldest first: when, run, rows, duration, checks."""
    from rich.table import Table

    from sqlorch.cli.render import fmt_seconds

    partitioned = any(m["partition"] for m in chrono)
    table = Table(box=None, pad_edge=False)
    run_width = max((len(m["run_id"]) for m in chrono), default=0)
    for col in ("materialized", "run", "partition", "rows", "duration", "checks"):
        if col != "partition" or partitioned:
            table.add_column(
                col,
                no_wrap=col != "checks",
                justify="right" if col == "rows" else "left",
                # a run id is never cut, so it can be pasted into `sqlorch logs`
                min_width=run_width if col == "run" else None,
            )
    colors = {"pass": "green", "warn": "yellow", "fail": "red", "error": "red"}
    for m in chrono:
        counts: dict[str, int] = {}
        for c in m["checks"]:
            counts[c["status"]] = counts.get(c["status"], 0) + 1
        text = ", ".join(
            f"[{colors.get(st, 'dim')}]{n} {st}[/]" for st, n in sorted(counts.items())
        )
        table.add_row(
            m["materialized_at"][:16].replace("T", " "),
            m["run_id"],
            *([m["partition"] or "-"] if partitioned else []),
            f"{m['rows']:,}" if isinstance(m["rows"], int) else "-",
            fmt_seconds(m["duration_s"]) or "-",
            text or "-",
        )
    return table
