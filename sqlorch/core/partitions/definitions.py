"""Partition definitions: time windows and static keys, their keys and their constructors.

A partition of a definition is addressed by a *prefix* (the keys of its static dimensions,
empty for a single dimension) and an integer *index* along its *axis* (the time dimension
when there is one, else the last static dimension). Pure: `now` is always a parameter.

Keys: daily and weekly `2013-03-01` (a week is named by its first day), monthly `2013-03`,
hourly `2013-03-01T05:00`, static keys as given, several dimensions joined with `|` in the
order they were declared (`2013-03-01|JFK`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum
from typing import Any

from sqlorch.core.partitions.ranges import PartitionSet, Prefix, Range
from sqlorch.errors import PartitionError

KEY_SEP = "|"


class Grain(StrEnum):
    """The length of a time window."""

    HOURLY = "hourly"
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


def _zone(name: str) -> tzinfo:
    if name.upper() == "UTC":
        return UTC
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise PartitionError(
            f"Unknown time zone {name!r} in a partition definition. Use an IANA name such "
            "as 'UTC' or 'America/New_York'."
        ) from exc


def _parse_datetime(text: str, what: str) -> datetime:
    """Parse `2013-03-01`, `2013-03`, `2013-03-01T05`, `2013-03-01 05:00[:00]` (naive)."""
    raw = text.strip()
    candidates = [raw]
    if len(raw) == 7:
        candidates = [raw + "-01"]
    elif len(raw) == 13 and raw[10] in "T ":
        candidates = [raw + ":00"]
    for c in candidates:
        try:
            parsed = datetime.fromisoformat(c)
        except ValueError:
            continue
        return parsed.replace(tzinfo=None) if parsed.tzinfo is None else parsed
    raise PartitionError(
        f"{what} {text!r} is not a date. Use ISO format: 2013-03-01, 2013-03 (a month) or "
        "2013-03-01T05:00 (an hour)."
    )


@dataclass(frozen=True, slots=True)
class TimeWindows:
    """Consecutive time windows of one grain from `start` (inclusive) to `end` (exclusive)."""

    grain: Grain
    start: str
    timezone: str = "UTC"
    column: str | None = None
    end: str | None = None
    _tz: tzinfo = field(init=False, repr=False, compare=False)
    _start: datetime = field(init=False, repr=False, compare=False)
    _end: datetime | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        tz = _zone(self.timezone)
        object.__setattr__(self, "_tz", tz)
        begin = self._localize(_parse_datetime(self.start, "The partition start"))
        aligned = self._floor(begin)
        if aligned != begin:
            raise PartitionError(
                f"The {self.grain.value} partitions' start {self.start!r} is not the start of a "
                f"{self.grain.value} window. Use "
                f"{self._format_dt(aligned)!r} or the next window's start."
            )
        object.__setattr__(self, "_start", begin)
        stop = None
        if self.end is not None:
            stop = self._localize(_parse_datetime(self.end, "The partition end"))
            if stop <= begin:
                raise PartitionError(
                    f"The partitions' end {self.end!r} is not after their start {self.start!r}."
                )
        object.__setattr__(self, "_end", stop)

    # -- window arithmetic ------------------------------------------------------------------

    def _localize(self, value: datetime) -> datetime:
        if value.tzinfo is None:
            return value.replace(tzinfo=self._tz)
        return value.astimezone(self._tz)

    def _floor(self, value: datetime) -> datetime:
        """The start of the window (of this grain, not counted from `start`) holding `value`."""
        local = value.astimezone(self._tz)
        if self.grain is Grain.HOURLY:
            return local.replace(minute=0, second=0, microsecond=0)
        day = local.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
        if self.grain is Grain.MONTHLY:
            day = day.replace(day=1)
        elif self.grain is Grain.WEEKLY and hasattr(self, "_start"):
            offset = (day.date() - self._start.date()).days % 7
            day -= timedelta(days=offset)
        return day.replace(tzinfo=self._tz)

    def window_start(self, index: int) -> datetime:
        """The (time-zone aware) start of window `index` (0 = the first window)."""
        if self.grain is Grain.HOURLY:
            utc = self._start.astimezone(UTC) + timedelta(hours=index)
            return utc.astimezone(self._tz)
        if self.grain is Grain.MONTHLY:
            months = self._start.year * 12 + self._start.month - 1 + index
            y, m = divmod(months, 12)
            return datetime(y, m + 1, 1, tzinfo=self._tz)
        days = index * (7 if self.grain is Grain.WEEKLY else 1)
        d = self._start.date() + timedelta(days=days)
        return datetime(d.year, d.month, d.day, tzinfo=self._tz)

    def window_end(self, index: int) -> datetime:
        """The (exclusive) end of window `index`."""
        return self.window_start(index + 1)

    def index_at(self, moment: datetime) -> int:
        """The index of the window that holds `moment` (negative before `start`)."""
        m = moment if moment.tzinfo is not None else moment.replace(tzinfo=self._tz)
        if self.grain is Grain.HOURLY:
            seconds = (m.astimezone(UTC) - self._start.astimezone(UTC)).total_seconds()
            return int(seconds // 3600)
        local = m.astimezone(self._tz)
        if self.grain is Grain.MONTHLY:
            return (local.year * 12 + local.month) - (self._start.year * 12 + self._start.month)
        days = (local.date() - self._start.date()).days
        return days // 7 if self.grain is Grain.WEEKLY else days

    def count(self, now: datetime) -> int:
        """How many complete windows exist at `now` (bounded by `end`)."""
        limit = now if self._end is None else min(now, self._end)
        return max(0, self.index_at(limit))

    @property
    def is_bounded(self) -> bool:
        """True when the definition has an `end`."""
        return self._end is not None

    # -- keys ---------------------------------------------------------------------------------

    def _format_dt(self, value: datetime) -> str:
        local = value.astimezone(self._tz)
        if self.grain is Grain.HOURLY:
            return local.strftime("%Y-%m-%dT%H:00")
        if self.grain is Grain.MONTHLY:
            return local.strftime("%Y-%m")
        return local.strftime("%Y-%m-%d")

    def key(self, index: int) -> str:
        """The key of window `index`."""
        return self._format_dt(self.window_start(index))

    def index(self, key: str) -> int:
        """The index of the window named `key`.

        Raises:
            PartitionError: `key` is not a date or not the start of one of these windows.
        """
        moment = self._localize(_parse_datetime(key, "The partition key"))
        i = self.index_at(moment)
        if self.window_start(i) != moment:
            raise PartitionError(
                f"{key!r} is not the start of a {self.grain.value} partition (the window holding "
                f"it is {self.key(i)!r})."
            )
        return i

    def index_of_bound(self, text: str, *, upper: bool) -> int:
        """The window holding the date `text` (for `--from`/`--to`, inclusive both ends)."""
        moment = self._localize(_parse_datetime(text, "The date"))
        return self.index_at(moment)

    def describe(self) -> dict[str, Any]:
        """A JSON-able description (for `ls --json`)."""
        doc: dict[str, Any] = {
            "type": self.grain.value,
            "start": self.start,
            "timezone": self.timezone,
            "column": self.column,
        }
        if self.end is not None:
            doc["end"] = self.end
        return doc


@dataclass(frozen=True, slots=True)
class StaticKeys:
    """A fixed list of keys (per region, per customer...)."""

    keys: tuple[str, ...]
    column: str | None = None

    def __post_init__(self) -> None:
        if not self.keys:
            raise PartitionError("A static partition definition needs at least one key.")
        bad = [k for k in self.keys if not k or KEY_SEP in k]
        if bad:
            raise PartitionError(
                f"Static partition keys {bad!r} are empty or contain {KEY_SEP!r}; rename them."
            )
        dupes = sorted({k for k in self.keys if self.keys.count(k) > 1})
        if dupes:
            raise PartitionError(f"Static partition keys {dupes!r} appear more than once.")

    def count(self, now: datetime) -> int:
        """How many keys (independent of `now`)."""
        return len(self.keys)

    def key(self, index: int) -> str:
        """The key at `index`."""
        return self.keys[index]

    def index(self, key: str) -> int:
        """The position of `key`.

        Raises:
            PartitionError: `key` is not one of the keys.
        """
        try:
            return self.keys.index(key)
        except ValueError:
            shown = ", ".join(self.keys[:10]) + (", ..." if len(self.keys) > 10 else "")
            raise PartitionError(f"Unknown partition key {key!r}; the keys are: {shown}.") from None

    def describe(self) -> dict[str, Any]:
        """A JSON-able description."""
        return {"type": "static", "keys": list(self.keys), "column": self.column}


Dimension = TimeWindows | StaticKeys


@dataclass(frozen=True, slots=True)
class PartitionsDefinition:
    """How an asset is partitioned: one or more dimensions (at most one of time)."""

    dimensions: tuple[Dimension, ...]

    def __post_init__(self) -> None:
        if not self.dimensions:
            raise PartitionError("A partition definition needs at least one dimension.")
        times = [d for d in self.dimensions if isinstance(d, TimeWindows)]
        if len(times) > 1:
            raise PartitionError(
                "A partition definition may have at most one time dimension (daily x hourly "
                "is one hourly dimension)."
            )
        if len(self.dimensions) > 1:
            cols = [d.column for d in self.dimensions]
            if any(c is None for c in cols) or len(set(cols)) != len(cols):
                raise PartitionError(
                    "Each dimension of a multi-dimensional partition definition needs its own "
                    "`column=`."
                )

    # -- structure ---------------------------------------------------------------------------

    @property
    def axis(self) -> int:
        """The position of the dimension ranges run along."""
        for i, d in enumerate(self.dimensions):
            if isinstance(d, TimeWindows):
                return i
        return len(self.dimensions) - 1

    @property
    def time(self) -> TimeWindows | None:
        """The time dimension, if any."""
        d = self.dimensions[self.axis]
        return d if isinstance(d, TimeWindows) else None

    @property
    def axis_dim(self) -> Dimension:
        """The dimension ranges run along."""
        return self.dimensions[self.axis]

    @property
    def others(self) -> tuple[StaticKeys, ...]:
        """The static dimensions off the axis, in declaration order."""
        return tuple(
            d  # type: ignore[misc]
            for i, d in enumerate(self.dimensions)
            if i != self.axis
        )

    def prefixes(self) -> list[Prefix]:
        """Every combination of the off-axis keys (one empty prefix for one dimension)."""
        out: list[Prefix] = [()]
        for d in self.others:
            out = [(*p, k) for p in out for k in d.keys]
        return out

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns the dimensions filter on (those that name one)."""
        return tuple(d.column for d in self.dimensions if d.column)

    # -- keys --------------------------------------------------------------------------------

    def key(self, prefix: Prefix, index: int) -> str:
        """The key of one partition."""
        parts = list(prefix)
        parts.insert(self.axis, self.axis_dim.key(index))
        return KEY_SEP.join(parts)

    def split_key(self, key: str) -> tuple[Prefix, int]:
        """Return (prefix, index) of `key`.

        Raises:
            PartitionError: a part of `key` is not a key of its dimension.
        """
        parts = key.split(KEY_SEP)
        if len(parts) != len(self.dimensions):
            example = KEY_SEP.join(
                d.key(0) if isinstance(d, TimeWindows) else d.keys[0] for d in self.dimensions
            )
            raise PartitionError(
                f"Partition key {key!r} has {len(parts)} part(s); this asset's keys have "
                f"{len(self.dimensions)}, like {example!r}."
            )
        prefix: list[str] = []
        index = 0
        for i, (part, d) in enumerate(zip(parts, self.dimensions, strict=True)):
            if i == self.axis:
                index = d.index(part)
            else:
                d.index(part)  # validates
                prefix.append(part)
        return tuple(prefix), index

    def count(self, now: datetime) -> int:
        """How many partitions exist along the axis at `now`."""
        return self.axis_dim.count(now)

    def expected(self, now: datetime) -> PartitionSet:
        """Every partition that should exist at `now` (complete windows only)."""
        n = self.count(now)
        if n <= 0:
            return PartitionSet()
        return PartitionSet({p: ((0, n - 1),) for p in self.prefixes()})

    def window(self, lo: int, hi: int) -> tuple[datetime, datetime] | None:
        """The time span [start, end) of axis range lo..hi (None without a time dimension)."""
        t = self.time
        if t is None:
            return None
        return t.window_start(lo), t.window_end(hi)

    def describe(self) -> dict[str, Any]:
        """A JSON-able description (for `ls --json`)."""
        if len(self.dimensions) == 1:
            return self.dimensions[0].describe()
        return {"type": "multi", "dimensions": [d.describe() for d in self.dimensions]}

    def select(
        self,
        now: datetime,
        start: str | None = None,
        end: str | None = None,
        keys: Sequence[str] = (),
    ) -> PartitionSet:
        """The partitions between the dates `start` and `end` (inclusive) and/or named `keys`.

        Raises:
            PartitionError: a date does not parse, a key is unknown, or the range lies outside
                the partitions that exist at `now`.
        """
        exist = self.expected(now)
        n = self.count(now)
        chosen = PartitionSet()
        if keys:
            for k in keys:
                prefix, i = self.split_key(k)
                if not 0 <= i < n:
                    raise PartitionError(
                        f"Partition {k!r} is outside this asset's partitions "
                        f"({self._span_text(n)})."
                    )
                chosen = chosen | PartitionSet({prefix: ((i, i),)})
            if start is None and end is None:
                return chosen
        if start is None and end is None:
            return exist
        lo, hi = self._bounds(start, end, n)
        if lo > hi:
            raise PartitionError(f"The range {start} .. {end} is empty: --from is after --to.")
        if hi < 0 or lo >= n:
            raise PartitionError(
                f"The range {start or '...'} .. {end or '...'} is outside this asset's "
                f"partitions ({self._span_text(n)})."
            )
        lo, hi = max(lo, 0), min(hi, n - 1)
        span = PartitionSet({p: ((lo, hi),) for p in self.prefixes()})
        return span if not keys else chosen & span

    def _bounds(self, start: str | None, end: str | None, n: int) -> tuple[int, int]:
        dim = self.axis_dim
        if isinstance(dim, TimeWindows):
            lo = dim.index_of_bound(start, upper=False) if start else 0
            hi = dim.index_of_bound(end, upper=True) if end else n - 1
        else:
            lo = dim.index(start) if start else 0
            hi = dim.index(end) if end else n - 1
        return lo, hi

    def clipped(self, now: datetime, start: str | None, end: str | None) -> str | None:
        """Say how a range `start`..`end` reaching outside the partitions was cut (None: it
        was not); `select` cuts it so."""
        if start is None and end is None:
            return None
        n = self.count(now)
        lo, hi = self._bounds(start, end, n)
        if lo > hi or hi < 0 or lo >= n or (lo >= 0 and hi < n):
            return None
        return (
            f"the range {start or '...'} .. {end or '...'} reaches outside its partitions "
            f"({self._span_text(n)}): only {self.axis_dim.key(max(lo, 0))} .. "
            f"{self.axis_dim.key(min(hi, n - 1))} run"
        )

    def _span_text(self, n: int) -> str:
        if n <= 0:
            return "none exist yet"
        return f"{self.axis_dim.key(0)} .. {self.axis_dim.key(n - 1)}"

    def key_ranges(self, parts: PartitionSet) -> list[list[str]]:
        """`parts` as [[first key, last key], ...] (for JSON and display)."""
        return [[self.key(p, lo), self.key(p, hi)] for p, lo, hi in parts.ranges()]


