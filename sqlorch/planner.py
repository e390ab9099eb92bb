"""The planner: graph + selection + state in, an ordered plan out (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlorch.graph import AssetGraph, AssetKind
from sqlorch.staleness import StateSnapshot, stale_reasons


@dataclass(frozen=True, slots=True)
class Step:
    """Materialize one asset (all of it; partition ranges come with partitioned assets)."""

    key: str
    kind: AssetKind
    reasons: tuple[str, ...]
    partitions: tuple[tuple[str, str], ...] | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """What a run will do, in dependency order."""

    steps: tuple[Step, ...]
    checks: tuple[str, ...]
    selected: frozenset[str]

    @property
    def keys(self) -> list[str]:
        """The keys of the steps, in order."""
        return [s.key for s in self.steps]

    def __len__(self) -> int:
        return len(self.steps)


def build_plan(
    graph: AssetGraph,
    selected: Collection[str],
    state: StateSnapshot | None = None,
    *,
    full: bool = False,
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
    """
    chosen = set(selected)
    stale = stale_reasons(graph, state or StateSnapshot(), chosen, full=full)
    steps = []
    for key in graph.topological(stale):
        node = graph.assets[key]
        steps.append(Step(key=key, kind=node.kind, reasons=tuple(stale[key])))
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
