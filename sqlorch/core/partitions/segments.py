"""The ledger's segments: which ranges of partitions were written (or failed), by whom, when.

Pure: the state store keeps `StoredRange` rows; this module lays new segments over old ones
and converts between rows (keys) and segments (indices).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlorch.core.partitions.definitions import KEY_SEP, PartitionsDefinition
from sqlorch.core.partitions.ranges import PartitionSet, Prefix, Range, subtract
from sqlorch.errors import PartitionError


class SegmentStatus(StrEnum):
    """What the ledger knows of a range of partitions."""

    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Segment:
    """A contiguous range of partitions written (or failed) by one run at one time."""

    prefix: Prefix
    lo: int
    hi: int
    status: SegmentStatus
    run_id: str
    at: str
    code_version: str | None = None


def record(segments: Sequence[Segment], new: Segment) -> list[Segment]:
    """Return the ledger with `new` laid over what it covers (older segments are trimmed).

    Adjacent segments of the same run, status and code version merge, so a backfill of
    44,000 hours is one segment.
    """
    out: list[Segment] = []
    for s in segments:
        if s.prefix != new.prefix or s.hi < new.lo or s.lo > new.hi:
            out.append(s)
            continue
        if s.lo < new.lo:
            out.append(_replace(s, s.lo, new.lo - 1))
        if s.hi > new.hi:
            out.append(_replace(s, new.hi + 1, s.hi))
    merged = new
    keep: list[Segment] = []
    for s in out:
        if (
            s.prefix == merged.prefix
            and s.status is merged.status
            and s.run_id == merged.run_id
            and s.code_version == merged.code_version
            and (s.hi + 1 == merged.lo or merged.hi + 1 == s.lo)
        ):
            merged = Segment(
                merged.prefix,
                min(s.lo, merged.lo),
                max(s.hi, merged.hi),
                merged.status,
                merged.run_id,
                max(s.at, merged.at),
                merged.code_version,
            )
        else:
            keep.append(s)
    keep.append(merged)
    return sorted(keep, key=lambda s: (s.prefix, s.lo))


def erase(segments: Sequence[Segment], parts: PartitionSet) -> list[Segment]:
    """Return the ledger without `parts` (a wipe)."""
    out: list[Segment] = []
    for s in segments:
        left = subtract(((s.lo, s.hi),), parts.parts.get(s.prefix, ()))
        out.extend(_replace(s, lo, hi) for lo, hi in left)
    return out


def _replace(s: Segment, lo: int, hi: int) -> Segment:
    return Segment(s.prefix, lo, hi, s.status, s.run_id, s.at, s.code_version)


def status_set(segments: Iterable[Segment], status: SegmentStatus) -> PartitionSet:
    """The partitions whose latest record has `status`."""
    acc: dict[Prefix, list[Range]] = {}
    for s in segments:
        if s.status is status:
            acc.setdefault(s.prefix, []).append((s.lo, s.hi))
    return PartitionSet({p: tuple(r) for p, r in acc.items()})


# -- ledger rows (keys as stored) <-> segments (indices) ---------------------------------------


@dataclass(frozen=True, slots=True)
class StoredRange:
    """A ledger row as the state store keeps it: axis keys, not indices."""

    prefix: str
    lo: str
    hi: str
    status: str
    run_id: str
    at: str
    code_version: str | None = None


def to_segments(definition: PartitionsDefinition, rows: Iterable[Any]) -> list[Segment]:
    """Read stored rows (anything with StoredRange's fields) as segments.

    Rows that no longer name partitions of `definition` (its start or keys changed) are
    dropped: those partitions read as missing, which is the safe answer.
    """
    out: list[Segment] = []
    dim = definition.axis_dim
    n_others = len(definition.others)
    for r in rows:
        prefix: Prefix = tuple(r.prefix.split(KEY_SEP)) if n_others else ()
        if len(prefix) != n_others:
            continue
        try:
            for d, k in zip(definition.others, prefix, strict=True):
                d.index(k)
            lo, hi = dim.index(r.lo), dim.index(r.hi)
            status = SegmentStatus(r.status)
        except (PartitionError, ValueError):
            continue
        if lo < 0 or lo > hi:
            continue
        out.append(Segment(prefix, lo, hi, status, r.run_id, r.at, r.code_version))
    return out


def to_stored(definition: PartitionsDefinition, segments: Iterable[Segment]) -> list[StoredRange]:
    """Write segments as stored rows."""
    dim = definition.axis_dim
    return [
        StoredRange(
            KEY_SEP.join(s.prefix),
            dim.key(s.lo),
            dim.key(s.hi),
            s.status.value,
            s.run_id,
            s.at,
            s.code_version,
        )
        for s in segments
    ]
