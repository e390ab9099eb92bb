"""The automation tables on the PostgreSQL state store: the same queries, the same guarantees."""

from __future__ import annotations

import os

import pytest

from sqlorch.errors import StateError
from sqlorch.state.automation import (
    AutomationStore,
    LeaseRecord,
    RequestRecord,
    RequestStatus,
    TickRecord,
)
from sqlorch.state.postgres import PostgresStateStore

pytestmark = pytest.mark.postgres


def test_ticks_run_keys_cursors_claims_and_the_lease_on_postgres(pg_url: str) -> None:
    store = AutomationStore(PostgresStateStore(pg_url))
    request = RequestRecord(
        "req-1", "2026-03-02T12:00:00Z", RequestStatus.QUEUED, {"select": ["a"]}
    )
    tick = TickRecord(
        "t-1",
        "sensor:s",
        "sensor",
        "2026-03-02T12:00:00Z",
        "requested",
        ("a",),
        ("new file x",),
        "req-1",
        "x@1:2",
    )
    store.commit_tick([tick], request, [("sensor:s", "x@1:2")], {"sensor:s": '{"x": "1:2"}'}, "n")
    assert store.used_run_keys("sensor:s", ["x@1:2", "y"]) == {"x@1:2"}
    assert store.ticks()[0].reasons == ("new file x",)
    # the same run key again: the whole commit rolls back
    with pytest.raises(Exception, match="(?i)duplicate|unique"):
        store.commit_tick(
            [TickRecord("t-2", "sensor:s", "sensor", "x", "requested")],
            RequestRecord("req-2", "x", RequestStatus.QUEUED, {}),
            [("sensor:s", "x@1:2")],
            {"sensor:s": "moved"},
            "n",
        )
    assert [r.request_id for r in store.requests()] == ["req-1"]
    assert store.cursors() == {"sensor:s": '{"x": "1:2"}'}
    with pytest.raises(StateError, match="moved while"):
        store.commit_tick([], None, [], {"sensor:s": "z"}, "n", {"sensor:s": "stale"})
    assert store.mark_launching("req-1", "tok", 1.0)
    assert not store.claim("req-1", "other", 1)
    assert store.claim("req-1", "tok", os.getpid())
    me = LeaseRecord("daemon:h:1", "h", os.getpid(), "t0", 100.0)
    assert store.acquire_lease("automation", me, 15, lambda pid: True) is None
    other = LeaseRecord("daemon:k:2", "k", 2, "t1", 101.0)
    held = store.acquire_lease("automation", other, 15, lambda pid: True)
    assert held is not None and held.holder == "daemon:h:1"
    assert store.heartbeat("automation", "daemon:h:1", 102.0)
    store.set_paused("sensor:s", True, "n")
    assert store.paused() == {"sensor:s"}
