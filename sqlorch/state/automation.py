"""The automation tables of the state store: ticks, the run queue, run keys, cursors, the lease.

Exactly once: `commit_tick` writes an evaluation's tick records, its queued run request, the
run keys it used and the sources' new cursors in ONE transaction; a launched run claims its
request with a token (`claim`), so a request is run by one process only, whatever crashed.
The SQL is portable (TEXT/INTEGER/REAL): the store runs its queries on the connection of the
state store it wraps, SQLite's or PostgreSQL's (which translates `?` and `BEGIN IMMEDIATE`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlorch.errors import StateError
from sqlorch.settings import Settings
from sqlorch.state.sqlite import SqliteStateStore
from sqlorch.state.store import open_store


class RequestStatus(StrEnum):
    """Where a queued run request is."""

    QUEUED = "queued"
    LAUNCHING = "launching"  # a process was started for it and has not claimed it yet
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_open(self) -> bool:
        """True while the request is queued or running."""
        return self in (RequestStatus.QUEUED, RequestStatus.LAUNCHING, RequestStatus.RUNNING)


OPEN_STATUSES = (RequestStatus.QUEUED, RequestStatus.LAUNCHING, RequestStatus.RUNNING)


@dataclass(frozen=True, slots=True)
class TickRecord:
    """One decision of one automation source at one evaluation."""

    tick_id: str
    source: str
    kind: str
    at: str
    status: str
    assets: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    request_id: str | None = None
    run_key: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """A run automation asked for: what it builds (`spec`), why, and how far it got."""

    request_id: str
    created_at: str
    status: RequestStatus
    spec: Mapping[str, Any]
    reasons: tuple[str, ...] = ()
    token: str | None = None
    pid: int | None = None
    run_id: str | None = None
    launched_at: float | None = None
    finished_at: str | None = None
    attempt: int = 1
    error: str | None = None


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """Who holds the daemon lease of a state store."""

    holder: str
    host: str
    pid: int
    acquired_at: str
    heartbeat: float


_TICK_COLUMNS = "tick_id, source, kind, at, status, assets, reasons, request_id, run_key, error"
_REQUEST_COLUMNS = (
    "request_id, created_at, status, spec, reasons, token, pid, run_id, launched_at, "
    "finished_at, attempt, error"
)


class AutomationStore:
    """Read-write access to the automation tables of a state store (SQLite or PostgreSQL).

    It runs on the wrapped store's connection and lock (one connection per process).
    """

    def __init__(self, store: SqliteStateStore) -> None:
        if store._con is None:  # noqa: SLF001 - the same room: the store's own connection
            raise StateError(f"The state store {store.path} is open read-only.")
        self.store = store
        self.path: Path | str = getattr(store, "location", store.path)
        self._con: Any = store._con  # noqa: SLF001
        self._lock = store._lock  # noqa: SLF001

    def close(self) -> None:
        """Close the wrapped store."""
        self.store.close()

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        with self._lock:
            self._con.execute("BEGIN IMMEDIATE")
            try:
                yield self._con
                self._con.execute("COMMIT")
            except BaseException:
                self._con.execute("ROLLBACK")
                raise

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            rows: list[tuple[Any, ...]] = self._con.execute(sql, params).fetchall()
            return rows

    # the lease --------------------------------------------------------------------------------

    def acquire_lease(
        self, name: str, me: LeaseRecord, ttl: float, is_alive: Any
    ) -> LeaseRecord | None:
        """Take the lease `name` for `me`; return the holder instead when someone else has it.

        A lease whose heartbeat is older than `ttl` seconds, or whose process on this host
        is gone (`is_alive(pid)` False), is taken over.
        """
        with self._transaction() as con:
            row = con.execute(
                "SELECT holder, host, pid, acquired_at, heartbeat FROM automation_lease "
                "WHERE name = ?",
                (name,),
            ).fetchone()
            if row is not None:
                held = LeaseRecord(*row)
                expired = me.heartbeat - held.heartbeat > ttl
                dead = held.host == me.host and not is_alive(held.pid)
                if held.holder != me.holder and not expired and not dead:
                    return held
                con.execute("DELETE FROM automation_lease WHERE name = ?", (name,))
            con.execute(
                "INSERT INTO automation_lease (name, holder, host, pid, acquired_at, heartbeat) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (name, me.holder, me.host, me.pid, me.acquired_at, me.heartbeat),
            )
        return None

    def heartbeat(self, name: str, holder: str, now: float) -> bool:
        """Renew the lease; False when `holder` no longer holds it."""
        with self._transaction() as con:
            cur = con.execute(
                "UPDATE automation_lease SET heartbeat = ? WHERE name = ? AND holder = ?",
                (now, name, holder),
            )
            return bool(cur.rowcount == 1)

    def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up (only if `holder` has it)."""
        with self._transaction() as con:
            con.execute(
                "DELETE FROM automation_lease WHERE name = ? AND holder = ?", (name, holder)
            )

    def lease(self, name: str) -> LeaseRecord | None:
        """Return who holds the lease `name`, if anyone."""
        rows = self._rows(
            "SELECT holder, host, pid, acquired_at, heartbeat FROM automation_lease WHERE name = ?",
            (name,),
        )
        return LeaseRecord(*rows[0]) if rows else None

    # cursors, pauses, run keys -----------------------------------------------------------------

    def cursors(self) -> dict[str, str | None]:
        """Return every source's cursor."""
        return {s: c for s, c in self._rows("SELECT source, cursor FROM automation_cursors")}

    def paused(self) -> set[str]:
        """Return the paused sources."""
        return {r[0] for r in self._rows("SELECT source FROM automation_pauses")}

    def set_paused(self, source: str, paused: bool, now: str) -> None:
        """Pause or resume a source (resuming moves a schedule's cursor to now: no flood)."""
        with self._transaction() as con:
            con.execute("DELETE FROM automation_pauses WHERE source = ?", (source,))
            if paused:
                con.execute(
                    "INSERT INTO automation_pauses (source, paused_at) VALUES (?, ?)",
                    (source, now),
                )

    def used_run_keys(self, source: str, keys: Sequence[str]) -> set[str]:
        """Return which of `keys` the source has used before."""
        if not keys:
            return set()
        marks = ", ".join("?" for _ in keys)
        return {
            r[0]
            for r in self._rows(
                "SELECT run_key FROM automation_run_keys WHERE source = ? "
                f"AND run_key IN ({marks})",
                (source, *keys),
            )
        }

    def reset_run_key(self, source: str, run_key: str) -> bool:
        """Forget a used run key (the request may run again)."""
        with self._transaction() as con:
            cur = con.execute(
                "DELETE FROM automation_run_keys WHERE source = ? AND run_key = ?",
                (source, run_key),
            )
            return bool(cur.rowcount > 0)

    # one evaluation, committed at once -------------------------------------------------------

    def commit_tick(
        self,
        ticks: Sequence[TickRecord],
        request: RequestRecord | None,
        run_keys: Sequence[tuple[str, str]],
        cursors: Mapping[str, str | None],
        now: str,
        expected_cursors: Mapping[str, str | None] | None = None,
    ) -> None:
        """Record an evaluation: ticks, the queued request, run keys, cursors, one transaction.

        Raises:
            StateError: a cursor moved since the evaluation read it (another process
                evaluated at the same time): nothing is written.
        """
        with self._transaction() as con:
            if expected_cursors is not None:
                current = dict(con.execute("SELECT source, cursor FROM automation_cursors"))
                moved = [s for s, c in expected_cursors.items() if current.get(s) != c]
                if moved:
                    raise StateError(
                        f"Automation cursors of {', '.join(sorted(moved))} moved while this "
                        "evaluation ran (another tick or daemon): nothing recorded; run again."
                    )
            if request is not None:
                con.execute(
                    f"INSERT INTO automation_requests ({_REQUEST_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    _request_row(request),
                )
            con.executemany(
                f"INSERT INTO automation_ticks ({_TICK_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [_tick_row(t) for t in ticks],
            )
            assert request is not None or not run_keys, "run keys belong to a request"
            con.executemany(
                "INSERT INTO automation_run_keys (source, run_key, request_id, at) "
                "VALUES (?, ?, ?, ?)",
                [(s, k, request.request_id if request else "", now) for s, k in run_keys],
            )
            for source, cursor in cursors.items():
                con.execute("DELETE FROM automation_cursors WHERE source = ?", (source,))
                con.execute(
                    "INSERT INTO automation_cursors (source, cursor, updated_at) VALUES (?, ?, ?)",
                    (source, cursor, now),
                )

    # the queue --------------------------------------------------------------------------------

    def requests(
        self, statuses: Sequence[RequestStatus] | None = None, limit: int | None = None
    ) -> list[RequestRecord]:
        """Return run requests, oldest first (or the newest `limit`, still oldest first)."""
        sql = f"SELECT {_REQUEST_COLUMNS} FROM automation_requests"
        params: list[Any] = []
        if statuses is not None:
            sql += f" WHERE status IN ({', '.join('?' for _ in statuses)})"
            params.extend(str(s) for s in statuses)
        sql += " ORDER BY created_at DESC, request_id DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [_request(r) for r in reversed(self._rows(sql, params))]

    def request(self, request_id: str) -> RequestRecord | None:
        """Return one run request."""
        rows = self._rows(
            f"SELECT {_REQUEST_COLUMNS} FROM automation_requests WHERE request_id = ?",
            (request_id,),
        )
        return _request(rows[0]) if rows else None

    def mark_launching(self, request_id: str, token: str, now: float) -> bool:
        """Hand a queued request to a process about to start (it claims it with `token`)."""
        with self._transaction() as con:
            cur = con.execute(
                "UPDATE automation_requests SET status = ?, token = ?, launched_at = ? "
                "WHERE request_id = ? AND status = ?",
                (RequestStatus.LAUNCHING, token, now, request_id, RequestStatus.QUEUED),
            )
            return bool(cur.rowcount == 1)

    def claim(self, request_id: str, token: str, pid: int) -> bool:
        """Claim a launching request for process `pid`; False when another process has it."""
        with self._transaction() as con:
            cur = con.execute(
                "UPDATE automation_requests SET status = ?, pid = ? "
                "WHERE request_id = ? AND token = ? AND status = ?",
                (RequestStatus.RUNNING, pid, request_id, token, RequestStatus.LAUNCHING),
            )
            return bool(cur.rowcount == 1)

    def set_run_id(self, request_id: str, run_id: str) -> None:
        """Remember the run a request started."""
        with self._transaction() as con:
            con.execute(
                "UPDATE automation_requests SET run_id = ? WHERE request_id = ?",
                (run_id, request_id),
            )

    def finish_request(
        self, request_id: str, status: RequestStatus, now: str, error: str | None = None
    ) -> None:
        """Record how a request ended."""
        with self._transaction() as con:
            con.execute(
                "UPDATE automation_requests SET status = ?, finished_at = ?, error = ? "
                "WHERE request_id = ?",
                (status, now, error, request_id),
            )

    def requeue(self, request_id: str) -> None:
        """Put a request whose process never claimed it back in the queue (new token later)."""
        with self._transaction() as con:
            con.execute(
                "UPDATE automation_requests SET status = ?, token = NULL, launched_at = NULL "
                "WHERE request_id = ? AND status = ?",
                (RequestStatus.QUEUED, request_id, RequestStatus.LAUNCHING),
            )

    def add_request(self, request: RequestRecord) -> None:
        """Queue a request outside an evaluation (a retry of one whose process died)."""
        with self._transaction() as con:
            con.execute(
                f"INSERT INTO automation_requests ({_REQUEST_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                _request_row(request),
            )

    # tick history ------------------------------------------------------------------------------

    def ticks(self, source: str | None = None, limit: int | None = None) -> list[TickRecord]:
        """Return tick records, newest first (of one source, or of all)."""
        sql = f"SELECT {_TICK_COLUMNS} FROM automation_ticks"
        params: list[Any] = []
        if source is not None:
            sql += " WHERE source = ?"
            params.append(source)
        sql += " ORDER BY at DESC, tick_id DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [_tick(r) for r in self._rows(sql, params)]

    def last_ticks(self) -> dict[str, TickRecord]:
        """Return each source's newest tick record."""
        out: dict[str, TickRecord] = {}
        for tick in reversed(self.ticks()):
            out[tick.source] = tick
        return out

    def runs_signature(self) -> tuple[int, str]:
        """Return (number of runs, newest finish): changes whenever any run ends or starts."""
        row = self._rows("SELECT count(*), max(finished_at) FROM runs")[0]
        return int(row[0]), str(row[1] or "")


