"""What the web UI's runs and run pages show: runs, a run's steps on a timeline, its log paged.

Read-only over the state store, with the documents of `sqlorch runs --json` and
`sqlorch logs --json` (`sqlorch.app.runs`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlorch.app.runs import LEVELS, event_document, find_run, run_documents
from sqlorch.events import EventKind
from sqlorch.settings import Settings
from sqlorch.state.store import EventRecord, open_store

#: the events that start and end the bars of a run's timeline
TIMELINE_KINDS = (
    EventKind.RUN_STARTED,
    EventKind.RUN_FINISHED,
    EventKind.ASSET_STARTED,
    EventKind.ASSET_MATERIALIZED,
    EventKind.ASSET_FAILED,
    EventKind.ASSET_SKIPPED,
    EventKind.DBT_INVOCATION_STARTED,
    EventKind.DBT_INVOCATION_FINISHED,
    EventKind.PARTITIONS_MATERIALIZED,
    EventKind.PARTITIONS_FAILED,
)
_ENDS = {
    EventKind.ASSET_MATERIALIZED: "success",
    EventKind.ASSET_FAILED: "failed",
    EventKind.ASSET_SKIPPED: "skipped",
}


def runs_page(
    settings: Settings,
    *,
    limit: int = 200,
    status: str | None = None,
    asset: str | None = None,
) -> list[dict[str, Any]]:
    """Return the newest runs (`runs --json` documents plus `duration_s`), filtered.

    `status`: only runs with this status; `asset`: only runs that materialized the asset
    or failed at it.
    """
    docs = run_documents(settings, None if (status or asset) else limit)
    if asset:
        store = open_store(settings, readonly=True)
        try:
            touched = {m.run_id for m in store.materializations(asset)}
            touched |= {a[0] for a in store.failed_attempts(asset)}
        finally:
            store.close()
        docs = [d for d in docs if d["run_id"] in touched]
    if status:
        docs = [d for d in docs if d["status"] == status]
    for d in docs[:limit]:
        d["duration_s"] = _seconds(d["started_at"], d["finished_at"])
    return docs[:limit]


def run_page(settings: Settings, run_id: str) -> dict[str, Any]:
    """Return one run: its `runs --json` document, event count, assets and timeline bars.

    Timeline bars: `{"label", "lane": "asset"|"dbt"|"partitions", "asset", "start", "end",
    "status"}` (ISO-8601; `end` null while running).

    Raises:
        ConfigError: there is no such run.
    """
    store = open_store(settings, readonly=True)
    try:
        record = find_run(store, settings.state_path, run_id)
        marks = store.events_page(
            record.run_id, limit=1_000_000, kinds=[k.value for k in TIMELINE_KINDS]
        )
        total = store.event_count(record.run_id)
    finally:
        store.close()
    doc = {
        "run_id": record.run_id,
        "command": record.command,
        "selection": record.selection,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "status": record.status,
        "assets": {
            "succeeded": record.succeeded,
            "failed": record.failed,
            "skipped": record.skipped,
        },
        "duration_s": _seconds(record.started_at, record.finished_at),
    }
    bars = timeline(marks)
    return {
        "run": doc,
        "events": total,
        "asset_keys": sorted({b["asset"] for b in bars if b["asset"]}),
        "timeline": bars,
    }


def timeline(events: list[EventRecord]) -> list[dict[str, Any]]:
    """Turn a run's start/end events into timeline bars, in start order."""
    bars: list[dict[str, Any]] = []
    open_assets: dict[str, dict[str, Any]] = {}
    open_dbt: dict[Any, dict[str, Any]] = {}
    for ev in events:
        kind = ev.kind
        if kind == EventKind.ASSET_STARTED and ev.asset:
            bar = _bar(ev.asset, "asset", ev.asset, ev.ts, None, "running")
            open_assets[ev.asset] = bar
            bars.append(bar)
        elif kind in _ENDS and ev.asset:
            found = open_assets.pop(ev.asset, {})
            if not found:  # skipped without starting
                found = _bar(ev.asset, "asset", ev.asset, ev.ts, None, "")
                bars.append(found)
            found["end"], found["status"] = ev.ts, _ENDS[EventKind(kind)]
        elif kind == EventKind.DBT_INVOCATION_STARTED:
            n = ev.data.get("invocation")
            bar = _bar(f"dbt invocation {n}", "dbt", None, ev.ts, None, "running")
            open_dbt[n] = bar
            bars.append(bar)
        elif kind == EventKind.DBT_INVOCATION_FINISHED:
            # invocations are serialized: a finish closes the oldest open one
            number = ev.data.get("invocation", next(iter(open_dbt), None))
            done = open_dbt.pop(number, {})
            if done:
                done["end"] = ev.ts
                done["status"] = "success" if ev.data.get("success") else "failed"
        elif kind in (EventKind.PARTITIONS_MATERIALIZED, EventKind.PARTITIONS_FAILED):
            ranges = ev.data.get("partitions") or []
            label = ", ".join(f"{r[0]}..{r[1]}" if r[0] != r[1] else r[0] for r in ranges[:3])
            start = _minus(ev.ts, ev.data.get("duration_s"))
            ok = kind == EventKind.PARTITIONS_MATERIALIZED
            bars.append(
                _bar(f"{ev.asset} [{label}]", "partitions", ev.asset, start, ev.ts, "success")
                if ok
                else _bar(f"{ev.asset} [{label}]", "partitions", ev.asset, start, ev.ts, "failed")
            )
    bars.sort(key=lambda b: b["start"])
    return bars


def _bar(
    label: str, lane: str, asset: str | None, start: str, end: str | None, status: str
) -> dict[str, Any]:
    return {
        "label": label,
        "lane": lane,
        "asset": asset,
        "start": start,
        "end": end,
        "status": status,
    }


def events_page(
    settings: Settings,
    run_id: str,
    *,
    after: int = 0,
    limit: int = 500,
    level: str = "debug",
    asset: str | None = None,
) -> dict[str, Any]:
    """Return a page of a run's log: `logs --json` lines with their `id`, filtered.

    `{"run_id", "status", "events": [...], "next": id to ask `after` for the next page,
    "more": whether a full page came back}`.

    Raises:
        ConfigError: there is no such run, or the level is unknown.
    """
    from sqlorch.errors import ConfigError

    floor = LEVELS.get(level.lower())
    if floor is None:
        raise ConfigError(f"Unknown level {level!r}: one of {', '.join(LEVELS)}.")
    levels = [name for name, rank in LEVELS.items() if rank >= floor] if floor else []
    store = open_store(settings, readonly=True)
    try:
        record = find_run(store, settings.state_path, run_id)
        page = store.events_page(
            record.run_id, after=after, limit=limit, levels=levels, asset=asset or None
        )
        status = record.status
    finally:
        store.close()
    return {
        "run_id": record.run_id,
        "status": status,
        "events": [{"id": ev.id, **event_document(ev)} for ev in page],
        "next": page[-1].id if page else after,
        "more": len(page) == limit,
    }


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    try:
        a = datetime.fromisoformat(start.replace("Z", "+00:00"))
        b = datetime.fromisoformat(end.replace("Z", "+00:00"))
    except ValueError:
        return None
    return round((b - a).total_seconds(), 3)


def _minus(ts: str, seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return ts
    from datetime import timedelta

    moment = datetime.fromisoformat(ts.replace("Z", "+00:00")) - timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
