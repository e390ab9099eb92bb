"""Range sets: pure interval arithmetic over inclusive `(lo, hi)` index pairs.

Sets of partitions are kept as sorted, disjoint, inclusive index ranges per prefix, so
100,000 hourly partitions cost a handful of tuples.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

Range = tuple[int, int]
"""An inclusive range of partition indices along a definition's axis."""
Prefix = tuple[str, ...]
"""The keys of a partition's static dimensions off the axis (empty for one dimension)."""


def normalize(ranges: Iterable[Range]) -> tuple[Range, ...]:
    """Sort and merge overlapping or adjacent inclusive ranges."""
    out: list[list[int]] = []
    for lo, hi in sorted(r for r in ranges if r[0] <= r[1]):
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return tuple((a, b) for a, b in out)


def subtract(ranges: Sequence[Range], minus: Sequence[Range]) -> tuple[Range, ...]:
    """`ranges` without `minus` (both normalized)."""
    out: list[Range] = []
    j = 0
    for lo, hi in ranges:
        cur = lo
        while j < len(minus) and minus[j][1] < cur:
            j += 1
        k = j
        while k < len(minus) and minus[k][0] <= hi:
            mlo, mhi = minus[k]
            if mlo > cur:
                out.append((cur, mlo - 1))
            cur = max(cur, mhi + 1)
            if cur > hi:
                break
            k += 1
        if cur <= hi:
            out.append((cur, hi))
    return tuple(out)


def intersect(a: Sequence[Range], b: Sequence[Range]) -> tuple[Range, ...]:
    """The ranges in both `a` and `b` (both normalized)."""
    out: list[Range] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo = max(a[i][0], b[j][0])
        hi = min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


@dataclass(frozen=True, slots=True)
class PartitionSet:
    """A set of partitions: normalized inclusive index ranges per prefix."""

    parts: Mapping[Prefix, tuple[Range, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        clean = {p: normalize(r) for p, r in self.parts.items()}
        object.__setattr__(self, "parts", {p: r for p, r in sorted(clean.items()) if r})

    def __bool__(self) -> bool:
        return bool(self.parts)

    def __or__(self, other: PartitionSet) -> PartitionSet:
        keys = set(self.parts) | set(other.parts)
        return PartitionSet({p: (*self.parts.get(p, ()), *other.parts.get(p, ())) for p in keys})

    def __sub__(self, other: PartitionSet) -> PartitionSet:
        return PartitionSet({p: subtract(r, other.parts.get(p, ())) for p, r in self.parts.items()})

    def __and__(self, other: PartitionSet) -> PartitionSet:
        return PartitionSet(
            {p: intersect(r, other.parts[p]) for p, r in self.parts.items() if p in other.parts}
        )

    def __len__(self) -> int:
        return sum(hi - lo + 1 for rs in self.parts.values() for lo, hi in rs)

    def ranges(self) -> Iterator[tuple[Prefix, int, int]]:
        """Yield (prefix, lo, hi) in order."""
        for p, rs in self.parts.items():
            for lo, hi in rs:
                yield p, lo, hi

    def chunks(self, size: int | None) -> Iterator[tuple[Prefix, int, int]]:
        """Yield the ranges cut into pieces of at most `size` partitions (None: uncut)."""
        for p, lo, hi in self.ranges():
            if size is None or size <= 0:
                yield p, lo, hi
                continue
            cur = lo
            while cur <= hi:
                yield p, cur, min(hi, cur + size - 1)
                cur += size

    def bounds(self) -> Range | None:
        """The lowest and highest index over every prefix."""
        if not self.parts:
            return None
        return (
            min(rs[0][0] for rs in self.parts.values()),
            max(rs[-1][1] for rs in self.parts.values()),
        )
