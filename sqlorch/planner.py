"""The planner: graph + selection + state in, an ordered plan out (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlorch.graph import AssetGraph, AssetKind

if TYPE_CHECKING:
    from sqlorch.partition_plan import AssetPartitions


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
    materialized: Mapping[str, str | None] | None = None,
    partitions: Mapping[str, AssetPartitions] | None = None,
) -> Plan:
    """Plan the materialization of every selected asset that sqlorch can produce.

    Observed-only sources are never steps. A check (dbt test) runs when any asset it tests is
    selected, as dbt's default ("eager") indirect selection does.

    Args:
        graph: the merged asset graph.
        selected: the selected asset keys (sources included).
        materialized: asset key -> last materialization time, for the reasons shown.
        partitions: the partitions to run of each partitioned asset (see
            `partition_plan.plan_graph`); a partitioned asset with none is left out.
    """
    materialized = materialized or {}
    chosen = set(selected)
    steps = []
    for key in graph.topological(chosen):
        node = graph.assets[key]
        if not node.is_materializable:
            continue
        if partitions is not None and node.partitions is not None and key in partitions:
            planned = partitions[key]
            if not planned.parts:
                continue
            steps.append(
                Step(
                    key=key,
                    kind=node.kind,
                    reasons=planned.reasons,
                    partitions=tuple((a, b) for a, b in node.partitions.key_ranges(planned.parts)),
                )
            )
            continue
        last = materialized.get(key)
        reasons = ("never materialized",) if not last else (f"selected (last built {last})",)
        steps.append(Step(key=key, kind=node.kind, reasons=reasons))
    checks = sorted(
        c.unique_id for c in graph.checks.values() if any(k in chosen for k in c.asset_keys)
    )
    return Plan(steps=tuple(steps), checks=tuple(checks), selected=frozenset(chosen))
