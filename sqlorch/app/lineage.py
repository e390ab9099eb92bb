"""The `sqlorch lineage` and `sqlorch diff` commands: load, compute, render."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from sqlorch.lineage.model import ModelLineage
from sqlorch.lineage.service import SQL_KINDS, Columns, LineageIndex
from sqlorch.settings import Settings

if TYPE_CHECKING:
    from sqlorch.lineage.impact import Impact


def materialized_columns(project: Any) -> tuple[dict[str, Columns], str | None]:
    """Return the columns of materialized assets, or why some are unknown.

    The state store records the columns of every materialization; the warehouse's catalog
    is read only for relations it has none for (sources nothing produces, tables built
    before sqlorch recorded columns), and only when no other process holds the file.
    """
    from sqlorch.lineage.service import warehouse_columns
    from sqlorch.state.store import StateStore

    store = StateStore(project.settings.state_path, readonly=True)
    try:
        recorded = store.latest_columns()
        states = store.asset_states()
    finally:
        store.close()
    graph = project.graph
    for key, node in graph.assets.items():
        # a model whose SQL changed since it was built: its SQL, not the table, says what
        # its columns will be
        state = states.get(key)
        if node.kind in SQL_KINDS and state is not None and state.code_version != node.code_version:
            recorded.pop(key, None)
    if all(k in recorded for k in graph.assets):
        return recorded, None
    try:
        catalog, problem = warehouse_columns(project)
    except Exception as exc:  # noqa: BLE001 - lineage falls back to yml and the SQL
        return recorded, f"the warehouse's columns could not be read ({exc})"
    return {**catalog, **recorded}, problem


def lineage_command(
    settings: Settings,
    ref: str,
    *,
    direction: str,
    depth: int | None,
    with_keys: bool,
    as_json: bool,
    console: Any,
    emit_json: Callable[[Any], None],
    warn: Callable[[str], None],
) -> None:
    """Run `sqlorch lineage REF`."""
    # resolve the reference on the graph before compiling anything
    from sqlorch.lineage.service import build_index
    from sqlorch.lineage.trace import downstream_tree, split_column, upstream_tree
    from sqlorch.load.project import load_project

    project = load_project(settings)
    key, column = split_column(project.graph, ref)
    materialized, problem = materialized_columns(project)
    if problem:
        warn(f"Lineage: {problem}.")
    keys = None if direction == "downstream" else [key]
    index = build_index(project, materialized=materialized, keys=keys)
    for message in index.warnings:
        warn(message)
    graph = project.graph
    if column is None:
        doc = table_document(index, key)
        if as_json:
            emit_json(doc)
        else:
            render_table(console, doc)
        return
    lineage = index.assets.get(key)
    _check_column(key, column, lineage)
    if direction == "downstream":
        tree = downstream_tree(graph, index.assets, key, column, depth=depth, with_keys=with_keys)
    else:
        tree = upstream_tree(graph, index.assets, key, column, depth=depth, with_keys=with_keys)
    if as_json:
        emit_json(tree)
    else:
        render_tree(console, tree, direction)


def _check_column(key: str, column: str, lineage: ModelLineage | None) -> None:
    from sqlorch.errors import SelectionError

    if lineage is None or lineage.error or lineage.incomplete or not lineage.columns:
        return  # the column may exist: the trace says what is unknown
    if lineage.column(column) is None:
        raise SelectionError(
            f"{key} has no column {column!r}. Its columns: {', '.join(lineage.column_names)}."
        )


def table_document(index: LineageIndex, key: str) -> dict[str, Any]:
    """Every column of `key` with its direct upstream columns (the JSON of `lineage KEY`)."""
    node = index.graph.assets[key]
    lineage = index.assets.get(key) or ModelLineage()
    types = dict(index.columns.get(key, []))
    hidden = index.hidden.get(key)
    return {
        "asset": key,
        "kind": node.kind.value,
        "file": node.file,
        "columns": [
            {
                "name": c.name,
                "type": types.get(c.name) or None,
                "upstream": [{"column": e.ref, "transform": e.transform.value} for e in c.upstream],
                "error": c.error,
            }
            for c in lineage.columns
        ],
        "keys": [{"column": e.ref, "transform": e.transform.value} for e in lineage.keys],
        "reads": list(lineage.tables),
        "hidden_dependencies": list(hidden.tables) if hidden else [],
        "notes": list(lineage.notes),
        "error": lineage.error,
    }


def render_table(console: Any, doc: Mapping[str, Any]) -> None:
    """Print `table_document` output for a person."""
    from rich.table import Table

    from sqlorch.cli.render import escape

    where = f", {doc['file']}" if doc.get("file") else ""
    console.print(f"[bold]{escape(doc['asset'])}[/] ({doc['kind']}{escape(where)})")
    if doc.get("error"):
        console.print(f"[red]lineage unknown:[/] {escape(doc['error'])}")
    for note in doc.get("notes") or ():
        console.print(f"[dim]{escape(note)}[/]")
    table = Table(box=None, pad_edge=False)
    for col in ("column", "transform", "upstream"):
        table.add_column(col, overflow="fold")
    for c in doc["columns"]:
        if c["error"]:
            table.add_row(escape(c["name"]), "[yellow]unknown[/]", escape(c["error"]))
            continue
        if not c["upstream"]:
            table.add_row(escape(c["name"]), "-", "-")
            continue
        kinds = sorted({u["transform"] for u in c["upstream"]})
        table.add_row(
            escape(c["name"]),
            ", ".join(kinds),
            escape(", ".join(u["column"] for u in c["upstream"])),
        )
    console.print(table)
    if doc.get("keys"):
        by_kind: dict[str, list[str]] = {}
        for k in doc["keys"]:
            by_kind.setdefault(k["transform"], []).append(k["column"])
        for kind, cols in sorted(by_kind.items()):
            console.print(f"{kind.replace('_', ' ')}: {escape(', '.join(cols))}")
    if doc.get("hidden_dependencies"):
        console.print(
            "[yellow]hidden dependencies[/] (read without ref/source): "
            + escape(", ".join(doc["hidden_dependencies"]))
        )


def render_tree(console: Any, tree: Mapping[str, Any], direction: str) -> None:
    """Print a lineage tree for a person."""
    from sqlorch.cli.render import escape

    def label(node: Mapping[str, Any]) -> str:
        text = f"{escape(node['column'])} [dim]({node.get('kind', '?')})[/]"
        if node.get("transform"):
            text = f"[cyan]{node['transform']:<11}[/] " + text
        if node.get("error"):
            text += f" [yellow]lineage unknown: {escape(node['error'])}[/]"
        elif node.get("note"):
            text += f" [dim]— {escape(node['note'])}[/]"
        return text

    lines = [label(tree)]

    def walk(node: Mapping[str, Any], prefix: str) -> None:
        children = node.get(direction) or []
        for i, child in enumerate(children):
            last = i == len(children) - 1
            lines.append(prefix + ("└── " if last else "├── ") + label(child))
            walk(child, prefix + ("    " if last else "│   "))

    walk(tree, "")
    if not tree.get(direction) and not tree.get("error") and not tree.get("note"):
        lines.append(f"[dim](no {direction} columns)[/]")
    for line in lines:
        console.print(line, highlight=False)


def compute_impact(project: Any, warn: Callable[[str], None]) -> tuple[Impact, LineageIndex]:
    """Lineage of the working tree compared with the last materialized code versions."""
    from sqlorch.lineage.service import build_index, changes_since_materialized
    from sqlorch.state.store import StateStore

    store = StateStore(project.settings.state_path, readonly=True)
    try:
        states = store.asset_states()
    finally:
        store.close()
    versions = {k: s.code_version for k, s in states.items() if s.last_materialized_at}
    materialized, problem = materialized_columns(project)
    if problem:
        warn(f"Lineage: {problem}.")
    index = build_index(project, materialized=materialized)
    for message in index.warnings:
        warn(message)
    return changes_since_materialized(project, index, versions), index


def impact_document(impact: Impact) -> dict[str, Any]:
    """The JSON of `sqlorch diff`."""
    return {
        "changes": [
            {
                "key": c.key,
                "file": c.file,
                "status": c.status.value,
                "breaking": c.is_breaking,
                "added": list(c.added),
                "removed": list(c.removed),
                "modified": list(c.modified),
                "renamed": [{"from": a, "to": b} for a, b in c.renamed],
                "keys_changed": c.keys_changed,
                "unknown": c.unknown,
                "affected": list(c.affected),
            }
            for c in impact.changes
        ],
        "affected_assets": sorted(impact.affected_assets),
        "breaking": impact.is_breaking,
    }


def render_impact(console: Any, doc: Mapping[str, Any]) -> None:
    """Print `sqlorch diff` for a person."""
    from sqlorch.cli.render import escape

    changes = doc["changes"]
    if not changes:
        console.print("No model changed since it was last materialized.")
        return
    console.print(f"{len(changes)} model(s) changed since their last materialization:")
    for c in changes:
        where = f" ({c['file']})" if c.get("file") else ""
        verdict = "[red]breaking[/]" if c["breaking"] else "[green]non-breaking[/]"
        console.print(f"  [bold]{escape(c['key'])}[/]{escape(where)} {c['status']}: {verdict}")
        for label in ("added", "removed", "modified"):
            if c[label]:
                console.print(f"      {label}: {escape(', '.join(c[label]))}")
        if c["renamed"]:
            pairs = ", ".join(f"{r['from']} -> {r['to']}" for r in c["renamed"])
            console.print(f"      renamed: {escape(pairs)}")
        if c["keys_changed"]:
            console.print("      filters, joins or grouping changed: every row may differ")
        if c["unknown"]:
            console.print(f"      [yellow]{escape(c['unknown'])}[/]")
        if c["status"] != "new":
            affected = c["affected"]
            shown = ", ".join(affected[:12]) + (
                f", ... ({len(affected)} in all)" if len(affected) > 12 else ""
            )
            console.print(f"      affected downstream: {escape(shown) if affected else '(none)'}")


def skip_non_breaking_downstream(
    project: Any, plan: Any, warn: Callable[[str], None], console: Any
) -> Any:
    """`build --skip-non-breaking`: drop the steps no breaking change reaches (never raises)."""
    from sqlorch.cli.render import escape
    from sqlorch.lineage.impact import skip_unaffected

    try:
        impact, _index = compute_impact(project, warn)
        filtered, dropped = skip_unaffected(plan, project.graph, impact)
    except Exception as exc:  # noqa: BLE001 - lineage never stops a build
        warn(f"--skip-non-breaking: lineage unavailable ({exc}); building the whole plan.")
        return plan
    for key, why in dropped.items():
        console.print(f"[dim]skip     {escape(key)}: {escape(why)}[/]")
    return filtered
