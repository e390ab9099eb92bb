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
from sqlorch.state.store import StateStore

STATUSES = ("done", "stale", "missing", "failed")


def partition_grid(settings: Settings, asset: str, now: datetime | None = None) -> dict[str, Any]:
    """Return `sqlorch partitions --json` plus its rows of segments and the ledger's ranges.

    `{..., "axis": per-row partition count, "rows": [{"prefix": "JFK" | "", "segments":
    [{"status", "first", "last", "lo", "hi", "count"}]}], "ledger": [{"prefix", "first",
    "last", "status", "run_id", "at"}]}`: `lo`/`hi` index the row's axis (0-based).

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
    store = StateStore(settings.state_path, readonly=True)
    try:
        ledger = [
            {
                "prefix": r.prefix,
                "first": r.lo,
                "last": r.hi,
                "status": r.status,
                "run_id": r.run_id,
                "at": r.at,
            }
            for r in store.ledger(report["key"])
        ]
    finally:
        store.close()
    return {
        **report,
        "axis": definition.count(now),
        "rows": [{"prefix": p, "segments": segs} for p, segs in rows.items()],
        "ledger": ledger,
    }
