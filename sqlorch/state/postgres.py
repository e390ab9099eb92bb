"""The PostgreSQL state store (psycopg 3): shared state for CI runners and teams.

It keeps the SQLite store's schema (the same numbered migrations, translated by
`sqlorch.state.migrations.statements`) in a PostgreSQL schema of its own (`sqlorch`, or the
URL's `?schema=`), and runs the SQLite store's queries through a connection that translates
their few SQLite-isms (`?` parameters, `INSERT OR IGNORE`, `BEGIN IMMEDIATE`): one set of
queries, two databases. Opening it checks, before writing anything, that the server is new
enough and that the schema is sqlorch's; every failure is a `StateError` (exit 2) whose
message shows the URL with its password masked.

`acquire_lease` takes a session-level advisory lock per asset a build writes, on a
connection of its own named after the run: a second build on one of those assets is refused
with the holder's name (a build that dies releases its locks with its connection).
"""

from __future__ import annotations

import functools
import os
import re
import socket
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlorch.core.placeholders import qmark_to_pyformat
from sqlorch.errors import StateError
from sqlorch.settings import mask_url
from sqlorch.state.leases import lease_held
from sqlorch.state.migrations import MIGRATIONS, statements
from sqlorch.state.sqlite import SqliteStateStore

#: the oldest server the store runs on (identity columns, `CREATE ... IF NOT EXISTS`)
MIN_SERVER_VERSION = 120000
DEFAULT_SCHEMA = "sqlorch"
#: first key of the store's advisory locks (the second: hashtext of the asset or a name)
LOCK_SPACE = 1414
_MIGRATION_LOCK = "sqlorch:migrate"


@functools.lru_cache(maxsize=512)
def translate(sql: str) -> str:
    """SQLite SQL of the store's queries -> PostgreSQL (`?` -> `%s`, `INSERT OR IGNORE`)."""
    text = qmark_to_pyformat(sql)
    if re.match(r"\s*BEGIN\s+IMMEDIATE\b", text, re.I):
        return "BEGIN"
    if re.match(r"\s*INSERT\s+OR\s+IGNORE\b", text, re.I):
        text = re.sub(r"INSERT\s+OR\s+IGNORE", "INSERT", text, count=1, flags=re.I)
        text += " ON CONFLICT DO NOTHING"
    return text


class _Translating:
    """A psycopg connection (autocommit) that takes the SQLite store's SQL."""

    def __init__(self, con: Any) -> None:
        self.con = con

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        # always with parameters (maybe none): psycopg then reads `%%` as `%`
        return self.con.execute(translate(sql), tuple(params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        if rows:
            with self.con.cursor() as cur:
                cur.executemany(translate(sql), rows)

    def close(self) -> None:
        self.con.close()


def split_url(url: str) -> tuple[str, str]:
    """Return (the URL libpq connects with, the schema): `?schema=` is sqlorch's, not libpq's.

    Raises:
        StateError: the schema name is not a plain identifier.
    """
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), DEFAULT_SCHEMA)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", schema):
        raise StateError(
            f"The state URL {mask_url(url)!r} names the schema {schema!r}: use letters, digits "
            "and underscores."
        )
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


def connect(url: str, application_name: str = "sqlorch") -> Any:
    """Open a psycopg connection (autocommit) to a state URL.

    Raises:
        StateError: the URL is malformed, or the server refuses or cannot be reached.
    """
    import psycopg

    libpq_url, _ = split_url(url)
    shown = mask_url(url)
    try:
        return psycopg.connect(
            libpq_url, autocommit=True, application_name=application_name, connect_timeout=10
        )
    except psycopg.ProgrammingError as exc:  # libpq could not parse the URL
        raise StateError(
            f"The state URL {shown!r} is malformed: {_clean(exc, url)}. Write it as "
            "postgresql://user:password@host:port/dbname (quote special characters with %XX)."
        ) from None
    except psycopg.OperationalError as exc:
        raise StateError(_connect_failure(shown, _clean(exc, url))) from None


def _clean(exc: BaseException, url: str) -> str:
    """An error's text on one line, without the URL's password."""
    text = " ".join(str(exc).split())
    password = urlsplit(url).password
    if password:
        text = text.replace(password, "****")
    return text


