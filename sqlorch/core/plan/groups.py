"""Load groups: assets one load produces together (a dlt source's tables) run together.

A load writes every table of its group, so when a plan runs one of them it runs all: the
others are added with the reason that they are loaded with it, and their checks with them.
"""

from __future__ import annotations

from sqlorch.core.graph import AssetGraph
from sqlorch.core.plan.definition import Plan, Reason, ReasonKind, Step

#: the node metadata naming the group an asset is loaded with
GROUP_KEY = "load_group"


def with_load_groups(graph: AssetGraph, plan: Plan) -> Plan:
    """Add to `plan` every member of a load group one of whose members it runs."""
    groups: dict[str, list[str]] = {}
    for key, node in graph.assets.items():
        group = node.metadata.get(GROUP_KEY) if node.metadata else None
        if isinstance(group, str):
            groups.setdefault(group, []).append(key)
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
                reason = Reason(f"loaded together with {first.key}", ReasonKind.LOADED_TOGETHER)
                added[key] = Step(key, first.kind, (reason,), first.partitions)
    if not added:
        return plan
    steps.update(added)
    checks = set(plan.checks)
    checks.update(
        c.unique_id for c in graph.checks.values() if any(k in added for k in c.asset_keys)
    )
    ordered = tuple(steps[k] for k in graph.topological(steps))
    return Plan(steps=ordered, checks=tuple(sorted(checks)), selected=plan.selected)
