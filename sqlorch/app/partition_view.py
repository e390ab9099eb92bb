"""The partitions grid of the web UI: `sqlorch partitions` placed on axes, with the ledger.

Ranges stay ranges (44,000 hourly partitions are a few segments, not 44,000 cells): each
status range of `partitions_report` becomes a segment of its row (one row per static key,
one for a purely time-partitioned asset), placed by its first and last index.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlorch.app.partitions import partitions_report
from sqlorch.load.project import load_project
from sqlorch.settings import Settings
from sqlorch.state.store import open_store

STATUSES = ("done", "stale", "missing", "failed")


def partition_grid(settings: Settings, asset: str, now: datetime | None = None) -> dict[str, Any]:
    """Return `sqlorch partitions --json` plus its rows of segments and the ledger's ranges.

    `{..., "axis": per-row partition count, "rows": [{"prefix": "JFK" | "", "segments":
    [{"status", "first", "last", "lo", "hi", "count"}]}], "ledger": [{"prefix", "first",
    "last", "status", "run_id", "at"}]}`: `lo`/`hi` index the row's axis (0-based); each
    segment also lists the ledger ranges that overlap it (`"runs": [{"run_id", "at",
    "status", "first", "last"}]`, the newest three), i.e. which run last wrote or failed it.

    Raises:
        ConfigError, PartitionError: no such asset, or it has no partitions.
    """
    now = now or datetime.now(UTC)
    report = partitions_report(settings, asset, now)
    definition = load_project(settings).graph.assets[report["key"]].partitions
    assert definition is not None
    rows: dict[str, list[dict[str, Any]]] = {"|".join(p): [] for p in definition.prefixes()}
    for status in STATUSES:
        for first, last in report["partitions"].get(status) or []:
            prefix, lo = definition.split_key(first)
            _prefix, hi = definition.split_key(last)
            rows.setdefault("|".join(prefix), []).append(
                {
                    "status": status,
                    "first": first,
                    "last": last,
                    "lo": lo,
                    "hi": hi,
                    "count": hi - lo + 1,
                }
            )
    from sqlorch.state import ledger as ledgers

    store = open_store(settings, readonly=True)
    try:
        segs = ledgers.segments(store, report["key"], definition)
    finally:
        store.close()
    ledger = [
        {
            "prefix": "|".join(g.prefix),
            "first": definition.key(g.prefix, g.lo),
            "last": definition.key(g.prefix, g.hi),
            "status": str(g.status),
            "run_id": g.run_id,
            "at": g.at,
            "lo": g.lo,
            "hi": g.hi,
        }
        for g in segs
    ]
    _attach_runs(rows, ledger)
    return {
        **report,
        "axis": definition.count(now),
        "rows": [{"prefix": p, "segments": segs} for p, segs in rows.items()],
        "ledger": ledger,
    }


def _attach_runs(rows: dict[str, list[dict[str, Any]]], ledger: list[dict[str, Any]]) -> None:
    """Give each segment the ledger ranges (runs) that overlap it, newest first."""
    newest = sorted(ledger, key=lambda e: e["at"] or "", reverse=True)
    for prefix, segments in rows.items():
        for seg in segments:
            seg["runs"] = [
                {k: e[k] for k in ("run_id", "at", "status", "first", "last")}
                for e in newest
                if e["prefix"] == prefix and e["lo"] <= seg["hi"] and e["hi"] >= seg["lo"]
            ][:3]
