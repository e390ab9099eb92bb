"""The SQLite state store (WAL: readable by other processes while a build writes)."""

from __future__ import annotations

import functools
import inspect
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlorch.errors import StateError
from sqlorch.events import AttemptOutcome
from sqlorch.state.migrations import MIGRATIONS, statements
from sqlorch.state.records import (
    AssetState,
    CheckResultRecord,
    EventRecord,
    LedgerRow,
    MaterializationRecord,
    RunRecord,
)
from sqlorch.state.rows import (
    CHECK_COLUMNS,
    EVENT_COLUMNS,
    LEDGER_COLUMNS,
    MAT_COLUMNS,
    RUN_COLUMNS,
    asset_state,
    check_record,
    event_record,
    is_alive,
    materialization_record,
    run_record,
)

if TYPE_CHECKING:
    from sqlorch.state.leases import FileLeases


def damaged(path: Path, exc: BaseException) -> StateError:
    """The one-paragraph error for a state store SQLite cannot read."""
    return StateError(
        f"The state store {path} is damaged ({exc}), so sqlorch cannot tell what was built. "
        f"Restore it from a backup if you have one (or try `sqlite3 {path} .recover | "
        f"sqlite3 {path}.recovered` and move the result in its place). Otherwise move it "
        f"away (`mv {path} {path}.damaged`) and run again: sqlorch starts a new store, "
        "without the run history, and the next build rebuilds everything."
    )


def _is_damage(exc: sqlite3.DatabaseError) -> bool:
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text or "corrupt" in text