def _connect_failure(shown: str, why: str) -> str:
    lowered = why.lower()
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        hint = "the user or password is wrong: fix them in SQLORCH_STATE_URL / `state_url`"
    elif "does not exist" in lowered and "database" in lowered:
        hint = (
            "the database does not exist: create it (`createdb NAME`, or CREATE DATABASE) "
            "and run again"
        )
    elif "role" in lowered and "does not exist" in lowered:
        hint = "the user does not exist on that server"
    else:
        hint = "check that the server runs and that host and port are right"
    return (
        f"Could not open the PostgreSQL state store {shown}: {why}. Here, {hint}. Nothing "
        "was written."
    )


class PostgresStateStore(SqliteStateStore):
    """Read-write access to a PostgreSQL state store; the SQLite store's queries, translated.

    Implements `StateWriter` (and so `StateReader`). `readonly=True` creates nothing: a
    database without sqlorch's tables reads as empty.
    """

    def __init__(self, url: str, *, readonly: bool = False, path: Path | None = None) -> None:
        self.url = url
        self.location = mask_url(url)
        self.path = path or Path(".sqlorch/state.db")
        self._lock = threading.RLock()
        self._lease: Any = None
        _, self.schema = split_url(url)
        con = connect(url)
        self._con = _Translating(con)  # type: ignore[assignment]
        try:
            self._check_server(con)
            if self._up_to_date(con):
                return  # sqlorch's tables at this version: one round trip, nothing to check
            ours = self._check_schema(con)
            if readonly and not ours:
                con.close()
                self._con = None
                return
            if ours:
                con.execute(f'SET search_path TO "{self.schema}"')
            if readonly:
                self._check_version(con)
            elif not ours or self._version(con) != len(MIGRATIONS):
                # (an up-to-date store needs no lock and no CREATE privilege)
                self._migrate()
                con.execute(f'SET search_path TO "{self.schema}"')
        except BaseException:
            con.close()
            raise

    def _check_server(self, con: Any) -> None:
        version = int(con.info.server_version)
        if version < MIN_SERVER_VERSION:
            shown = f"{version // 10000}.{version % 10000}" if version >= 100000 else str(version)
            raise StateError(
                f"The PostgreSQL server of the state store {self.location} is version {shown}; "
                f"sqlorch needs {MIN_SERVER_VERSION // 10000} or newer. Use a newer server (or "
                "the SQLite store). Nothing was written."
            )

    def _up_to_date(self, con: Any) -> bool:
        """Whether the schema is a store at this sqlorch's version (then search_path is set).

        One query: the schema version, whether `runs` exists, and the search path. A schema
        without sqlorch's tables fails it (nothing changes); the caller then checks in full.
        """
        import psycopg

        schema = f'"{self.schema}"'
        try:
            row = con.execute(
                f"SELECT (SELECT max(version) FROM {schema}.schema_version), "
                "to_regclass(%s) IS NOT NULL, set_config('search_path', %s, false)",
                (f"{schema}.runs", schema),
            ).fetchone()
        except psycopg.Error:  # no such table or column: not (yet) a store, or not ours
            return False
        # (otherwise the full check decides; it sets the search path again where it needs it)
        return row is not None and bool(row[1]) and int(row[0] or 0) == len(MIGRATIONS)

    def _check_schema(self, con: Any) -> bool:
        """Whether the schema holds sqlorch's tables (False: empty or absent).

        Raises:
            StateError: the schema holds tables that are not sqlorch's.
        """
        tables = {
            r[0]
            for r in con.execute(
                # pg_class, not information_schema: tables this user may not read count too
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')",
                (self.schema,),
            ).fetchall()
        }
        if not tables:
            return False
        columns = {
            r[0]
            for r in con.execute(
                "SELECT a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s "
                "AND c.relname = 'schema_version' AND a.attnum > 0 AND NOT a.attisdropped",
                (self.schema,),
            ).fetchall()
        }
        if "version" not in columns or "runs" not in tables:
            raise StateError(
                f"The schema {self.schema!r} of {self.location} holds tables that are not a "
                f"sqlorch state store ({', '.join(sorted(tables)[:5])}...). Point the URL at "
                "another database, or add `?schema=NAME` to use another schema. Nothing was "
                "written."
            )
        return True

    @staticmethod
    def _version(con: Any) -> int:
        row = con.execute("SELECT max(version) FROM schema_version").fetchone()
        return int((row[0] if row else 0) or 0)

    def _check_version(self, con: Any) -> None:
        current = self._version(con)
        if current > len(MIGRATIONS):
            raise StateError(
                f"The state store {self.location} has schema version {current}, newer than "
                f"this sqlorch knows ({len(MIGRATIONS)}). Upgrade sqlorch."
            )
        if current < len(MIGRATIONS):
            raise StateError(
                f"The state store {self.location} has schema version {current}; this sqlorch "
                f"needs {len(MIGRATIONS)}. Run `sqlorch state migrate` (or any build)."
            )

    def _migrate(self) -> None:
        """Create the schema and apply the missing migrations, one transaction each."""
        assert self._con is not None
        con = self._con.con  # type: ignore[attr-defined]
        with self._lock:
            con.execute("BEGIN")
            try:
                # one migrator at a time, across every runner sharing the store
                con.execute(
                    "SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                    (LOCK_SPACE, _MIGRATION_LOCK),
                )
                con.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                con.execute(f'SET LOCAL search_path TO "{self.schema}"')
                con.execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT)")
                row = con.execute("SELECT max(version) FROM schema_version").fetchone()
                current = (row[0] if row else 0) or 0
                if current > len(MIGRATIONS):
                    raise StateError(
                        f"The state store {self.location} has schema version {current}, newer "
                        f"than this sqlorch knows ({len(MIGRATIONS)}). Upgrade sqlorch."
                    )
                for version in range(current + 1, len(MIGRATIONS) + 1):
                    for statement in statements(MIGRATIONS[version - 1], "postgres"):
                        con.execute(statement)
                    con.execute("INSERT INTO schema_version VALUES (%s)", (version,))
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def schema_version(self) -> int:
        """Return the store's schema version (0: no tables yet)."""
        if self._con is None:
            return 0
        rows = self._rows("SELECT max(version) FROM schema_version")
        return int(rows[0][0] or 0) if rows else 0

    # runs: liveness is "its lease connection is open", not a local process id --------------

    def start_run(self, run_id: str, command: str, selection: str, started_at: str) -> None:
        """Record a new run as running (no pid: runners on other machines share the store)."""
        self._write(
            "INSERT INTO runs (run_id, command, selection, started_at, status, pid) "
            "VALUES (?, ?, ?, ?, 'running', NULL)",
            (run_id, command, selection, started_at),
        )

    def mark_abandoned_runs(self, now: str) -> int:
        """Mark 'running' runs whose build holds no connection to the store as failed."""
        running = [r[0] for r in self._rows("SELECT run_id FROM runs WHERE status = 'running'")]
        if not running:
            return 0
        live = {
            str(r[0]).split()[1]
            for r in self._rows(
                "SELECT application_name FROM pg_stat_activity "
                "WHERE application_name LIKE 'sqlorch %'"
            )
            if len(str(r[0]).split()) > 1
        }
        dead = [run_id for run_id in running if run_id not in live]
        for run_id in dead:
            self._write(
                "UPDATE runs SET status = 'failed', finished_at = ? WHERE run_id = ? "
                "AND status = 'running'",
                (now, run_id),
            )
        return len(dead)

    # leases -------------------------------------------------------------------------------

    def acquire_lease(self, keys: Iterable[str], run_id: str) -> None:
        """Lock every asset in `keys` for run `run_id` until `release_lease` (or exit).

        Raises:
            StateError: another build holds one of them (named in the message); nothing of
                this run was written.
        """
        wanted = sorted(set(keys))
        holder = f"sqlorch {run_id} pid {os.getpid()}@{socket.gethostname()}"[:63]
        con = connect(self.url, application_name=holder)
        try:
            for key in wanted:
                got = con.execute(
                    "SELECT pg_try_advisory_lock(%s, hashtext(%s))", (LOCK_SPACE, key)
                ).fetchone()[0]
                if not got:
                    other = self._holder(con, key)
                    raise lease_held(key, other, self.location)
        except BaseException:
            con.close()  # releases what was taken
            raise
        self._lease = con

    @staticmethod
    def _holder(con: Any, key: str) -> str:
        row = con.execute(
            "SELECT a.application_name, a.client_addr, a.backend_start FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
            "AND l.granted AND l.classid = %s "
            "AND l.objid::bigint = (hashtext(%s)::bigint & 4294967295)",
            (LOCK_SPACE, key),
        ).fetchone()
        if row is None:
            return "a run that just ended"
        name, addr, since = row
        where = f" from {addr}" if addr else ""
        return f"{name}{where}, connected since {since:%Y-%m-%d %H:%M:%S %Z}".strip()

    def release_lease(self) -> None:
        """Release the run's lease (closing its connection releases every lock)."""
        if self._lease is not None:
            try:
                self._lease.close()
            finally:
                self._lease = None

    def close(self) -> None:
        """Close the connections (releasing any lease)."""
        self.release_lease()
        super().close()
