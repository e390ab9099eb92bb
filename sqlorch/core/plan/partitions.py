"""Partition mappings and partition planning: which partitions of which asset to run.

Pure functions over `sqlorch.core.partitions` values, the graph and the ledger's segments, with
`now` as a parameter. A mapping says which upstream partitions a downstream partition reads:
overlapping time windows (the default, which covers daily -> monthly and monthly -> daily),
a window offset/lookback, static keys by equality, or every upstream partition.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlorch.core.partitions import (
    PartitionError,
    PartitionsDefinition,
    PartitionSet,
    Prefix,
    Range,
    Segment,
    SegmentStatus,
    StaticKeys,
    status_set,
)

if TYPE_CHECKING:
    from sqlorch.core.graph import AssetGraph


# -- mappings ---------------------------------------------------------------------------------


class MappingKind(StrEnum):
    """How a downstream partition depends on an upstream asset's partitions."""

    SAME = "same"  # overlapping windows (covers coarser<-finer and finer<-coarser) / same key
    WINDOW = "window"  # the windows offset..offset-lookback of the downstream's grain
    ALL = "all"  # every upstream partition


@dataclass(frozen=True, slots=True)
class PartitionMapping:
    """A partition mapping; build one with `window(...)`, `all_partitions()` or `same()`."""

    kind: MappingKind = MappingKind.SAME
    offset: int = 0
    lookback: int = 0
    keys: Mapping[str, str] = field(default_factory=dict)


def same(keys: Mapping[str, str] | None = None) -> PartitionMapping:
    """The default: overlapping time windows; static keys by equality (or through `keys`,
    downstream key -> upstream key)."""
    return PartitionMapping(MappingKind.SAME, keys=dict(keys or {}))


def window(offset: int = 0, lookback: int = 0) -> PartitionMapping:
    """Depend on the upstream windows of downstream windows `offset - lookback .. offset`.

    `window(offset=-1)`: each day reads the day before. `window(lookback=6)`: each day reads
    the seven days up to it.
    """
    if lookback < 0:
        raise PartitionError("window(lookback=...) must be 0 or more.")
    return PartitionMapping(MappingKind.WINDOW, offset=offset, lookback=lookback)


def all_partitions() -> PartitionMapping:
    """Depend on every partition of the upstream asset."""
    return PartitionMapping(MappingKind.ALL)


MAPPING_SYNTAX = (
    "`same` (the default: overlapping windows, static keys by equality), "
    "`{same: {keys: {DOWNSTREAM_KEY: UPSTREAM_KEY}}}`, `{window: {offset: -1}}`, "
    "`{window: {lookback: 6}}` (offset and lookback together allowed) or `all`"
)


