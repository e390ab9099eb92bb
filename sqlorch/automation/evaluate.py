"""Decide what is due, purely: declarations + facts + cursors + the clock in, decisions out.

Everything requested at one evaluation becomes ONE run (`RunSpec`): the stale set of the
requested assets, with the assets that must rebuild although nothing is stale (`full`: a
freshness target, an `on_cron` tick, new files) and the partitions files map to. Every
source gets a decision with its reasons (requested: which assets and why; skipped: why),
recorded as its tick.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlorch.automation.definitions import (
    AssetConditions,
    AutomationSpec,
    CatchUp,
    Schedule,
    SourceKind,
)
from sqlorch.core.graph import AssetGraph
from sqlorch.core.plan.definition import Reason, ReasonKind

#: reasons that alone do not make eager / on_missing request again (a failure loops otherwise)
_FAILURES = {
    ReasonKind.LAST_ATTEMPT_FAILED,
    ReasonKind.CHECK_FAILED,
    ReasonKind.PARTITIONS_FAILED,
}
_MISSING = {
    ReasonKind.NEVER_MATERIALIZED,
    ReasonKind.TABLE_MISSING,
    ReasonKind.PARTITIONS_MISSING,
}
_UPSTREAM = {ReasonKind.UPSTREAM_STALE, ReasonKind.UPSTREAM_PLANNED}


class TickStatus(StrEnum):
    """What one source decided at one evaluation."""

    REQUESTED = "requested"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class AssetFacts:
    """What the evaluation knows of one asset."""

    stale: tuple[Reason, ...] = ()
    materialized_at: datetime | None = None
    duration_s: float | None = None
    partitioned: bool = False


@dataclass(frozen=True, slots=True)
class SensorRequest:
    """One run request a sensor made (keys resolved; files by asset)."""

    keys: frozenset[str]
    reason: str
    run_key: str | None = None
    partition_key: str | None = None
    files: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SensorOutcome:
    """What a sensor returned at this evaluation (it was called before, with I/O)."""

    source: str
    requests: tuple[SensorRequest, ...] = ()
    cursor: str | None = None
    skip_reason: str | None = None
    error: str | None = None
    next_wake: datetime | None = None


@dataclass(frozen=True, slots=True)
class Facts:
    """The world at evaluation time, read by `sqlorch.automation.facts`."""

    graph: AssetGraph
    assets: Mapping[str, AssetFacts]
    cursors: Mapping[str, str | None] = field(default_factory=dict)
    paused: frozenset[str] = frozenset()
    #: assets of queued or running automation runs
    in_flight: frozenset[str] = frozenset()
    #: each source's last recorded decision (status, reasons): unchanged skips are not recorded
    last_ticks: Mapping[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    #: (source, keys) -> the keys used before
    used_run_keys: Callable[[str, Sequence[str]], set[str]] = lambda source, keys: set()


@dataclass(frozen=True, slots=True)
class Decision:
    """One source's decision (a tick record)."""

    source: str
    kind: SourceKind
    status: TickStatus
    assets: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    run_key: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class RunSpec:
    """The one run an evaluation requests."""

    select: tuple[str, ...] = ()
    full: tuple[str, ...] = ()
    backfills: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = ()
    files: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Return the spec as the queue stores it."""
        return {
            "select": list(self.select),
            "full": list(self.full),
            "backfills": [{"select": list(s), "keys": list(k)} for s, k in self.backfills],
            "files": {k: list(v) for k, v in self.files.items()},
        }

    @property
    def keys(self) -> tuple[str, ...]:
        """Every asset the run was asked for."""
        return tuple(sorted({*self.select, *self.full, *(k for s, _ in self.backfills for k in s)}))


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The decisions of one evaluation and what to commit with them."""

    decisions: tuple[Decision, ...]
    spec: RunSpec | None
    run_keys: tuple[tuple[str, str], ...]
    cursors: Mapping[str, str | None]
    next_wake: datetime | None

    @property
    def requested(self) -> list[Decision]:
        """The decisions that requested something."""
        return [d for d in self.decisions if d.status is TickStatus.REQUESTED]


