"""The planner: graph + selection + state in, an ordered plan out (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from sqlorch.core.graph import AssetGraph
from sqlorch.core.plan.definition import Plan, Reason, ReasonKind, Step
from sqlorch.core.plan.partitions import AssetPartitions
from sqlorch.core.plan.staleness import StateSnapshot, stale_reasons, upstream_stale


def build_plan(
    graph: AssetGraph,
    selected: Collection[str],
    state: StateSnapshot | None = None,
    *,
    full: bool = False,
    partitions: Mapping[str, AssetPartitions] | None = None,
) -> Plan:
    """Plan the materialization of the stale assets among `selected` (all of them with `full`).

    Observed-only sources are never steps. A check (dbt test) runs when any asset it tests is
    planned, as dbt's default ("eager") indirect selection does; a selected observed source's
    checks run when something built from it is planned.

    Args:
        graph: the merged asset graph.
        selected: the selected asset keys (sources included).
        state: what the state store and warehouse know (None: nothing was ever built).
        full: rebuild every selected asset, stale or not.
        partitions: the partitions to run of each partitioned asset (see
            `sqlorch.core.plan.partitions.plan_graph`): they decide whether a partitioned
            asset is a step (one with none to run is not), and the step's partition ranges.
    """
    chosen = set(selected)
    stale = stale_reasons(graph, state or StateSnapshot(), chosen, full=full)
    if partitions is not None:
        stale = with_partitions(graph, chosen, stale, partitions)
    steps = []
    for key in graph.topological(stale):
        node = graph.assets[key]
        ranges = None
        if partitions is not None and node.partitions is not None and key in partitions:
            ranges = tuple((a, b) for a, b in node.partitions.key_ranges(partitions[key].parts))
        steps.append(Step(key=key, kind=node.kind, reasons=tuple(stale[key]), partitions=ranges))
    planned = {s.key for s in steps}
    # an observed source's checks validate the input of what is about to be rebuilt
    feeding = {
        k
        for k in chosen
        if k in graph.assets
        and not graph.assets[k].is_materializable
        and any(c in planned for c in graph.children(k))
    }
    checks = sorted(
        c.unique_id
        for c in graph.checks.values()
        if any(k in planned or k in feeding for k in c.asset_keys)
    )
    return Plan(steps=tuple(steps), checks=tuple(checks), selected=frozenset(chosen))


def with_partitions(
    graph: AssetGraph,
    keys: Collection[str],
    stale: Mapping[str, list[Reason]],
    partitions: Mapping[str, AssetPartitions],
) -> dict[str, list[Reason]]:
    """Let the partition plan decide for partitioned assets, and what follows from it.

    A partitioned asset is stale exactly when it has partitions to run (its ledger knows
    better than its last materialization); an unpartitioned asset keeps its own reasons and
    is stale when an upstream asset it reads will be rebuilt.
    """
    out: dict[str, list[Reason]] = {}
    for key in graph.topological(keys):
        node = graph.assets[key]
        if not node.is_materializable:
            continue
        if node.partitions is not None and key in partitions:
            if partitions[key].parts:
                to_run = Reason("partitions to run", ReasonKind.PARTITIONS_TO_RUN)
                out[key] = list(partitions[key].reasons) or [to_run]
            continue
        reasons = [r for r in stale.get(key, []) if r.kind is not ReasonKind.UPSTREAM_STALE]
        rebuilt = [d for d in node.deps if d in out]
        if rebuilt and not reasons:
            reasons = [upstream_stale(rebuilt[0])]
        if reasons:
            out[key] = reasons
    return out
