"""The impact of a change: compare a model's lineage before and after, walk downstream (pure).

A change is *breaking* when it removes or renames a column, changes how a column is derived,
or changes the query's filters, joins or grouping (every row may differ); it is
*non-breaking* when it only adds columns or changes nothing a column depends on (a comment,
formatting). The columns downstream of every changed column are *affected*; a downstream
model none of whose columns are affected need not be rebuilt for that change.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from sqlorch.core.graph import AssetGraph
from sqlorch.core.plan.definition import Plan
from sqlorch.lineage.model import ModelLineage
from sqlorch.lineage.trace import reverse_edges


class ChangeStatus(StrEnum):
    """How a model differs from its last materialization."""

    NEW = "new"
    MODIFIED = "modified"


@dataclass(frozen=True, slots=True)
class ModelChange:
    """One changed model and what its change does to its columns."""

    key: str
    status: ChangeStatus
    file: str | None = None
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    modified: tuple[str, ...] = ()
    renamed: tuple[tuple[str, str], ...] = ()
    keys_changed: bool = False
    #: why the columns could not be compared (then the change counts as breaking)
    unknown: str | None = None
    affected: tuple[str, ...] = ()

    @property
    def is_breaking(self) -> bool:
        """True when downstream data may change meaning (see the module docstring)."""
        return bool(
            self.removed or self.modified or self.renamed or self.keys_changed or self.unknown
        )


@dataclass(frozen=True, slots=True)
class Impact:
    """Every changed model, and the downstream columns its change affects."""

    changes: tuple[ModelChange, ...] = ()
    affected_assets: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_breaking(self) -> bool:
        """True when any change is breaking."""
        return any(c.is_breaking for c in self.changes)


def compare(
    key: str,
    old: ModelLineage | None,
    new: ModelLineage,
    *,
    file: str | None = None,
    status: ChangeStatus = ChangeStatus.MODIFIED,
    unknown: str | None = None,
) -> ModelChange:
    """Compare the lineage of a model at its last materialization (`old`) with now (`new`)."""
    if status is ChangeStatus.NEW:
        return ModelChange(key, status, file, added=tuple(new.column_names))
    if old is None or old.error or new.error or old.incomplete or new.incomplete:
        why = unknown or old and old.error or new.error or "a SELECT * could not be expanded"
        return ModelChange(key, status, file, unknown=why or "lineage unknown")
    before = {c.name: c for c in old.columns}
    after = {c.name: c for c in new.columns}
    removed = [n for n in before if n not in after]
    added = [n for n in after if n not in before]
    renamed: list[tuple[str, str]] = []
    lone = len(removed) == 1 and len(added) == 1  # one out, one in: a rename of a constant too
    for name in list(removed):
        upstream = set(before[name].upstream)
        match = next(
            (a for a in added if set(after[a].upstream) == upstream and (upstream or lone)), None
        )
        if match is not None:
            renamed.append((name, match))
            removed.remove(name)
            added.remove(match)
    modified = [
        n
        for n in after
        if n in before
        and (
            before[n].fingerprint != after[n].fingerprint
            or set(before[n].upstream) != set(after[n].upstream)
        )
    ]
    return ModelChange(
        key,
        status,
        file,
        added=tuple(added),
        removed=tuple(removed),
        modified=tuple(modified),
        renamed=tuple(renamed),
        keys_changed=old.keys_fingerprint != new.keys_fingerprint,
    )


def downstream_columns(
    assets: Mapping[str, ModelLineage], start: Iterable[tuple[str, str]]
) -> list[tuple[str, str]]:
    """Return every column derived from `start` (filters, joins and groupings included)."""
    users = reverse_edges(assets, with_keys=True)
    seen: dict[tuple[str, str], None] = {}
    frontier = list(start)
    while frontier:
        nxt = []
        for ref in frontier:
            for key, column, _transform in users.get(ref, ()):
                if (key, column) not in seen:
                    seen[(key, column)] = None
                    nxt.append((key, column))
        frontier = nxt
    return list(seen)


def with_affected(
    change: ModelChange, new: ModelLineage, assets: Mapping[str, ModelLineage]
) -> ModelChange:
    """Return `change` with the downstream columns it affects."""
    if change.unknown or change.keys_changed or change.status is ChangeStatus.NEW:
        start = [(change.key, c) for c in new.column_names]
    else:
        names = [
            *change.added,
            *change.removed,
            *change.modified,
            *(a for a, _ in change.renamed),
            *(b for _, b in change.renamed),
        ]
        start = [(change.key, c) for c in names]
    found = downstream_columns(assets, start)
    return ModelChange(
        key=change.key,
        status=change.status,
        file=change.file,
        added=change.added,
        removed=change.removed,
        modified=change.modified,
        renamed=change.renamed,
        keys_changed=change.keys_changed,
        unknown=change.unknown,
        affected=tuple(f"{k}.{c}" for k, c in found if k != change.key),
    )


def impact_of(changes: Iterable[ModelChange], graph: AssetGraph) -> Impact:
    """Collect the changes and the assets whose columns they affect.

    An asset downstream of a breaking change whose lineage is unknown counts as affected
    (when in doubt, rebuild).
    """
    changes = tuple(changes)
    affected: set[str] = set()
    for change in changes:
        affected.update(ref.rsplit(".", 1)[0] for ref in change.affected)
        if change.unknown:
            affected |= graph.descendants(change.key)
    return Impact(changes=changes, affected_assets=frozenset(affected))


def skip_unaffected(plan: Plan, graph: AssetGraph, impact: Impact) -> tuple[Plan, dict[str, str]]:
    """Drop the steps a non-breaking change does not reach; return the plan and what was dropped.

    A step is dropped when the asset itself is unchanged, its columns are unaffected, and
    every step planned upstream of it is a changed model, an asset the changes affect, or a
    dropped step: nothing else (new raw data from a Python asset, a seed) feeds it in this
    run.
    """
    changed = {c.key: c for c in impact.changes}
    planned = set(plan.keys)
    dropped: dict[str, str] = {}
    for key in graph.topological(planned):
        if key in changed or key in impact.affected_assets:
            continue
        above = graph.ancestors(key) & planned
        causes = sorted(a for a in above if a in changed)
        if not causes or not all(
            a in changed or a in dropped or a in impact.affected_assets for a in above
        ):
            continue
        dropped[key] = "not affected by the non-breaking change to " + ", ".join(causes)
    if not dropped:
        return plan, {}
    steps = tuple(s for s in plan.steps if s.key not in dropped)
    checks = tuple(
        c
        for c in plan.checks
        if c not in graph.checks or not set(graph.checks[c].asset_keys) <= set(dropped)
    )
    return dataclasses.replace(plan, steps=steps, checks=checks), dropped