class _Builder:
    """Collect requests and decisions during one evaluation."""

    def __init__(self, facts: Facts, now: datetime) -> None:
        self.facts = facts
        self.now = now
        self.stale: dict[str, list[str]] = {}
        self.full: dict[str, list[str]] = {}
        self.backfills: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
        self.files: dict[str, list[str]] = {}
        self.decisions: list[Decision] = []
        self.run_keys: list[tuple[str, str]] = []
        self.cursors: dict[str, str | None] = {}
        self.wakes: list[datetime] = []

    @property
    def requested(self) -> set[str]:
        return {*self.stale, *self.full, *(k for s, _ in self.backfills for k in s)}

    def request(self, keys: Mapping[str, str], *, force: bool = False) -> None:
        """Add assets with their reasons (forced: rebuilt although not stale)."""
        for key, why in keys.items():
            node = self.facts.graph.assets.get(key)
            if node is None or not node.is_materializable:
                continue
            partitioned = self.facts.assets.get(key, AssetFacts()).partitioned
            target = self.full if force and not partitioned else self.stale
            target.setdefault(key, []).append(why)

    def decide(self, decision: Decision) -> None:
        """Record a decision (a skip equal to the source's last recorded one is dropped)."""
        if decision.status is TickStatus.SKIPPED:
            last = self.facts.last_ticks.get(decision.source)
            if last == (str(decision.status), decision.reasons):
                return
        self.decisions.append(decision)

    def wake(self, at: datetime | None) -> None:
        if at is not None:
            self.wakes.append(at)

    def result(self) -> Evaluation:
        spec = None
        if self.stale or self.full or self.backfills:
            spec = RunSpec(
                select=tuple(self.facts.graph.topological(set(self.stale) - set(self.full))),
                full=tuple(self.facts.graph.topological(self.full)),
                backfills=_merged(self.backfills),
                files={k: tuple(dict.fromkeys(v)) for k, v in sorted(self.files.items())},
            )
        future = [w for w in self.wakes if w > self.now]
        return Evaluation(
            tuple(self.decisions),
            spec,
            tuple(self.run_keys),
            dict(self.cursors),
            min(future) if future else None,
        )


def evaluate(
    spec: AutomationSpec,
    facts: Facts,
    now: datetime,
    sensors: Sequence[SensorOutcome] = (),
) -> Evaluation:
    """Decide what every schedule, sensor and asset condition requests at `now`.

    Pure: `facts` and the sensors' outcomes were read before; nothing is written here.
    """
    b = _Builder(facts, now)
    for schedule in spec.schedules:
        _schedule(b, schedule)
    for outcome in sensors:
        _sensor(b, outcome)
    ordered = facts.graph.topological(spec.assets)
    for key in ordered:
        _timed(b, spec.assets[key])
    for key in ordered:
        if spec.assets[key].eager:
            _eager(b, spec.assets[key])
    return b.result()


def _schedule(b: _Builder, s: Schedule) -> None:
    source, now = s.source, b.now
    if source in b.facts.paused:
        b.decide(Decision(source, SourceKind.SCHEDULE, TickStatus.SKIPPED, reasons=("paused",)))
        return
    b.wake(s.cron.next_after(now))
    cursor = b.facts.cursors.get(source)
    if cursor is None:
        first = s.cron.next_after(now)
        b.cursors[source] = iso(now)
        b.decide(
            Decision(
                source,
                SourceKind.SCHEDULE,
                TickStatus.SKIPPED,
                reasons=(f"schedule starts now; first tick {iso(first)}",),
            )
        )
        return
    cap = s.max_catch_up if s.catch_up is CatchUp.ALL else 1
    ticks = s.cron.between(_parse(cursor), now, cap=cap + 1)
    if not ticks:
        return
    b.cursors[source] = iso(ticks[-1])
    dropped = len(ticks) > cap
    ticks = ticks[-cap:]
    keys = [iso(t) for t in ticks]
    used = b.facts.used_run_keys(source, keys)
    fresh = [k for k in keys if k not in used]
    missed = ""
    if dropped:
        missed = f" (older missed ticks not run: catch_up={s.catch_up}" + (
            f", max_catch_up={s.max_catch_up})" if s.catch_up is CatchUp.ALL else ")"
        )
    for key in keys:
        if key in used:
            b.decide(
                Decision(
                    source,
                    SourceKind.SCHEDULE,
                    TickStatus.SKIPPED,
                    reasons=(f"tick {key} already ran (run key used)",),
                    run_key=key,
                )
            )
    if not fresh:
        return
    why = f"schedule {s.name}: {s.cron.describe()} tick {fresh[-1]}{missed}"
    b.request({k: why for k in s.keys}, force=s.full)
    for key in fresh:
        b.run_keys.append((source, key))
        b.decide(
            Decision(
                source,
                SourceKind.SCHEDULE,
                TickStatus.REQUESTED,
                tuple(sorted(s.keys)),
                (f"{s.cron.describe()} tick {key}{missed}",),
                run_key=key,
            )
        )