# -- constructors (the public vocabulary) -----------------------------------------------------


def _time(
    grain: Grain, start: str, timezone: str, column: str | None, end: str | None
) -> PartitionsDefinition:
    return PartitionsDefinition((TimeWindows(grain, start, timezone, column, end),))


def hourly(
    start: str, *, timezone: str = "UTC", column: str | None = None, end: str | None = None
) -> PartitionsDefinition:
    """Hourly partitions from `start` (`2013-01-01T00:00`), optionally up to `end` (exclusive)."""
    return _time(Grain.HOURLY, start, timezone, column, end)


def daily(
    start: str, *, timezone: str = "UTC", column: str | None = None, end: str | None = None
) -> PartitionsDefinition:
    """Daily partitions from the date `start`, optionally up to `end` (exclusive).

    Args:
        start: the first day, `2013-01-01`.
        timezone: where days begin and end (an IANA name).
        column: the date/timestamp column of the asset's output that holds the day; a
            partition write deletes and re-inserts exactly the rows in its window.
        end: stop creating partitions at this date (exclusive), for finite data sets.
    """
    return _time(Grain.DAILY, start, timezone, column, end)


def weekly(
    start: str, *, timezone: str = "UTC", column: str | None = None, end: str | None = None
) -> PartitionsDefinition:
    """Weekly partitions; each week begins on the weekday of `start`."""
    return _time(Grain.WEEKLY, start, timezone, column, end)


