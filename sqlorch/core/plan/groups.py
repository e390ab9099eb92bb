"""Load groups: assets one load produces together (a dlt source's tables) run together.

A load writes every table of its group, so when a plan runs one of them it runs all: the
others are added with the reason that they are loaded with it, and their checks with them.
"""

from __future__ import annotations

from sqlorch.core.graph import AssetGraph
from sqlorch.core.plan.definition import Plan, Step
from sqlorch.core.plan.staleness import GROUP_KEY, load_groups, loaded_together

__all__ = ["GROUP_KEY", "with_load_groups"]


def with_load_groups(graph: AssetGraph, plan: Plan) -> Plan:
    """Add to `plan` every member of a load group one of whose members it runs.

    The planner already plans the stale group's members among the selected assets (and what
    is downstream of them); this adds the members the selection left out.
    """
    groups = load_groups(graph)
    if not groups:
        return plan
    steps = {s.key: s for s in plan.steps}
    added: dict[str, Step] = {}
    for members in groups.values():
        first = next((steps[k] for k in sorted(members) if k in steps), None)
        if first is None:
            continue
        for key in members:
            if key not in steps:
                added[key] = Step(key, first.kind, (loaded_together(first.key),), first.partitions)
    if not added:
        return plan
    steps.update(added)
    checks = set(plan.checks)
    checks.update(
        c.unique_id for c in graph.checks.values() if any(k in added for k in c.asset_keys)
    )
    ordered = tuple(steps[k] for k in graph.topological(steps))
    return Plan(steps=ordered, checks=tuple(sorted(checks)), selected=plan.selected)
