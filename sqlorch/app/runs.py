"""Runs and their event logs, as `sqlorch runs` and `sqlorch logs` show them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from sqlorch.errors import ConfigError
from sqlorch.settings import Settings
from sqlorch.state.store import EventRecord, RunRecord, StateStore, open_store

#: event levels, lowest first (`sqlorch logs --level`)
LEVELS = {"debug": 0, "info": 1, "warning": 2, "error": 3}


def find_run(store: StateStore, state_path: Path | str, run_id: str | None) -> RunRecord:
    """Return the run `run_id` (None: the last run).

    Raises:
        ConfigError: there is no such run (or no run at all).
    """
    if run_id is None:
        last = store.runs(1)
        if not last:
            raise ConfigError("No runs yet: `sqlorch build` starts one.")
        return last[0]
    found = store.run(run_id)
    if found is None:
        raise ConfigError(f"No run {run_id!r} in {state_path}. `sqlorch runs` lists the runs.")
    return found


def run_documents(settings: Settings, limit: int | None) -> list[dict[str, Any]]:
    """Return the newest `limit` runs as `sqlorch runs --json` prints them (DESIGN.md §10)."""
    records = open_store(settings, readonly=True).runs(limit)
    return [
        {
            "run_id": r.run_id,
            "command": r.command,
            "selection": r.selection,
            "started_at": r.started_at,
            "finished_at": r.finished_at,
            "status": r.status,
            "assets": {"succeeded": r.succeeded, "failed": r.failed, "skipped": r.skipped},
        }
        for r in records
    ]


def run_log(
    settings: Settings,
    run_id: str | None,
    *,
    assets: Iterable[str] = (),
    level: str = "debug",
) -> Iterator[EventRecord]:
    """Return the events of run `run_id` (None: the last run), in order, filtered.

    Args:
        settings: the resolved settings.
        run_id: the run (None: the last one).
        assets: only events of these assets (key or name; none: all).
        level: only events at or above this level (see `LEVELS`).

    Raises:
        ConfigError: there is no such run.
    """
    store = open_store(settings, readonly=True)
    record = find_run(store, settings.state_location, run_id)
    wanted = {a.lower() for a in assets}
    return _filtered(store.events(record.run_id), wanted, LEVELS[level.lower()])


def _filtered(events: Iterable[EventRecord], wanted: set[str], floor: int) -> Iterator[EventRecord]:
    for ev in events:
        if wanted and not (
            ev.asset is not None and (ev.asset in wanted or ev.asset.rsplit(".", 1)[-1] in wanted)
        ):
            continue
        if LEVELS.get(ev.level, 1) < floor:
            continue
        yield ev


def event_document(ev: EventRecord) -> dict[str, Any]:
    """Return one event as a line of `sqlorch logs --json`."""
    return {
        "ts": ev.ts,
        "run_id": ev.run_id,
        "kind": ev.kind,
        "asset": ev.asset,
        "level": ev.level,
        "message": ev.message,
        "data": ev.data,
    }