def mapping_from_config(raw: Any) -> PartitionMapping:
    """Build a mapping from config data (a value of a dbt model's `meta.sqlorch.deps`).

    Accepted, mirroring the Python API: `same` or null (`same()`), `all` or `{all: {}}`
    (`all_partitions()`), `{same: {keys: {down: up}}}` (`same(keys=...)`) and
    `{window: {offset: N, lookback: M}}` (`window(offset=N, lookback=M)`).

    Raises:
        PartitionError: the data is no mapping; the message says what is wrong, without
            saying where (the caller prefixes that).
    """
    if raw is None:
        return same()
    if isinstance(raw, str):
        name = raw.strip().lower()
        if name == "same":
            return same()
        if name in ("all", "all_partitions"):
            return all_partitions()
        raise PartitionError(f"unknown mapping {raw!r}; use {MAPPING_SYNTAX}.")
    if not isinstance(raw, Mapping) or len(raw) != 1:
        raise PartitionError(
            f"a mapping is one of {MAPPING_SYNTAX}; got {raw!r}"
            + (" (one kind per upstream)." if isinstance(raw, Mapping) and raw else ".")
        )
    ((kind_raw, args),) = raw.items()
    kind = str(kind_raw).strip().lower()
    if kind in ("all", "all_partitions"):
        if args not in (None, {}, True):
            raise PartitionError(f"`all` takes no arguments; got {raw!r}. Write `all`.")
        return all_partitions()
    if args is None:
        args = {}
    if not isinstance(args, Mapping):
        raise PartitionError(
            f"`{kind_raw}` takes a mapping of arguments, got {args!r}; use {MAPPING_SYNTAX}."
        )
    if kind == "same":
        _only(args, {"keys"}, kind)
        keys = args.get("keys") or {}
        if not isinstance(keys, Mapping) or not all(
            isinstance(k, str | int) and isinstance(v, str | int) for k, v in keys.items()
        ):
            raise PartitionError(
                "`same: {keys: ...}` maps downstream partition keys to upstream partition keys "
                f"(`{{keys: {{JFK: jfk}}}}`); got {keys!r}."
            )
        return same({str(k): str(v) for k, v in keys.items()})
    if kind == "window":
        _only(args, {"offset", "lookback"}, kind)
        offset, lookback = args.get("offset", 0), args.get("lookback", 0)
        for label, value in (("offset", offset), ("lookback", lookback)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise PartitionError(
                    f"`window: {{{label}: ...}}` must be a whole number of windows; got {value!r}."
                )
        if lookback < 0:
            raise PartitionError(
                f"`window: {{lookback: {lookback}}}` must be 0 or more (the number of "
                "windows before the offset window that are read too)."
            )
        return window(offset=offset, lookback=lookback)
    raise PartitionError(f"unknown mapping kind {kind_raw!r}; use {MAPPING_SYNTAX}.")


def _only(args: Mapping[Any, Any], allowed: set[str], kind: str) -> None:
    extra = sorted(str(k) for k in args if str(k) not in allowed)
    if extra:
        raise PartitionError(
            f"`{kind}` does not take {', '.join(extra)}; it takes {', '.join(sorted(allowed))}."
        )


def describe_mapping(mapping: PartitionMapping) -> Any:
    """The config form of `mapping` (what `mapping_from_config` reads back)."""
    if mapping.kind is MappingKind.ALL:
        return "all"
    if mapping.kind is MappingKind.WINDOW:
        return {"window": {"offset": mapping.offset, "lookback": mapping.lookback}}
    if mapping.keys:
        return {"same": {"keys": dict(mapping.keys)}}
    return "same"


def upstream_of(
    down: PartitionsDefinition,
    up: PartitionsDefinition,
    mapping: PartitionMapping,
    parts: PartitionSet,
    now: datetime,
) -> PartitionSet:
    """The upstream partitions that the downstream partitions `parts` read."""
    exist = up.expected(now)
    if mapping.kind is MappingKind.ALL or not parts:
        return exist
    out: dict[Prefix, list[Range]] = {}
    up_prefixes = up.prefixes()
    for prefix, lo, hi in parts.ranges():
        axis = _map_axis(down, up, mapping, lo, hi)
        ups = [p for p in up_prefixes if _prefix_matches(down, prefix, up, p, mapping)]
        for p in ups:
            if axis is None:
                out.setdefault(p, []).append((0, up.count(now) - 1))
            else:
                out.setdefault(p, []).append(axis)
    return PartitionSet({p: tuple(r) for p, r in out.items()}) & exist


def downstream_of(
    down: PartitionsDefinition,
    up: PartitionsDefinition,
    mapping: PartitionMapping,
    parts: PartitionSet,
    now: datetime,
) -> PartitionSet:
    """The downstream partitions that read any of the upstream partitions `parts`."""
    exist = down.expected(now)
    if mapping.kind is MappingKind.ALL or not parts:
        return exist if parts else PartitionSet()
    out: dict[Prefix, list[Range]] = {}
    down_prefixes = down.prefixes()
    for prefix, lo, hi in parts.ranges():
        axis = _map_axis_back(down, up, mapping, lo, hi)
        for p in down_prefixes:
            if _prefix_matches(down, p, up, prefix, mapping):
                if axis is None:
                    out.setdefault(p, []).append((0, down.count(now) - 1))
                else:
                    out.setdefault(p, []).append(axis)
    return PartitionSet({p: tuple(r) for p, r in out.items()}) & exist


def _map_axis(
    down: PartitionsDefinition,
    up: PartitionsDefinition,
    mapping: PartitionMapping,
    lo: int,
    hi: int,
) -> Range | None:
    """Upstream axis range read by downstream axis range lo..hi (None: the whole axis)."""
    dt, ut = down.time, up.time
    if dt is not None and ut is not None:
        if mapping.kind is MappingKind.WINDOW:
            lo, hi = lo + mapping.offset - mapping.lookback, hi + mapping.offset
        start, end = dt.window_start(lo), dt.window_end(hi)
        return ut.index_at(start), ut.index_at(end - timedelta(microseconds=1))
    if dt is None and ut is None:
        da, ua = down.axis_dim, up.axis_dim
        if da.column is not None and da.column == ua.column or len(down.dimensions) == 1:
            assert isinstance(da, StaticKeys) and isinstance(ua, StaticKeys)
            idx = [
                ua.keys.index(u)
                for k in da.keys[lo : hi + 1]
                if (u := mapping.keys.get(k, k)) in ua.keys
            ]
            return (min(idx), max(idx)) if idx else (1, 0)
    return None


def _map_axis_back(
    down: PartitionsDefinition,
    up: PartitionsDefinition,
    mapping: PartitionMapping,
    lo: int,
    hi: int,
) -> Range | None:
    """Downstream axis range that reads upstream axis range lo..hi (None: the whole axis)."""
    dt, ut = down.time, up.time
    if dt is not None and ut is not None:
        start, end = ut.window_start(lo), ut.window_end(hi)
        a = dt.index_at(start)
        b = dt.index_at(end - timedelta(microseconds=1))
        if mapping.kind is MappingKind.WINDOW:
            a, b = a - mapping.offset, b - mapping.offset + mapping.lookback
        return a, b
    if dt is None and ut is None:
        da, ua = down.axis_dim, up.axis_dim
        if da.column is not None and da.column == ua.column or len(down.dimensions) == 1:
            assert isinstance(da, StaticKeys) and isinstance(ua, StaticKeys)
            wanted = set(ua.keys[lo : hi + 1])
            idx = [i for i, k in enumerate(da.keys) if mapping.keys.get(k, k) in wanted]
            return (min(idx), max(idx)) if idx else (1, 0)
    return None


def _prefix_matches(
    down: PartitionsDefinition,
    dprefix: Prefix,
    up: PartitionsDefinition,
    uprefix: Prefix,
    mapping: PartitionMapping,
) -> bool:
    """True when the static keys of both prefixes agree on every column both have."""
    dkeys = {d.column: k for d, k in zip(down.others, dprefix, strict=True)}
    for d, k in zip(up.others, uprefix, strict=True):
        if d.column in dkeys and mapping.keys.get(dkeys[d.column], dkeys[d.column]) != k:
            return False
    return True


# -- planning ---------------------------------------------------------------------------------


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

    def reasons(self, definition: PartitionsDefinition) -> tuple[str, ...]:
        """Short reasons for a plan step."""
        out = []
        for label, ps in (
            ("missing", self.missing),
            ("failed", self.failed),
            ("upstream newer", self.stale),
            ("code changed", self.code_changed),
        ):
            if ps:
                out.append(f"{label}: {describe_set(definition, ps)}")
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
    """The partitions of one asset a run will materialize, and why."""

    parts: PartitionSet
    reasons: tuple[str, ...]


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
    from sqlorch.core.partitions import StaticKeys

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
    new partitions are for.
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
) -> dict[str, AssetPartitions]:
    """Plan the partitions of every partitioned asset among `keys` (in dependency order).

    Without `forced` (a build): each asset's missing, failed, stale and code-changed
    partitions. With `forced` (a backfill): exactly those partitions of the named assets.
    With `propagate`, a partition planned upstream also plans the downstream partitions that
    read it, so one run leaves nothing stale behind.

    With `plain` (the unpartitioned assets' state), a partition is also stale when an
    unpartitioned asset it reads was materialized after it, and every partition is planned
    when this plan rebuilds such an asset.
    """
    planned: dict[str, AssetPartitions] = {}
    rebuilt: set[str] = set()  # unpartitioned assets among `keys` this plan rebuilds
    for key in graph.topological(keys):
        node = graph.assets[key]
        definition = node.partitions
        if definition is None:
            info = plain.get(key) if plain is not None else None
            if info is not None and (
                info.stale
                or any(d in rebuilt or (d in planned and planned[d].parts) for d in node.deps)
            ):
                rebuilt.add(key)
            continue
        plains = plain_parents(graph, key) if plain is not None else []
        segs = ledgers.get(key, ())
        parents = partitioned_parents(graph, key)
        reasons: tuple[str, ...]
        if forced is not None:
            parts = forced.get(key, PartitionSet())
            reasons = ("backfill",) if parts else ()
        else:
            ups = [
                Upstream(
                    p,
                    graph.assets[p].partitions,
                    m,
                    tuple(ledgers.get(p, ())),
                )
                for p, m in parents
            ]
            for p in plains:
                info = plain.get(p) if plain is not None else None
                if info is not None:
                    ups.append(
                        Upstream(p, None, PartitionMapping(), (), info.materialized_at, info.run_id)
                    )
            plan = plan_asset(definition, segs, ups, now, node.code_version)
            parts = plan.to_run
            reasons = plan.reasons(definition)
        if propagate:
            extra = PartitionSet()
            for p, m in parents:
                up = planned.get(p)
                updef = graph.assets[p].partitions
                if up is not None and updef is not None and up.parts:
                    extra = extra | downstream_of(definition, updef, m, up.parts, now)
            extra = extra - parts
            if extra:
                parts = parts | extra
                reasons = (*reasons, f"upstream planned: {describe_set(definition, extra)}")
            hit = [p for p in plains if p in rebuilt]
            every = definition.expected(now) - parts if hit else PartitionSet()
            if every:
                parts = parts | every
                reasons = (*reasons, f"upstream {hit[0]} is rebuilt: every partition reads it")
        planned[key] = AssetPartitions(parts, reasons)
    return planned
