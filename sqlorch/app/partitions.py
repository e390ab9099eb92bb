"""What `sqlorch partitions`, `status` and `wipe` show and do with the partition ledger."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlorch.core.partitions.ranges import PartitionSet
from sqlorch.core.partitions.segments import Segment
from sqlorch.core.plan.partitions import AssetPartitions, plan_graph
from sqlorch.errors import ConfigError, PartitionError

if TYPE_CHECKING:
    from sqlorch.core.graph import AssetGraph, AssetNode
    from sqlorch.load.project import Project
    from sqlorch.settings import Settings
    from sqlorch.state.store import StateStore


def partition_doc(
    graph: AssetGraph,
    key: str,
    ledgers: Mapping[str, Sequence[Segment]],
    now: datetime,
    planned: AssetPartitions | None = None,
) -> dict[str, Any]:
    """The §10 `partitions` object of one asset: done / missing / failed / stale ranges.

    `planned` is the asset's partition plan as a build would make it (`plan_graph`, with
    the warehouse and the unpartitioned assets' state): `status`, `partitions` and `build`
    then agree by construction. Without it, the plan is made from the ledgers alone.
    """
    node = graph.assets[key]
    definition = node.partitions
    assert definition is not None
    if planned is None:
        planned = plan_graph(graph, [key], ledgers, now)[key]
    exist = definition.expected(now)
    detail = planned.plan
    missing = detail.missing if detail is not None else PartitionSet()
    failed = detail.failed if detail is not None else PartitionSet()
    stale = planned.parts - missing - failed
    done = planned.done
    return {
        "done": definition.key_ranges(done),
        "missing": definition.key_ranges(missing),
        "failed": definition.key_ranges(failed),
        "stale": definition.key_ranges(stale),
        "counts": {
            "expected": len(exist),
            "done": len(done),
            "missing": len(missing),
            "failed": len(failed),
            "stale": len(stale),
        },
    }


def _node(project: Project, asset: str) -> AssetNode:
    from sqlorch.core.selection import resolve_selection

    keys = resolve_selection(project.graph, [asset], []).keys
    if len(keys) != 1:
        raise ConfigError(f"{asset!r} names {len(keys)} assets; name exactly one (`schema.name`).")
    node = project.graph.assets[next(iter(keys))]
    if node.partitions is None:
        where = f" ({node.file})" if node.file else ""
        raise PartitionError(
            f"Asset {node.key}{where} has no partitions. Declare them with "
            "`@asset(partitions=daily(...))` or, for a dbt model, a microbatch config or "
            "`meta: {sqlorch: {partitions: ...}}`.",
            asset=node.key,
            file=node.file,
        )
    return node


def partitions_report(
    settings: Settings, asset: str, now: datetime | None = None
) -> dict[str, Any]:
    """Load the project and describe one asset's partitions (for `sqlorch partitions`)."""
    from sqlorch.load.project import load_project
    from sqlorch.state.store import open_store

    project = load_project(settings)
    node = _node(project, asset)
    assert node.partitions is not None
    store = open_store(settings, readonly=True)
    doc = planned_docs(project, store, now or datetime.now(UTC))[node.key]
    counts = doc.pop("counts")
    return {
        "key": node.key,
        "definition": node.partitions.describe(),
        "partitions": doc,
        "counts": counts,
    }


def wipe_partitions(
    settings: Settings,
    asset: str,
    start: str | None,
    end: str | None,
    keys: Sequence[str],
    delete_data: bool,
    now: datetime | None = None,
) -> tuple[int, int]:
    """Forget a range of an asset's partitions (and delete its rows); return (partitions, rows).

    Raises:
        PartitionError: the range or keys are invalid.
    """
    from sqlorch.load.project import load_project
    from sqlorch.state import ledger
    from sqlorch.state.store import open_store
    from sqlorch.warehouse.sql import filter_sql

    project = load_project(settings)
    node = _node(project, asset)
    definition = node.partitions
    assert definition is not None
    parts = definition.select(now or datetime.now(UTC), start, end, keys)
    rows = 0
    if delete_data and not definition.columns:
        raise PartitionError(
            f"Asset {node.key}'s partitions name no `column`, so their rows cannot be told "
            "apart: --delete-data would delete the whole table. Wipe without it, or add "
            "`column=` to the definition.",
            asset=node.key,
        )
    if delete_data:
        from sqlorch.warehouse.observe import open_warehouse

        warehouse = open_warehouse(
            project.target,
            needs_file=bool(project.python_assets),
            environment=project.settings.environment,
        )
        if warehouse is None:
            raise ConfigError("--delete-data needs the target's DuckDB file.")
        try:
            for prefix, lo, hi in parts.ranges():
                where, params = filter_sql(definition, prefix, lo, hi)
                rows += warehouse.delete_where(node.key, where, params)
        finally:
            warehouse.close()
    store = open_store(settings)
    ledger.wipe(store, node.key, definition, parts)
    return len(parts), rows


def planned_docs(
    project: Project,
    store: StateStore,
    now: datetime,
    planned: Mapping[str, AssetPartitions] | None = None,
) -> dict[str, dict[str, Any]]:
    """The §10 `partitions` object of every partitioned asset, from the plan a `build` of
    everything would make now (`planned`, else made here): one computation for `status`,
    `partitions` and `build`."""
    from sqlorch.app.plans import observe, plan_partitions, state_snapshot
    from sqlorch.state import ledger

    graph = project.graph
    definitions = {n.key: n.partitions for n in graph if n.partitions is not None}
    if planned is None:
        snapshot = state_snapshot(store, observe(project), graph)
        planned = plan_partitions(project, store, list(graph.assets), now, snapshot=snapshot)
    ledgers = ledger.all_segments(store, definitions)
    return {key: partition_doc(graph, key, ledgers, now, planned[key]) for key in definitions}