def _guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn SQLite's "malformed" errors in a store method into the damaged-store paragraph."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen(self: SqliteStateStore, *args: Any, **kwargs: Any) -> Any:
            try:
                yield from fn(self, *args, **kwargs)
            except sqlite3.DatabaseError as exc:
                if _is_damage(exc):
                    raise damaged(self.path, exc) from exc
                raise

        return gen

    @functools.wraps(fn)
    def call(self: SqliteStateStore, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            if _is_damage(exc):
                raise damaged(self.path, exc) from exc
            raise

    return call


_T = TypeVar("_T")


def _guard_methods(cls: type[_T]) -> type[_T]:
    """Guard every public method of a store class against a damaged file (`_guarded`)."""
    for name, fn in list(vars(cls).items()):
        if callable(fn) and not name.startswith("_") and name != "close":
            setattr(cls, name, _guarded(fn))
    return cls


@_guard_methods
class SqliteStateStore:
    """Read-write access to `.sqlorch/state.db` (SQLite, WAL); thread-safe through one lock.

    Implements `StateWriter` (and so `StateReader`); `readonly=True` opens no file that
    does not exist and allows reads only.
    """

    #: the lock files of `acquire_lease` (opened on first use)
    _file_leases: FileLeases | None = None

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self._lock = threading.RLock()
        if readonly and not path.exists():
            self._con: sqlite3.Connection | None = None
            return
        if path.is_file() and path.stat().st_size == 0:
            # SQLite would take it as a new, empty store: the history would be silently lost
            raise StateError(
                f"The state store {path} is empty (0 bytes): its run history is gone (a full "
                "disk, a truncated copy?), so sqlorch cannot tell what was built. Restore it "
                f"from a backup if you have one. Otherwise delete it (`rm {path}`) and run "
                "again: sqlorch starts a new store and the next build rebuilds everything."
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = sqlite3.connect(
                str(path), check_same_thread=False, isolation_level=None, timeout=30
            )
            self._con.execute("PRAGMA journal_mode=WAL")
            self._con.execute("PRAGMA synchronous=NORMAL")
            self._con.execute("PRAGMA busy_timeout=30000")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            if _is_damage(exc):
                raise damaged(path, exc) from exc
            raise StateError(
                f"The state store {path} cannot be opened: {exc}. If it is damaged, move it "
                "away; sqlorch starts a new one (the run history is lost)."
            ) from exc

    def close(self) -> None:
        """Close the connection."""
        if self._con is not None:
            self._con.close()
            self._con = None

    def _migrate(self) -> None:
        assert self._con is not None
        with self._lock:
            self._con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER)")
            row = self._con.execute("SELECT max(version) FROM schema_version").fetchone()
            current = row[0] or 0
            if current > len(MIGRATIONS):
                raise StateError(
                    f"The state store {self.path} has schema version {current}, newer than this "
                    f"sqlorch knows ({len(MIGRATIONS)}). Upgrade sqlorch."
                )
            for version in range(current + 1, len(MIGRATIONS) + 1):
                self._con.execute("BEGIN IMMEDIATE")
                try:
                    # re-check under the write lock: another process may have migrated
                    row = self._con.execute("SELECT max(version) FROM schema_version").fetchone()
                    if (row[0] or 0) >= version:
                        self._con.execute("COMMIT")
                        continue
                    for statement in statements(MIGRATIONS[version - 1]):
                        self._con.execute(statement)
                    self._con.execute("INSERT INTO schema_version VALUES (?)", (version,))
                    self._con.execute("COMMIT")
                except BaseException:
                    self._con.execute("ROLLBACK")
                    raise

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if self._con is None:
            return []
        with self._lock:
            return self._con.execute(sql, params).fetchall()

    def _write(self, sql: str, params: Sequence[Any] = ()) -> None:
        assert self._con is not None, "state store opened read-only"
        with self._lock:
            self._con.execute(sql, params)

    # writes ---------------------------------------------------------------------------------

    def start_run(self, run_id: str, command: str, selection: str, started_at: str) -> None:
        """Record a new run as running."""
        self._write(
            "INSERT INTO runs (run_id, command, selection, started_at, status, pid) "
            "VALUES (?, ?, ?, ?, 'running', ?)",
            (run_id, command, selection, started_at, os.getpid()),
        )

    def finish_run(
        self, run_id: str, status: str, finished_at: str, succeeded: int, failed: int, skipped: int
    ) -> None:
        """Record a run's outcome."""
        self._write(
            "UPDATE runs SET status = ?, finished_at = ?, succeeded = ?, failed = ?, skipped = ? "
            "WHERE run_id = ?",
            (status, finished_at, succeeded, failed, skipped, run_id),
        )

    def write_batch(
        self,
        events: Sequence[tuple[Any, ...]],
        attempts: Sequence[tuple[Any, ...]],
        materializations: Sequence[tuple[Any, ...]],
        check_results: Sequence[tuple[Any, ...]] = (),
    ) -> None:
        """Append many rows in one transaction (rows from the `*_row` functions below)."""
        assert self._con is not None, "state store opened read-only"
        with self._lock:
            self._con.execute("BEGIN")
            try:
                self._con.executemany(
                    "INSERT INTO events (run_id, ts, kind, asset, partition, level, message, "
                    "data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    events,
                )
                self._con.executemany(
                    "INSERT INTO attempts (run_id, asset, partition, status, started_at, "
                    "finished_at, error) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    attempts,
                )
                self._con.executemany(
                    "INSERT INTO materializations (asset, partition, run_id, materialized_at, "
                    "rows, duration_s, code_version, metadata, columns) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    materializations,
                )
                if check_results:
                    self._con.executemany(
                        "INSERT INTO check_results (run_id, check_id, name, kind, asset, "
                        "partition, status, blocking, message, metadata, checked_at) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        check_results,
                    )
                self._con.execute("COMMIT")
            except BaseException:
                self._con.execute("ROLLBACK")
                raise

    def update_ledger(
        self, asset: str, change: Callable[[list[LedgerRow]], list[LedgerRow]]
    ) -> None:
        """Replace `asset`'s ledger rows with `change(rows)` in one write transaction."""
        assert self._con is not None, "state store opened read-only"
        with self._lock:
            self._con.execute("BEGIN IMMEDIATE")
            try:
                rows = self._ledger_rows(asset)
                new = change(rows)
                self._con.execute("DELETE FROM partition_ledger WHERE asset = ?", (asset,))
                self._con.executemany(
                    "INSERT INTO partition_ledger (asset, prefix, lo, hi, status, run_id, at, "
                    "code_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (asset, r.prefix, r.lo, r.hi, r.status, r.run_id, r.at, r.code_version)
                        for r in new
                    ],
                )
                self._con.execute("COMMIT")
            except BaseException:
                self._con.execute("ROLLBACK")
                raise

    def ledger(self, asset: str) -> list[LedgerRow]:
        """Return the ledger rows of one asset."""
        if self._con is None:
            return []
        with self._lock:
            return self._ledger_rows(asset)

    def ledgers(self) -> dict[str, list[LedgerRow]]:
        """Return the ledger rows of every asset that has any."""
        out: dict[str, list[LedgerRow]] = {}
        for r in self._rows(
            f"SELECT asset, {LEDGER_COLUMNS} FROM partition_ledger ORDER BY asset, rowid"
        ):
            out.setdefault(r[0], []).append(LedgerRow(*r[1:]))
        return out

    def _ledger_rows(self, asset: str) -> list[LedgerRow]:
        assert self._con is not None
        return [
            LedgerRow(*r)
            for r in self._con.execute(
                f"SELECT {LEDGER_COLUMNS} FROM partition_ledger WHERE asset = ? ORDER BY rowid",
                (asset,),
            ).fetchall()
        ]

    def acquire_lease(self, keys: Iterable[str], run_id: str) -> None:
        """Lock every asset in `keys` for run `run_id` until `release_lease` (or exit).

        Raises:
            LeaseHeldError: another build of this state folder holds one of them.
        """
        from sqlorch.state.leases import FileLeases

        if self._file_leases is None:
            self._file_leases = FileLeases(self.path.parent / "leases", str(self.path))
        self._file_leases.acquire(keys, run_id)

    def release_lease(self) -> None:
        """Release what `acquire_lease` took."""
        if self._file_leases is not None:
            self._file_leases.release()

    def mark_abandoned_runs(self, now: str) -> int:
        """Mark runs left 'running' by a process that no longer exists as failed."""
        rows = self._rows("SELECT run_id, pid FROM runs WHERE status = 'running'")
        n = 0
        for run_id, pid in rows:
            if pid and is_alive(int(pid)):
                continue
            self._write(
                "UPDATE runs SET status = 'failed', finished_at = ? WHERE run_id = ?",
                (now, run_id),
            )
            n += 1
        return n

    # reads ----------------------------------------------------------------------------------

    def runs(self, limit: int | None = None) -> list[RunRecord]:
        """Return runs, newest first."""
        sql = f"SELECT {RUN_COLUMNS} FROM runs ORDER BY started_at DESC, rowid DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [run_record(r) for r in self._rows(sql)]

    def run(self, run_id: str) -> RunRecord | None:
        """Return one run by id, or by a unique prefix of its id."""
        rows = self._rows(
            f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id LIKE ? ORDER BY started_at DESC",
            (run_id.replace("%", "") + "%",),
        )
        exact = [r for r in rows if r[0] == run_id]
        if exact:
            return run_record(exact[0])
        return run_record(rows[0]) if len(rows) == 1 else None

    def events(self, run_id: str) -> Iterator[EventRecord]:
        """Yield a run's events in order."""
        for r in self._rows(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE run_id = ? ORDER BY id", (run_id,)
        ):
            yield event_record(r)

    def events_page(
        self,
        run_id: str,
        *,
        after: int = 0,
        limit: int = 500,
        kinds: Sequence[str] = (),
        levels: Sequence[str] = (),
        asset: str | None = None,
    ) -> list[EventRecord]:
        """Return up to `limit` of a run's events with id > `after`, in order, filtered.

        `kinds`, `levels`: only these (none: all); `asset`: only this asset's events.
        """
        sql = f"SELECT {EVENT_COLUMNS} FROM events WHERE run_id = ? AND id > ?"
        params: list[Any] = [run_id, after]
        for column, values in (("kind", kinds), ("level", levels)):
            if values:
                sql += f" AND {column} IN ({', '.join('?' * len(values))})"
                params.extend(values)
        if asset is not None:
            sql += " AND asset = ?"
            params.append(asset)
        sql += " ORDER BY id LIMIT ?"
        params.append(int(limit))
        return [event_record(r) for r in self._rows(sql, params)]

    def event_count(self, run_id: str) -> int:
        """Return how many events a run has."""
        rows = self._rows("SELECT count(*) FROM events WHERE run_id = ?", (run_id,))
        return int(rows[0][0]) if rows else 0

    def asset_states(self) -> dict[str, AssetState]:
        """Return the last materialization and last attempt of every asset with history."""
        mats = {
            r[0]: r
            for r in self._rows(
                "SELECT m.asset, m.materialized_at, m.rows, m.duration_s, m.code_version, "
                "m.run_id, c.parts FROM (SELECT max(id) AS id FROM materializations "
                "GROUP BY asset) newest JOIN materializations m ON m.id = newest.id "
                "LEFT JOIN code_versions c "
                "ON c.asset = m.asset AND c.code_version = m.code_version"
            )
        }
        attempts = {
            r[0]: r
            for r in self._rows(
                # the newest attempt per asset, found through the index (a correlated
                # subquery per row took seconds over 1,000 runs: benchmarks/run_ui.py)
                "SELECT a.asset, a.run_id, a.status, a.error FROM (SELECT max(rowid) AS id "
                "FROM attempts GROUP BY asset) newest JOIN attempts a ON a.rowid = newest.id"
            )
        }
        return {
            key: asset_state(key, mats.get(key), attempts.get(key))
            for key in set(mats) | set(attempts)
        }

    def save_code_parts(self, items: Iterable[tuple[str, str | None, Mapping[str, str]]]) -> None:
        """Remember the named parts of (asset, code version) pairs, for "what changed"."""
        rows = [(a, v, json.dumps(dict(p), sort_keys=True)) for a, v, p in items if v and p]
        if not rows:
            return
        assert self._con is not None, "state store opened read-only"
        with self._lock:
            self._con.execute("BEGIN")
            try:
                self._con.executemany(
                    "INSERT OR IGNORE INTO code_versions (asset, code_version, parts) "
                    "VALUES (?, ?, ?)",
                    rows,
                )
                self._con.execute("COMMIT")
            except BaseException:
                self._con.execute("ROLLBACK")
                raise

    def run_attempts(self, run_id: str) -> dict[str, AttemptOutcome]:
        """Return asset -> outcome (success, failed, skipped) of every attempt in `run_id`."""
        return {
            a: AttemptOutcome(st)
            for a, st in self._rows(
                "SELECT asset, status FROM attempts WHERE run_id = ? ORDER BY rowid", (run_id,)
            )
        }

    def latest_columns(self) -> dict[str, list[tuple[str, str]]]:
        """Return, per asset, the `(name, type)` columns of its latest materialization.

        Only materializations that recorded columns count (older state stores have none).
        """
        out: dict[str, list[tuple[str, str]]] = {}
        for asset, cols in self._rows(
            "SELECT asset, columns FROM (SELECT asset, columns, row_number() OVER (PARTITION BY "
            "asset ORDER BY id DESC) AS rn FROM materializations WHERE columns IS NOT NULL) "
            "AS latest WHERE rn = 1"
        ):
            out[asset] = [(str(n), str(t)) for n, t in json.loads(cols)]
        return out

    def last_materializations(
        self, before_run: str | None = None
    ) -> dict[tuple[str, str | None], MaterializationRecord]:
        """Return the latest materialization of each (asset, partition).

        Args:
            before_run: ignore materializations of this run (the previous one is wanted).
        """
        rows = self._rows(
            f"SELECT {MAT_COLUMNS} FROM (SELECT *, row_number() OVER (PARTITION BY asset, "
            "partition ORDER BY id DESC) AS rn FROM materializations WHERE run_id != ?) "
            "AS latest WHERE rn = 1",
            (before_run or "",),
        )
        return {(r[1], r[2]): materialization_record(r) for r in rows}

    def materializations(self, asset: str, limit: int | None = None) -> list[MaterializationRecord]:
        """Return an asset's materializations, newest first."""
        sql = f"SELECT {MAT_COLUMNS} FROM materializations WHERE asset = ? ORDER BY id DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [materialization_record(r) for r in self._rows(sql, (asset,))]

    def known_assets(self) -> set[str]:
        """Return every asset key with a materialization, attempt or check result."""
        return {
            r[0]
            for r in self._rows(
                "SELECT DISTINCT asset FROM materializations UNION SELECT DISTINCT asset FROM "
                "attempts UNION SELECT DISTINCT asset FROM check_results"
            )
        }

    def failed_attempts(self, asset: str, limit: int | None = None) -> list[tuple[Any, ...]]:
        """Return an asset's failed and skipped attempts, newest first.

        Returns:
            `(run_id, finished_at, status, error)` tuples.
        """
        sql = (
            "SELECT run_id, finished_at, status, error FROM attempts WHERE asset = ? "
            "AND status != 'success' ORDER BY rowid DESC"
        )
        if limit:
            sql += f" LIMIT {int(limit)}"
        return self._rows(sql, (asset,))

    def check_results(
        self, *, asset: str | None = None, run_id: str | None = None, limit: int | None = None
    ) -> list[CheckResultRecord]:
        """Return recorded check results, newest first, filtered by asset and/or run."""
        where, params = [], []
        if asset is not None:
            where.append("asset = ?")
            params.append(asset)
        if run_id is not None:
            where.append("run_id = ?")
            params.append(run_id)
        sql = f"SELECT {CHECK_COLUMNS} FROM check_results"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [check_record(r) for r in self._rows(sql, params)]

    def failing_blocking_checks(self) -> dict[str, list[CheckResultRecord]]:
        """Return, per asset, its blocking checks whose latest result did not pass.

        One result per (asset, partition, check): the newest. An asset (or partition) with a
        blocking check that failed or errored stays stale until a later run passes it. A
        check the project no longer has still appears here: callers filter by the checks
        of the current graph (`CheckResultRecord.check_id`).
        """
        # the failed results that are their check's newest (not every result numbered:
        # that took half a second over 1,000 runs, benchmarks/run_ui.py)
        columns = ", ".join(f"c.{c.strip()}" for c in CHECK_COLUMNS.split(","))
        rows = self._rows(
            f"SELECT {columns} FROM check_results c WHERE c.blocking = 1 "
            "AND c.status IN ('fail', 'error') AND c.id = (SELECT max(x.id) FROM check_results x "
            "WHERE x.asset = c.asset AND x.check_id = c.check_id "
            "AND (x.partition = c.partition OR (x.partition IS NULL AND c.partition IS NULL)) "
            "AND x.status != 'skipped') ORDER BY c.id"
        )
        out: dict[str, list[CheckResultRecord]] = {}
        for r in rows:
            rec = check_record(r)
            out.setdefault(rec.asset, []).append(rec)
        return out