def _sensor(b: _Builder, o: SensorOutcome) -> None:
    b.wake(o.next_wake)
    if o.error is not None:
        # the cursor stays: the next interval retries
        b.decisions.append(Decision(o.source, SourceKind.SENSOR, TickStatus.FAILED, error=o.error))
        return
    keys_by_request = [r.run_key for r in o.requests if r.run_key]
    used = b.facts.used_run_keys(o.source, keys_by_request)
    taken: set[str] = set()
    for r in o.requests:
        if r.run_key is not None and (r.run_key in used or r.run_key in taken):
            b.decide(
                Decision(
                    o.source,
                    SourceKind.SENSOR,
                    TickStatus.SKIPPED,
                    tuple(sorted(r.keys)),
                    (f"run key {r.run_key!r} already ran",),
                    run_key=r.run_key,
                )
            )
            continue
        if r.run_key is not None:
            taken.add(r.run_key)
            b.run_keys.append((o.source, r.run_key))
        if r.partition_key is not None:
            roots = tuple(sorted(_roots(b.facts.graph, r.keys)))
            b.backfills.append((roots, (r.partition_key,)))
        else:
            b.request({k: r.reason for k in r.keys}, force=True)
        for key, files in r.files.items():
            b.files.setdefault(key, []).extend(files)
        b.decide(
            Decision(
                o.source,
                SourceKind.SENSOR,
                TickStatus.REQUESTED,
                tuple(sorted(r.keys)),
                (r.reason,),
                run_key=r.run_key,
            )
        )
    if o.cursor is not None or o.requests:
        b.cursors[o.source] = o.cursor
    if not o.requests and o.skip_reason:
        b.decide(
            Decision(o.source, SourceKind.SENSOR, TickStatus.SKIPPED, reasons=(o.skip_reason,))
        )


def _timed(b: _Builder, a: AssetConditions) -> None:
    """on_missing, on_cron and max_lag of one asset (eager comes after, over the chain)."""
    source, key = a.source, a.key
    if source in b.facts.paused:
        b.decide(Decision(source, SourceKind.ASSET, TickStatus.SKIPPED, (key,), ("paused",)))
        return
    facts = b.facts.assets.get(key, AssetFacts())
    if key in b.facts.in_flight:
        if a.on_missing or a.on_cron or a.max_lag_s is not None:
            b.decide(_skip(a, "in a queued or running automation run"))
        return
    kinds = {r.kind for r in facts.stale}
    if a.on_missing and kinds & _MISSING:
        if kinds & _FAILURES:
            b.decide(_skip(a, "missing, but its last attempt failed: fix it, then `sqlorch retry`"))
        else:
            why = "on_missing: " + "; ".join(r for r in facts.stale if r.kind in _MISSING)
            _request_one(b, a, why, force=False)
            return
    if a.on_cron is not None:
        if _on_cron(b, a, facts):
            return
    if a.max_lag_s is not None:
        _max_lag(b, a, facts)


def _on_cron(b: _Builder, a: AssetConditions, facts: AssetFacts) -> bool:
    assert a.on_cron is not None
    cursor_key = f"{a.source}:on_cron"
    b.wake(a.on_cron.next_after(b.now))
    tick = a.on_cron.previous(b.now)
    cursor = b.facts.cursors.get(cursor_key)
    if cursor is None:
        b.cursors[cursor_key] = iso(tick)
        return False
    if tick <= _parse(cursor):
        return False
    waiting = [
        p
        for p in b.facts.graph.parents(a.key)
        if p in b.facts.graph.assets
        and b.facts.graph.assets[p].is_materializable
        and p not in b.requested
        and not _after(b.facts.assets.get(p, AssetFacts()).materialized_at, tick)
    ]
    if waiting:
        b.decide(_skip(a, f"on_cron tick {iso(tick)}: waiting for {', '.join(waiting)} to update"))
        return False
    b.cursors[cursor_key] = iso(tick)
    _request_one(b, a, f"on_cron {a.on_cron.describe()} tick {iso(tick)}", force=True)
    return True


