"""Partition mappings: which upstream partitions a downstream partition reads.

Overlapping time windows (the default, which covers daily -> monthly and monthly -> daily),
a window offset/lookback, static keys by equality (or renamed), or every upstream partition.
Pure functions over definitions and range sets, with `now` as a parameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlorch.core.partitions.definitions import PartitionsDefinition, StaticKeys
from sqlorch.core.partitions.ranges import PartitionSet, Prefix, Range
from sqlorch.errors import PartitionError


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