def _tick_row(t: TickRecord) -> tuple[Any, ...]:
    return (
        t.tick_id,
        t.source,
        t.kind,
        t.at,
        t.status,
        json.dumps(list(t.assets)),
        json.dumps(list(t.reasons)),
        t.request_id,
        t.run_key,
        t.error,
    )


def _tick(r: Sequence[Any]) -> TickRecord:
    return TickRecord(
        r[0],
        r[1],
        r[2],
        r[3],
        r[4],
        tuple(json.loads(r[5] or "[]")),
        tuple(json.loads(r[6] or "[]")),
        r[7],
        r[8],
        r[9],
    )


def _request_row(q: RequestRecord) -> tuple[Any, ...]:
    return (
        q.request_id,
        q.created_at,
        str(q.status),
        json.dumps(dict(q.spec), sort_keys=True),
        json.dumps(list(q.reasons)),
        q.token,
        q.pid,
        q.run_id,
        q.launched_at,
        q.finished_at,
        q.attempt,
        q.error,
    )


def _request(r: Sequence[Any]) -> RequestRecord:
    return RequestRecord(
        request_id=r[0],
        created_at=r[1],
        status=RequestStatus(r[2]),
        spec=json.loads(r[3]),
        reasons=tuple(json.loads(r[4] or "[]")),
        token=r[5],
        pid=r[6],
        run_id=r[7],
        launched_at=r[8],
        finished_at=r[9],
        attempt=int(r[10] or 1),
        error=r[11],
    )


def open_automation(settings: Settings) -> AutomationStore:
    """Open the automation tables of the state store `settings` name (migrated)."""
    return AutomationStore(open_store(settings))