def _max_lag(b: _Builder, a: AssetConditions, facts: AssetFacts) -> None:
    assert a.max_lag_s is not None
    lag = timedelta(seconds=a.max_lag_s)
    if facts.materialized_at is None:
        _request_one(b, a, f"never materialized (max_lag {_span(lag)})", force=True)
        return
    margin = max(lag / 10, timedelta(seconds=2 * (facts.duration_s or 0.0)))
    due = facts.materialized_at + lag - margin
    if b.now >= due:
        age = b.now - facts.materialized_at
        why = (
            f"max_lag {_span(lag)}: last materialized {_span(age)} ago, rebuilt before it is "
            f"older than {_span(lag)}"
        )
        _request_one(b, a, why, force=True)
    else:
        b.wake(due)


def _eager(b: _Builder, a: AssetConditions) -> None:
    key, graph = a.key, b.facts.graph
    if a.source in b.facts.paused or key in b.requested:
        return
    up_requested = [p for p in graph.parents(key) if p in b.requested]
    if up_requested:  # (even when an open run builds it too: this run reads newer data)
        _request_one(b, a, f"eager: upstream {', '.join(up_requested)} is built in this run")
        return
    if key in b.facts.in_flight:
        return
    facts = b.facts.assets.get(key, AssetFacts())
    if not facts.stale:
        return
    kinds = {r.kind for r in facts.stale}
    running = [p for p in graph.parents(key) if p in b.facts.in_flight]
    if running:
        b.decide(_skip(a, f"eager: waiting for upstream {', '.join(running)} (its run is open)"))
        return
    missing = [
        p
        for p in graph.parents(key)
        if p in b.facts.assets
        and {r.kind for r in b.facts.assets[p].stale} & _MISSING
        and b.facts.assets[p].materialized_at is None
    ]
    if missing:
        b.decide(_skip(a, f"eager: waiting for upstream {', '.join(missing)} (never materialized)"))
        return
    if kinds <= _FAILURES:
        b.decide(
            _skip(a, "eager: its last attempt failed; a change or `sqlorch retry` rebuilds it")
        )
        return
    if kinds <= _UPSTREAM:
        stale_up = [p for p in graph.parents(key) if b.facts.assets.get(p, AssetFacts()).stale]
        b.decide(
            _skip(
                a,
                f"eager: waiting for upstream {', '.join(stale_up) or '?'} (stale, not requested)",
            )
        )
        return
    _request_one(b, a, "eager: " + "; ".join(r for r in facts.stale if r.kind not in _UPSTREAM))


def _request_one(b: _Builder, a: AssetConditions, why: str, *, force: bool = False) -> None:
    b.request({a.key: why}, force=force)
    b.decide(Decision(a.source, SourceKind.ASSET, TickStatus.REQUESTED, (a.key,), (why,)))


def _skip(a: AssetConditions, why: str) -> Decision:
    return Decision(a.source, SourceKind.ASSET, TickStatus.SKIPPED, (a.key,), (why,))


def _merged(
    backfills: list[tuple[tuple[str, ...], tuple[str, ...]]],
) -> tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]:
    by_roots: dict[tuple[str, ...], list[str]] = {}
    for roots, keys in backfills:
        by_roots.setdefault(roots, []).extend(keys)
    return tuple((r, tuple(sorted(set(k)))) for r, k in by_roots.items())


def _roots(graph: AssetGraph, keys: frozenset[str]) -> set[str]:
    return {k for k in keys if not set(graph.parents(k)) & keys}


def _after(ts: datetime | None, tick: datetime) -> bool:
    return ts is not None and ts >= tick


def iso(ts: datetime) -> str:
    """Return a time as the UTC ISO-8601 text cursors and tick records use (seconds)."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds >= 3600:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m"
    return f"{seconds}s"
