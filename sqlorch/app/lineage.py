"""Column lineage and `diff` as use cases: load, compute, return documents (no printing).

The terminal renderers of these documents live in `sqlorch.cli.render_lineage`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlorch.lineage.model import ModelLineage
from sqlorch.lineage.service import SQL_KINDS, Columns, LineageIndex
from sqlorch.settings import Settings

if TYPE_CHECKING:
    from sqlorch.core.plan.definition import Plan
    from sqlorch.lineage.impact import Impact
    from sqlorch.load.project import Project


def materialized_columns(project: Project) -> tuple[dict[str, Columns], str | None]:
    """Return the columns of materialized assets, or why some are unknown.

    The state store records the columns of every materialization; the warehouse's catalog
    is read only for relations it has none for (sources nothing produces, tables built
    before sqlorch recorded columns), and only when no other process holds the file.
    """
    from sqlorch.lineage.service import warehouse_columns
    from sqlorch.state.store import open_store

    store = open_store(project.settings, readonly=True)
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
    missing = [k for k in graph.assets if k not in recorded]
    try:
        catalog, problem = warehouse_columns(project, missing)
    except Exception as exc:  # noqa: BLE001 - lineage falls back to yml and the SQL
        return recorded, f"the warehouse's columns could not be read ({exc})"
    return {**catalog, **recorded}, problem


@dataclass(frozen=True, slots=True)
class LineageAnswer:
    """What `sqlorch lineage REF` shows: a table document, or a column's tree."""

    document: dict[str, Any]
    #: None: `document` is `table_document` (REF named a table); else the traced column
    column: str | None
    #: "upstream" or "downstream": the key of each tree node's children
    direction: str


def trace_lineage(
    settings: Settings,
    ref: str,
    *,
    direction: str,
    depth: int | None,
    with_keys: bool,
    warn: Callable[[str], None],
) -> LineageAnswer:
    """Answer `sqlorch lineage REF`: every column of a table, or one column's tree."""
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
        return LineageAnswer(table_document(index, key), None, direction)
    lineage = index.assets.get(key)
    _check_column(key, column, lineage)
    if direction == "downstream":
        tree = downstream_tree(graph, index.assets, key, column, depth=depth, with_keys=with_keys)
    else:
        tree = upstream_tree(graph, index.assets, key, column, depth=depth, with_keys=with_keys)
    return LineageAnswer(tree, column, direction)


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


def compute_impact(project: Project, warn: Callable[[str], None]) -> tuple[Impact, LineageIndex]:
    """Lineage of the working tree compared with the last materialized code versions."""
    from sqlorch.lineage.service import build_index, changes_since_materialized
    from sqlorch.state.store import open_store

    # in an environment (a PR), "changed" means changed from what production last built
    store = open_store(project.settings.production(), readonly=True)
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


def skip_non_breaking(
    project: Project, plan: Plan, warn: Callable[[str], None]
) -> tuple[Plan, dict[str, str]]:
    """`build --skip-non-breaking`: drop the steps no breaking change reaches (never raises).

    Returns:
        The plan left and, per dropped asset, why it was dropped (nothing when lineage is
        unavailable: the whole plan is built, with a warning).
    """
    from sqlorch.lineage.impact import skip_unaffected

    try:
        impact, _index = compute_impact(project, warn)
        return skip_unaffected(plan, project.graph, impact)
    except Exception as exc:  # noqa: BLE001 - lineage never stops a build
        warn(f"--skip-non-breaking: lineage unavailable ({exc}); building the whole plan.")
        return plan, {}


def diff(settings: Settings, warn: Callable[[str], None]) -> dict[str, Any]:
    """Load the project; return what changed since materialization (`impact_document`)."""
    from sqlorch.load.project import load_project

    impact, _index = compute_impact(load_project(settings), warn)
    return impact_document(impact)
