"""`sqlorch ls`, `status`, `partitions` and `wipe`: the assets and their partitions."""

from __future__ import annotations

import json

import click

from sqlorch.cli.options import (
    common,
    console,
    emit_json,
    handle_errors,
    load_settings,
    print_table,
    selection,
    warn,
)
from sqlorch.errors import ConfigError

_JSON_HELP = "Print JSON (DESIGN.md §10)."


@click.command(name="ls")
@common
@selection
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
@handle_errors
def ls(
    project_dir: str | None,
    profiles_dir: str | None,
    target: str | None,
    debug: bool,
    select: tuple[str, ...],
    exclude: tuple[str, ...],
    as_json: bool,
) -> None:
    """List assets: kind, key, upstream keys, partitions."""
    from sqlorch.app.assets import asset_document, list_assets

    settings = load_settings(project_dir, profiles_dir, target)
    # columns as materialized (recorded with each materialization), else from dbt yml
    nodes = list_assets(settings, select, exclude, warn, recorded_columns=as_json)
    if as_json:
        emit_json([asset_document(n) for n in nodes])
        return
    print_table(
        ("kind", "key", "upstream", "partitions"),
        [
            (
                n.kind.value,
                n.key,
                ", ".join(n.deps) or "-",
                json.dumps(n.partitions.describe()) if n.partitions else "-",
            )
            for n in nodes
        ],
    )


@click.command()
@common
@selection
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
@handle_errors
def status(
    project_dir: str | None,
    profiles_dir: str | None,
    target: str | None,
    debug: bool,
    select: tuple[str, ...],
    exclude: tuple[str, ...],
    as_json: bool,
) -> None:
    """Show each asset's last materialization, rows, duration, last run, and why it is stale."""
    from sqlorch.app.status import asset_status

    rows = asset_status(load_settings(project_dir, profiles_dir, target), select, exclude, warn)
    if as_json:
        emit_json(rows)
        return
    from sqlorch.cli.render import fmt_seconds

    colors = {"success": "green", "failed": "red", "skipped": "yellow"}
    print_table(
        ("kind", "key", "last materialized", "rows", "duration", "last run", "outcome", "stale"),
        [
            (
                r["kind"],
                r["key"],
                (r["last_materialized_at"] or "-")[:19].replace("T", " "),
                f"{r['rows']:,}" if isinstance(r["rows"], int) else "-",
                fmt_seconds(r["duration_s"]) or "-",
                r["last_run_id"] or "-",
                r["last_outcome"] or "-",
                "; ".join(r["reasons"]) or ("no" if r["presence_checked"] else _UNOBSERVED),
            )
            for r in rows
        ],
        right={"rows", "duration"},
        color=lambda col, value: colors.get(value) if col == "outcome" else None,
    )


#: what `status` says of a fresh asset whose relation it could not look for
_UNOBSERVED = "no by its history; presence in the warehouse not checked"


@click.command()
@click.argument("asset")
@common
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
def partitions(
    asset: str,
    project_dir: str | None,
    profiles_dir: str | None,
    target: str | None,
    debug: bool,
    as_json: bool,
) -> None:
    """Show an asset's partition ledger: done / missing / failed / stale ranges."""
    from sqlorch.app.partitions import partitions_report

    doc = partitions_report(load_settings(project_dir, profiles_dir, target), asset)
    if as_json:
        emit_json(doc)
        return
    from sqlorch.cli.render import escape
    from sqlorch.core.plan.explainer import ranges_text

    out = console()
    out.print(
        f"{escape(doc['key'])}: {doc['definition']['type']} partitions, "
        f"{doc['counts']['expected']:,} expected"
    )
    for label in ("done", "missing", "failed", "stale"):
        ranges = doc["partitions"].get(label) or []
        n = doc["counts"].get(label, 0)
        out.print(f"  {label:<8} {n:>8,}  " + escape(ranges_text(ranges)))


@click.command()
@click.argument("asset")
@common
@click.option("--from", "start", help="First date (or key), inclusive.")
@click.option("--to", "end", help="Last date (or key), inclusive.")
@click.option("--partition", "keys", multiple=True, help="A partition key to wipe (repeatable).")
@click.option("--delete-data", is_flag=True, help="Also delete the partitions' rows.")
@handle_errors
def wipe(
    asset: str,
    project_dir: str | None,
    profiles_dir: str | None,
    target: str | None,
    debug: bool,
    start: str | None,
    end: str | None,
    keys: tuple[str, ...],
    delete_data: bool,
) -> None:
    """Mark a range of an asset's partitions for rebuild (the next build runs them)."""
    from sqlorch.app.partitions import wipe_partitions

    if not (start or end or keys):
        raise ConfigError("wipe needs --from DATE and/or --to DATE, or --partition KEY.")
    settings = load_settings(project_dir, profiles_dir, target)
    n, rows = wipe_partitions(settings, asset, start, end, keys, delete_data)
    tail = f"; deleted {rows:,} rows" if delete_data else ""
    console().print(f"Wiped {n:,} partitions of {asset}{tail}. `sqlorch build` rebuilds them.")
