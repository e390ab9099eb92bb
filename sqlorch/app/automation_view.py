"""What the UI's automation page shows: the daemon's lease, the run queue, the tick history.

Read from the state store only (`sqlorch.state.automation`); the declarations themselves are
`sqlorch schedules|sensors|automation ls` (the automation room sits beside the web room).
"""

from __future__ import annotations

import time
from typing import Any

from sqlorch.settings import Settings
from sqlorch.state.automation import RequestRecord, TickRecord, open_automation

#: the lease the daemon (or a `sqlorch tick`) holds while it runs automation
LEASE = "automation"


def automation_page(
    settings: Settings, *, limit: int = 200, source: str | None = None, status: str | None = None
) -> dict[str, Any]:
    """Return the automation page's document: lease, pauses, queue and ticks (newest first).

    Args:
        settings: the resolved settings.
        limit: at most this many ticks and requests.
        source: only ticks whose source id starts with this (`schedule:`, `sensor:orders`).
        status: only ticks with this status (`requested`, `skipped`, `failed`).
    """
    if not settings.state_url and not settings.state_path.exists():
        return {"daemon": None, "paused": [], "requests": [], "ticks": []}
    store = open_automation(settings)
    try:
        lease = store.lease(LEASE)
        ticks = [
            t
            for t in store.ticks()
            if (source is None or t.source.startswith(source))
            and (status is None or t.status == status)
        ][:limit]
        return {
            "daemon": None
            if lease is None
            else {
                "holder": lease.holder,
                "pid": lease.pid,
                "host": lease.host,
                "since": lease.acquired_at,
                "heartbeat_age_s": round(time.time() - lease.heartbeat, 1),
            },
            "paused": sorted(store.paused()),
            "requests": [_request(r) for r in reversed(store.requests(limit=limit))],
            "ticks": [_tick(t) for t in ticks],
        }
    finally:
        store.close()


def _request(r: RequestRecord) -> dict[str, Any]:
    spec = r.spec
    keys = sorted(
        {*spec.get("select", ()), *spec.get("full", ())}
        | {k for b in spec.get("backfills", ()) for k in b.get("select", ())}
    )
    return {
        "request_id": r.request_id,
        "created_at": r.created_at,
        "status": str(r.status),
        "run_id": r.run_id,
        "assets": keys,
        "reasons": list(r.reasons),
        "attempt": r.attempt,
        "error": r.error,
    }


def _tick(t: TickRecord) -> dict[str, Any]:
    return {
        "at": t.at,
        "source": t.source,
        "kind": t.kind,
        "status": t.status,
        "assets": list(t.assets),
        "reasons": list(t.reasons),
        "run_key": t.run_key,
        "request_id": t.request_id,
        "error": t.error,
    }
