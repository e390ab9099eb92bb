"""An asset's history from the state store: materializations, durations, check results."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlorch.errors import ConfigError
from sqlorch.settings import Settings
from sqlorch.state.base import StateReader
from sqlorch.state.records import CheckResultRecord

_BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float | int | None]) -> str:
    """Return one bar character per value, scaled between the min and max (blank for None)."""
    known = [float(v) for v in values if v is not None]
    if not known:
        return " " * len(values)
    low, high = min(known), max(known)
    span = high - low
    out = []
    for v in values:
        if v is None:
            out.append(" ")
        elif span == 0:
            out.append(_BARS[len(_BARS) // 2])
        else:
            out.append(_BARS[round((float(v) - low) / span * (len(_BARS) - 1))])
    return "".join(out)


def resolve_asset(store: StateReader, name: str) -> str:
    """Find the asset key the store knows for `name` (a key, or a unique table name).

    Raises:
        ConfigError: no asset or several assets match.
    """
    known = store.known_assets()
    wanted = name.lower()
    if wanted in known:
        return wanted
    matches = sorted(k for k in known if k.rsplit(".", 1)[-1] == wanted)
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise ConfigError(
            f"No history for {name!r} in {store.path}: it was never built or checked. "
            "`sqlorch status` lists the assets and their last materialization."
        )
    raise ConfigError(
        f"{name!r} names several assets with history: {', '.join(matches)}. Use the full key."
    )


def asset_history(store: StateReader, key: str, limit: int | None = None) -> dict[str, Any]:
    """Return the history document of `key` (newest first), as `sqlorch history --json` prints.

    `{"key", "materializations": [{"run_id", "materialized_at", "partition", "rows",
    "duration_s", "code_version", "columns", "metadata", "checks": [...]}], "checks": [...],
    "failures": [{"run_id", "at", "status", "error"}]}`: `checks` inside a materialization are
    the results of its run; the top-level `checks` are every result, newest first.
    """
    mats = store.materializations(key, limit)
    results = store.check_results(asset=key, limit=limit * 20 if limit else None)
    by_run: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        by_run.setdefault(r.run_id, []).append(_check_doc(r))
    return {
        "key": key,
        "materializations": [
            {
                "run_id": m.run_id,
                "materialized_at": m.materialized_at,
                "partition": m.partition,
                "rows": m.rows,
                "duration_s": m.duration_s,
                "code_version": m.code_version,
                "columns": [{"name": n, "type": t} for n, t in m.columns or ()],
                "metadata": m.metadata,
                "checks": by_run.get(m.run_id, []),
            }
            for m in mats
        ],
        "checks": [_check_doc(r) for r in results],
        "failures": [
            {"run_id": a[0], "at": a[1], "status": a[2], "error": a[3]}
            for a in store.failed_attempts(key, limit)
        ],
    }


def _check_doc(r: CheckResultRecord) -> dict[str, Any]:
    return {
        "run_id": r.run_id,
        "check": r.name,
        "check_id": r.check_id,
        "kind": r.kind,
        "status": r.status,
        "blocking": r.blocking,
        "partition": r.partition,
        "message": r.message,
        "metadata": r.metadata,
        "checked_at": r.checked_at,
    }


def history_of(
    settings: Settings, name: str, limit: int | None = None
) -> tuple[str, dict[str, Any]]:
    """Return the key `name` resolves to and its history (`asset_history`).

    Raises:
        ConfigError: the state store knows no such asset.
    """
    from sqlorch.state.store import open_store

    store = open_store(settings, readonly=True)
    key = resolve_asset(store, name)
    return key, asset_history(store, key, limit)