def monthly(
    start: str, *, timezone: str = "UTC", column: str | None = None, end: str | None = None
) -> PartitionsDefinition:
    """Monthly partitions from `start` (`2013-01` or `2013-01-01`)."""
    return _time(Grain.MONTHLY, start, timezone, column, end)


def static(keys: Iterable[str], *, column: str | None = None) -> PartitionsDefinition:
    """Partitions by a fixed list of keys, e.g. `static(["JFK", "LGA", "EWR"], column="origin")`."""
    return PartitionsDefinition((StaticKeys(tuple(str(k) for k in keys), column),))


def multi(*definitions: PartitionsDefinition) -> PartitionsDefinition:
    """Combine single-dimension definitions: `multi(daily(...), static(...))` = day x key."""
    dims: list[Dimension] = []
    for d in definitions:
        dims.extend(d.dimensions)
    return PartitionsDefinition(tuple(dims))


def from_config(raw: Any, where: str) -> PartitionsDefinition:
    """Build a definition from config data (a dbt model's `meta: {sqlorch: {partitions:}}`).

    Accepted: `{type: daily, start: 2013-01-01, column: flight_date, timezone?, end?}`,
    `{type: static, keys: [...], column?}`, or a list of those (several dimensions).

    Raises:
        PartitionError: the data does not describe partitions.
    """
    if isinstance(raw, list):
        return multi(*(from_config(r, where) for r in raw))
    if not isinstance(raw, Mapping):
        raise PartitionError(
            f"{where}: `partitions` must be a mapping like {{type: daily, start: 2013-01-01, "
            f"column: flight_date}}, got {raw!r}."
        )
    kind = str(raw.get("type", "")).lower()
    column = raw.get("column")
    if kind == "static":
        keys = raw.get("keys")
        if not isinstance(keys, list) or not keys:
            raise PartitionError(f"{where}: static partitions need a non-empty `keys` list.")
        return static([str(k) for k in keys], column=column)
    if kind not in {g.value for g in Grain}:
        raise PartitionError(
            f"{where}: unknown partition type {raw.get('type')!r}; use hourly, daily, weekly, "
            "monthly or static."
        )
    if not raw.get("start"):
        raise PartitionError(f"{where}: {kind} partitions need a `start` date.")
    try:
        return _time(
            Grain(kind),
            str(raw["start"]),
            str(raw.get("timezone", "UTC")),
            column,
            str(raw["end"]) if raw.get("end") else None,
        )
    except PartitionError as exc:
        raise PartitionError(f"{where}: {exc.message}") from exc


def parse_ranges(definition: PartitionsDefinition, ranges: Iterable[Sequence[str]]) -> PartitionSet:
    """Read [[first key, last key], ...] (full keys, as in events) back into a set."""
    acc: dict[Prefix, list[Range]] = {}
    for first, last in ranges:
        p1, lo = definition.split_key(first)
        p2, hi = definition.split_key(last)
        if p1 != p2:
            raise PartitionError(f"The range {first} .. {last} spans two static keys.")
        acc.setdefault(p1, []).append((lo, hi))
    return PartitionSet({p: tuple(r) for p, r in acc.items()})
