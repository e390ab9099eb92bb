"""Partition planning: which partitions of which asset a run materializes, and why.

Pure functions over the graph, partition definitions, mappings and the ledger's segments,
with `now` as a parameter: missing, failed, stale and code-changed partitions per asset, and
what a partition planned upstream means downstream.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlorch.core.graph import AssetGraph
from sqlorch.core.partitions.definitions import PartitionsDefinition, StaticKeys
from sqlorch.core.partitions.mappings import (
    MappingKind,
    PartitionMapping,
    downstream_of,
    upstream_of,
)
from sqlorch.core.partitions.ranges import PartitionSet, Prefix, Range
from sqlorch.core.partitions.segments import Segment, SegmentStatus, status_set
from sqlorch.core.plan.definition import Reason, ReasonKind
from sqlorch.errors import PartitionError


@dataclass(frozen=True, slots=True)
class Upstream:
    """What the planner knows of one upstream asset of a partitioned asset."""

    key: str
    definition: PartitionsDefinition | None
    mapping: PartitionMapping
    segments: tuple[Segment, ...] = ()
    # for an unpartitioned upstream: its last materialization (ISO-8601) and run
    materialized_at: str | None = None
    run_id: str | None = None


@dataclass(frozen=True, slots=True)
class PartitionPlan:
    """Which partitions of one asset to run, and why."""

    missing: PartitionSet
    failed: PartitionSet
    stale: PartitionSet
    code_changed: PartitionSet

    @property
    def to_run(self) -> PartitionSet:
        """Everything that needs a run."""
        return self.missing | self.failed | self.stale | self.code_changed

    def reasons(self, definition: PartitionsDefinition) -> tuple[Reason, ...]:
        """Short reasons for a plan step."""
        out = []
        for label, kind, ps in (
            ("missing", ReasonKind.PARTITIONS_MISSING, self.missing),
            ("failed", ReasonKind.PARTITIONS_FAILED, self.failed),
            ("upstream newer", ReasonKind.PARTITIONS_UPSTREAM_NEWER, self.stale),
            ("code changed", ReasonKind.PARTITIONS_CODE_CHANGED, self.code_changed),
        ):
            if ps:
                out.append(Reason(f"{label}: {describe_set(definition, ps)}", kind))
        return tuple(out)


def describe_set(definition: PartitionsDefinition, parts: PartitionSet, limit: int = 3) -> str:
    """`2013-01-01..2013-03-31 (90 partitions)` style text."""
    rs = definition.key_ranges(parts)
    shown = ", ".join(a if a == b else f"{a}..{b}" for a, b in rs[:limit])
    if len(rs) > limit:
        shown += f", ... ({len(rs)} ranges)"
    n = len(parts)
    return f"{shown} ({n} partition{'s' if n != 1 else ''})"


def plan_asset(
    definition: PartitionsDefinition,
    segments: Sequence[Segment],
    upstreams: Sequence[Upstream],
    now: datetime,
    code_version: str | None = None,
) -> PartitionPlan:
    """Decide which partitions of an asset to (re)build.

    Missing: expected at `now` and never done. Failed: the latest attempt failed. Stale: a
    done partition some upstream partition it maps to was materialized after (by another
    run). Code changed: a done partition written by another code version.
    """
    exist = definition.expected(now)
    done = status_set(segments, SegmentStatus.DONE) & exist
    failed = status_set(segments, SegmentStatus.FAILED) & exist
    missing = exist - done - failed
    stale_acc = PartitionSet()
    changed: dict[Prefix, list[Range]] = {}
    for s in segments:
        if s.status is not SegmentStatus.DONE:
            continue
        if code_version is not None and s.code_version not in (None, code_version):
            changed.setdefault(s.prefix, []).append((s.lo, s.hi))
        mine = PartitionSet({s.prefix: ((s.lo, s.hi),)})
        for u in upstreams:
            if u.definition is None:
                if u.materialized_at and u.materialized_at > s.at and u.run_id != s.run_id:
                    stale_acc = stale_acc | mine
                continue
            newer = [
                us
                for us in u.segments
                if us.status is SegmentStatus.DONE and us.at > s.at and us.run_id != s.run_id
            ]
            if not newer:
                continue
            acc: dict[Prefix, list[Range]] = {}
            for x in newer:
                acc.setdefault(x.prefix, []).append((x.lo, x.hi))
            touched = PartitionSet({p: tuple(r) for p, r in acc.items()})
            stale_acc = stale_acc | (
                downstream_of(definition, u.definition, u.mapping, touched, now) & mine
            )
    code_changed = PartitionSet({p: tuple(r) for p, r in changed.items()}) & exist
    stale = (stale_acc & exist) - code_changed
    return PartitionPlan(missing=missing, failed=failed, stale=stale, code_changed=code_changed)


# -- planning over the graph ------------------------------------------------------------------

_PASS_THROUGH = frozenset({"view", "ephemeral"})


@dataclass(frozen=True, slots=True)
class AssetPartitions:
    """The partitions of one asset a run will materialize, and why.

    `plan`: the asset's own missing / failed / stale / code-changed partitions (None for a
    backfill's forced ones); `done`: the partitions the ledger calls done (none when the
    asset's table is missing). `parts` adds what upstream plans bring along.
    """

    parts: PartitionSet
    reasons: tuple[Reason, ...]
    plan: PartitionPlan | None = None
    done: PartitionSet = PartitionSet()


def partitioned_parents(graph: AssetGraph, key: str) -> list[tuple[str, PartitionMapping]]:
    """The partitioned assets `key` reads, looking through unpartitioned views.

    A view holds no data of its own: a partition of a model that selects from a view of a
    partitioned table depends on that table's partitions.
    """
    node = graph.assets[key]
    out: dict[str, PartitionMapping] = {}
    stack = [(p, node.partition_mappings.get(p, PartitionMapping())) for p in node.deps]
    seen: set[str] = set()
    while stack:
        parent, mapping = stack.pop()
        if parent in seen:
            continue
        seen.add(parent)
        pnode = graph.assets[parent]
        if pnode.partitions is not None:
            out.setdefault(parent, mapping)
        elif pnode.materialized in _PASS_THROUGH:
            stack.extend((g, mapping) for g in pnode.deps)
    return sorted(out.items())


def check_mappings(graph: AssetGraph) -> None:
    """Refuse mappings that cannot mean what they say, before anything runs.

    A `window` needs time partitions on both sides; renamed keys must be static partition
    keys of both assets; and a `window` or a key rename on an upstream with no partitions
    (nor partitioned assets behind its views) would be silently ignored.

    Raises:
        PartitionError: naming the asset, its file and what to change.
    """
    for node in graph:
        down = node.partitions
        if down is None or not node.partition_mappings:
            continue
        where = f"{node.file}:{node.line}" if node.line else (node.file or node.key)
        what = "dbt model" if node.kind.is_dbt else f"{node.kind.value} asset"
        for dep, mapping in sorted(node.partition_mappings.items()):
            if mapping.kind is MappingKind.ALL or (
                mapping.kind is MappingKind.SAME and not mapping.keys
            ):
                continue
            shown = (
                f"window(offset={mapping.offset}, lookback={mapping.lookback})"
                if mapping.kind is MappingKind.WINDOW
                else f"same(keys={dict(mapping.keys)!r})"
            )
            head = f"{what} {node.key} ({where}) maps upstream {dep} with {shown}"
            targets = _partitioned_behind(graph, dep)
            problem = ""
            if not targets:
                problem = (
                    f"{dep} has no partitions (every partition of {node.key} reads all of it), "
                    "so the mapping would be ignored. Remove it"
                )
            for t in targets:
                up = graph.assets[t].partitions
                assert up is not None
                if mapping.kind is MappingKind.WINDOW and (down.time is None or up.time is None):
                    side = node.key if down.time is None else t
                    problem = (
                        f"a window offsets time partitions, and {side} has none. Use `same` "
                        "or `all`"
                    )
                    break
                up_keys = {k for d in up.dimensions if isinstance(d, StaticKeys) for k in d.keys}
                down_keys = {
                    k for d in down.dimensions if isinstance(d, StaticKeys) for k in d.keys
                }
                bad_down = sorted(set(mapping.keys) - down_keys)
                bad_up = sorted(set(mapping.keys.values()) - up_keys)
                if bad_down or bad_up:
                    problem = (
                        "its keys map the downstream's static partition keys to the "
                        "upstream's, but "
                        + "; ".join(
                            f"{', '.join(bad)} {'is' if len(bad) == 1 else 'are'} not a key "
                            f"of {k} (it has: {', '.join(sorted(have)) or 'none'})"
                            for bad, k, have in (
                                (bad_down, node.key, down_keys),
                                (bad_up, t, up_keys),
                            )
                            if bad
                        )
                        + ". Fix the key names"
                    )
                    break
            if problem:
                raise PartitionError(
                    f"{head}: {problem}.", asset=node.key, file=node.file, line=node.line
                )


def _partitioned_behind(graph: AssetGraph, key: str) -> list[str]:
    """`key` itself when partitioned, else the partitioned assets behind its views."""
    node = graph.assets[key]
    if node.partitions is not None:
        return [key]
    if node.materialized not in _PASS_THROUGH:
        return []
    return sorted({t for parent in node.deps for t in _partitioned_behind(graph, parent)})


def reads_pending(
    graph: AssetGraph,
    key: str,
    parts: PartitionSet,
    pending: Mapping[str, PartitionSet],
    now: datetime,
) -> bool:
    """True when partitions `parts` of `key` read any upstream partition in `pending`.

    `pending` holds, per upstream asset, the partitions a run has yet to write: a chunk that
    reads one of them (an offset forward, `all`, a key rename) must wait for it.
    """
    node = graph.assets[key]
    if node.partitions is None:
        return False
    for parent, mapping in partitioned_parents(graph, key):
        waiting = pending.get(parent)
        updef = graph.assets[parent].partitions
        if waiting and updef is not None:
            if upstream_of(node.partitions, updef, mapping, parts, now) & waiting:
                return True
    return False


@dataclass(frozen=True, slots=True)
class PlainUpstream:
    """An unpartitioned asset as partition planning sees it: its last materialization, and
    whether this plan rebuilds it on its own account (code changed, missing, --full, ...)."""

    materialized_at: str | None
    run_id: str | None
    stale: bool = False


def plain_parents(graph: AssetGraph, key: str) -> list[str]:
    """The unpartitioned materializable assets `key` reads, looking through views.

    Every partition of `key` reads all of such an asset ("all partitions" of an
    unpartitioned upstream). Observed sources are left out: data arriving in them is what
    new partitions are for. Views (and ephemeral models) are listed too: their own change
    (code, a missing relation) reaches every partition, but their data is their parents'.
    """
    out: set[str] = set()
    stack = list(graph.assets[key].deps)
    seen: set[str] = set()
    while stack:
        parent = stack.pop()
        if parent in seen:
            continue
        seen.add(parent)
        pnode = graph.assets[parent]
        if pnode.partitions is not None or not pnode.is_materializable:
            continue
        out.add(parent)
        if pnode.materialized in _PASS_THROUGH:
            stack.extend(pnode.deps)
    return sorted(out)


def plan_graph(
    graph: AssetGraph,
    keys: Sequence[str],
    ledgers: Mapping[str, Sequence[Segment]],
    now: datetime,
    forced: Mapping[str, PartitionSet] | None = None,
    propagate: bool = True,
    plain: Mapping[str, PlainUpstream] | None = None,
    absent: Collection[str] = (),
) -> dict[str, AssetPartitions]:
    """Plan the partitions of every partitioned asset among `keys` (in dependency order).

    Without `forced` (a build): each asset's missing, failed, stale and code-changed
    partitions. With `forced` (a backfill): exactly those partitions of the named assets.
    With `propagate`, a partition planned upstream also plans the downstream partitions that
    read it, so one run leaves nothing stale behind.

    With `plain` (the unpartitioned assets' state), a partition is also stale when an
    unpartitioned asset it reads was materialized after it, and every partition is planned
    when this plan rebuilds such an asset. A view (or ephemeral model) is looked through:
    rebuilding it because its upstream got partitions does not change the other partitions,
    and its materialization time is not its data's; only its own change counts (`stale`).

    Partitioned assets in `absent` have no relation in the warehouse: whatever their ledger
    says, every partition is missing.
    """
    planned: dict[str, AssetPartitions] = {}
    rebuilt: set[str] = set()  # unpartitioned assets among `keys` this plan rebuilds
    for key in graph.topological(keys):
        node = graph.assets[key]
        definition = node.partitions
        if definition is None:
            info = plain.get(key) if plain is not None else None
            through = node.materialized in _PASS_THROUGH
            if info is not None and (
                info.stale
                or any(
                    d in rebuilt or (not through and d in planned and planned[d].parts)
                    for d in node.deps
                )
            ):
                rebuilt.add(key)
            continue
        plains = plain_parents(graph, key) if plain is not None else []
        segs = () if key in absent else ledgers.get(key, ())
        detail: PartitionPlan | None = None
        parents = partitioned_parents(graph, key)
        reasons: tuple[Reason, ...]
        if forced is not None:
            parts = forced.get(key, PartitionSet())
            reasons = (Reason("backfill", ReasonKind.BACKFILL),) if parts else ()
        else:
            ups = _upstreams(graph, parents, plains, ledgers, plain)
            detail = plan_asset(definition, segs, ups, now, node.code_version)
            parts = detail.to_run
            reasons = detail.reasons(definition)
            if key in absent:
                text = f"table missing: all {len(parts)} partitions are rebuilt"
                reasons = (Reason(text, ReasonKind.TABLE_MISSING), *reasons)
        if propagate:
            hit = [p for p in plains if p in rebuilt]
            parts, reasons = _propagated(
                graph, definition, parents, hit, planned, parts, reasons, now
            )
        done = status_set(segs, SegmentStatus.DONE) & definition.expected(now)
        planned[key] = AssetPartitions(parts, reasons, detail, done)
    return planned


def _upstreams(
    graph: AssetGraph,
    parents: Sequence[tuple[str, PartitionMapping]],
    plains: Sequence[str],
    ledgers: Mapping[str, Sequence[Segment]],
    plain: Mapping[str, PlainUpstream] | None,
) -> list[Upstream]:
    """Return what an asset's partitions read: partitioned parents and materialized plain ones."""
    ups = [
        Upstream(p, graph.assets[p].partitions, m, tuple(ledgers.get(p, ()))) for p, m in parents
    ]
    for p in plains:
        info = plain.get(p) if plain is not None else None
        if info is not None and graph.assets[p].materialized not in _PASS_THROUGH:
            ups.append(Upstream(p, None, PartitionMapping(), (), info.materialized_at, info.run_id))
    return ups


def _propagated(
    graph: AssetGraph,
    definition: PartitionsDefinition,
    parents: Sequence[tuple[str, PartitionMapping]],
    rebuilt_plains: Sequence[str],
    planned: Mapping[str, AssetPartitions],
    parts: PartitionSet,
    reasons: tuple[Reason, ...],
    now: datetime,
) -> tuple[PartitionSet, tuple[Reason, ...]]:
    """Add the partitions that read partitions planned upstream, or a rebuilt plain parent."""
    extra = PartitionSet()
    for p, m in parents:
        up = planned.get(p)
        updef = graph.assets[p].partitions
        if up is not None and updef is not None and up.parts:
            extra = extra | downstream_of(definition, updef, m, up.parts, now)
    extra = extra - parts
    if extra:
        parts = parts | extra
        text = f"upstream planned: {describe_set(definition, extra)}"
        reasons = (*reasons, Reason(text, ReasonKind.UPSTREAM_PLANNED))
    every = definition.expected(now) - parts if rebuilt_plains else PartitionSet()
    if every:
        parts = parts | every
        text = f"upstream {rebuilt_plains[0]} is rebuilt: every partition reads it"
        reasons = (*reasons, Reason(text, ReasonKind.UPSTREAM_REBUILT))
    return parts, reasons
