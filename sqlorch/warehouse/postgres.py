"""The PostgreSQL warehouse: Python assets written through ADBC bulk ingest, in one transaction.

Queries and catalog questions go through psycopg 3 (autocommit); writes go through an ADBC
connection (adbc-driver-postgresql: COPY in binary form, several times faster than psycopg's
COPY of the same Arrow data), opened on first write. A whole-table write empties and refills
the table in one transaction (views dbt built on it stay valid); when the columns changed, the
table is dropped with what depends on it and created anew, in that same transaction. A
partition write loads the rows into a temporary table, refuses rows outside the partition,
then deletes exactly the partition and inserts, in one transaction.

The connection settings are the dbt target's (`host`, `port`, `user`, `password`/`pass`,
`dbname`/`database`, `sslmode`, `connect_timeout`); the password is never part of a message.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any

from sqlorch.core.graph import Column
from sqlorch.core.placeholders import fill_placeholders, qmark_to_pyformat
from sqlorch.errors import AssetError, WarehouseError
from sqlorch.warehouse.base import Audit, SchemaDrift, WriteMode
from sqlorch.warehouse.sql import drift, query_body, quote_ident, quote_key

log = logging.getLogger(__name__)

# (database, schema, table), as dbt names a relation
Relation = tuple[str | None, str, str]

_SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")
#: libpq keywords read from a dbt postgres target (dbt's name -> libpq's)
_KEYWORDS = {
    "host": "host",
    "port": "port",
    "user": "user",
    "password": "password",
    "pass": "password",
    "dbname": "dbname",
    "database": "dbname",
    "sslmode": "sslmode",
    "connect_timeout": "connect_timeout",
    "sslrootcert": "sslrootcert",
    "application_name": "application_name",
}


def conninfo_of(options: Mapping[str, Any]) -> dict[str, str]:
    """The libpq connection keywords of a dbt postgres target's settings."""
    out: dict[str, str] = {}
    for name, keyword in _KEYWORDS.items():
        value = options.get(name)
        if value is not None and value != "" and keyword not in out:
            out[keyword] = str(value)
    out.setdefault("connect_timeout", "10")
    return out


def conninfo_text(keywords: Mapping[str, str]) -> str:
    """A libpq `key=value` string (values quoted as libpq reads them)."""

    def quote(value: str) -> str:
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

    return " ".join(f"{k}={quote(v)}" for k, v in keywords.items())


def describe(keywords: Mapping[str, str]) -> str:
    """Where a connection goes, for messages: user@host:port/dbname (never the password)."""
    return (
        f"{keywords.get('user', '?')}@{keywords.get('host', 'localhost')}:"
        f"{keywords.get('port', '5432')}/{keywords.get('dbname', '?')}"
    )


def inline_params(sql: str, params: list[Any] | None) -> str:
    """Replace `?` placeholders with SQL literals (for ADBC statements without binding).

    Only the values sqlorch's own filters hold are accepted: None, bool, int, float, str,
    date and datetime.
    """
    values = iter(params or ())
    return fill_placeholders(sql, lambda: _literal(next(values)))


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime):
        return "'" + value.isoformat(sep=" ") + "'"
    if isinstance(value, date):
        return "'" + value.isoformat() + "'"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"cannot inline a {type(value).__name__} as a SQL literal")


def open_target(target: Any) -> PostgresWarehouse:
    """Connect to the PostgreSQL database of a dbt target of type postgres.

    Raises:
        WarehouseError: it cannot connect (the message names user@host:port/dbname, not the
            password).
    """
    return PostgresWarehouse(conninfo_of(target.options))


class PostgresWarehouse:
    """A PostgreSQL database as a `Warehouse` (psycopg for queries, ADBC for writes)."""

    dialect = "postgres"

    def __init__(self, keywords: Mapping[str, str]) -> None:
        import psycopg

        self._keywords = dict(keywords)
        self._lock = threading.Lock()
        self._adbc: Any = None
        try:
            self._con = psycopg.connect(conninfo_text(self._keywords), autocommit=True)
        except psycopg.Error as exc:
            raise WarehouseError(
                f"Could not connect to PostgreSQL {describe(self._keywords)}: "
                f"{str(exc).strip()}. Check host, port, user, password and dbname of the "
                "target (and that the server runs)."
            ) from None

    @property
    def connection(self) -> Any:
        """The psycopg connection of this session (autocommit)."""
        return self._con

    @property
    def keywords(self) -> dict[str, str]:
        """The libpq connection keywords (password included: never print them)."""
        return dict(self._keywords)

    def session(self) -> PostgresWarehouse:
        """Return a handle with connections of its own."""
        return PostgresWarehouse(self._keywords)

    def execute(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Run `sql` (`?` placeholders) and return all rows (none for a statement)."""
        with self._lock:
            cur = self._con.execute(qmark_to_pyformat(sql) if params else sql, params or None)
            return list(cur.fetchall()) if cur.description else []

    def arrow(self, sql: str, params: Any = None) -> Any:
        """Run a query and return its rows as a pyarrow Table (through ADBC)."""
        with self._lock:
            con = self._adbc_connection()
            cur = con.cursor()
            try:
                cur.execute(inline_params(sql, list(params or ())))
                table = cur.fetch_arrow_table()
            finally:
                cur.close()
            con.rollback()
            return table

    def ensure_schema(self, schema: str) -> None:
        """Create `schema` if it does not exist (a concurrent creator is not an error)."""
        import psycopg

        try:
            self.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
        except psycopg.errors.UniqueViolation:
            pass

    def write(self, key: str, data: Any, mode: WriteMode = WriteMode.REPLACE) -> int:
        """Write `data` to `key` in one transaction and return the table's row count.

        A replaced table keeps its identity (emptied and refilled: views on it stay valid)
        unless its columns changed; then it is dropped (with the views on it, which dbt
        rebuilds) and created from the data.
        """
        import pyarrow as pa

        from sqlorch.warehouse.duckdb import to_arrow_stream

        stream = to_arrow_stream(data, key)
        if isinstance(stream, pa.RecordBatchReader):
            stream = stream.read_all()  # a retry (the types changed) reads it again
        existing = self.columns(key)
        keep = bool(existing) and _same_columns(existing, stream.schema)
        if keep or mode is WriteMode.APPEND:
            try:
                return self._transaction(
                    key, lambda cur: self._ingest(cur, key, stream, mode, keep)
                )
            except WarehouseError:
                if mode is WriteMode.APPEND or not keep:
                    raise
                log.info("%s: the column types changed; the table is created anew", key)
        return self._transaction(key, lambda cur: self._ingest(cur, key, stream, mode, False))

    def _ingest(self, cur: Any, key: str, stream: Any, mode: WriteMode, keep: bool) -> int:
        schema, name = key.split(".", 1)
        target = quote_key(key)
        cur.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
        exists = cur_exists(cur, key)
        if exists and mode is WriteMode.REPLACE:
            cur.execute(f"TRUNCATE {target}" if keep else f"DROP TABLE {target} CASCADE")
            exists = keep
        written = cur.adbc_ingest(
            name, stream, mode="append" if exists else "create", db_schema_name=schema
        )
        if mode is WriteMode.REPLACE:
            return int(written) if written is not None and written >= 0 else int(stream.num_rows)
        cur.execute(f"SELECT count(*) FROM {target}")
        return int(cur.fetchone()[0])

    def write_partition(
        self, key: str, data: Any, where: str, params: list[Any], columns: tuple[str, ...]
    ) -> int:
        """Replace the rows of `key` matching `where` with `data`, in one transaction.

        Raises:
            AssetError: the data lacks a partition column or holds rows outside the partition.
        """
        from sqlorch.warehouse.duckdb import to_arrow_stream

        stream = to_arrow_stream(data, key)
        names = list(stream.schema.names)
        missing = [c for c in columns if c not in names]
        if missing:
            raise AssetError(
                f"Asset {key!r} is partitioned on {', '.join(columns)} but its output has no "
                f"column {', '.join(missing)} (it has: {', '.join(names)}). "
                "Return that column, or fix `column=` in the partition definition.",
                asset=key,
            )
        schema, name = key.split(".", 1)
        target = quote_key(key)
        predicate = inline_params(where, params)
        cols = ", ".join(quote_ident(c) for c in names)

        def work(cur: Any) -> int:
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
            cur.execute("DROP TABLE IF EXISTS __sqlorch_input")
            rows = cur.adbc_ingest("__sqlorch_input", stream, mode="create", temporary=True)
            cur.execute(
                f"SELECT count(*) FROM __sqlorch_input WHERE NOT coalesce(({predicate}), false)"
            )
            outside = int(cur.fetchone()[0])
            if outside:
                raise AssetError(
                    f"Asset {key!r} returned {outside:,} row(s) outside the partition it "
                    f"was asked for (filter: {where} with {params}); nothing was written. "
                    "Return only the rows of `context.partition`.",
                    asset=key,
                )
            if not cur_exists(cur, key):
                cur.execute(f"CREATE TABLE {target} AS SELECT * FROM __sqlorch_input LIMIT 0")
            cur.execute(f"DELETE FROM {target} WHERE {predicate}")
            cur.execute(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM __sqlorch_input")
            cur.execute("DROP TABLE __sqlorch_input")
            if rows is not None and rows >= 0:
                return int(rows)
            return int(stream.num_rows)

        return self._transaction(key, work)

    def delete_where(self, key: str, where: str, params: list[Any]) -> int:
        """Delete the rows of `key` matching `where` (a wipe); return how many."""
        if not self.table_exists(key):
            return 0
        with self._lock:
            cur = self._con.execute(
                f"DELETE FROM {quote_key(key)} WHERE {qmark_to_pyformat(where)}", params or None
            )
            return int(cur.rowcount)

    def table_exists(self, key: str) -> bool:
        """Return True when a table or view `key` exists."""
        return key.lower() in self.relations()

    def relations(self) -> frozenset[str]:
        """Return every table and view of the database as lower-case `schema.name`."""
        rows = self.execute(
            "SELECT lower(table_schema || '.' || table_name) FROM information_schema.tables "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
        )
        return frozenset(str(r[0]) for r in rows)

    def row_counts(self, keys: list[str]) -> dict[str, int]:
        """Return exact row counts of the existing tables and views among `keys`."""
        present = self.relations()
        keys = [k for k in keys if k.lower() in present]
        counts: dict[str, int] = {}
        for start in range(0, len(keys), 200):
            chunk = keys[start : start + 200]
            sql = " UNION ALL ".join(
                f"SELECT {i}, count(*) FROM {quote_key(k)}" for i, k in enumerate(chunk)
            )
            for i, n in self.execute(sql):
                counts[chunk[int(i)]] = int(n)
        return counts

    def columns(self, key: str) -> list[Column]:
        """Return the columns of `key` in order (empty when it does not exist)."""
        return self.table_columns([key]).get(key, [])

    def table_columns(self, keys: list[str]) -> dict[str, list[Column]]:
        """Return the columns (in order) of each existing table or view among `keys`."""
        if not keys:
            return {}
        wanted = {k.lower(): k for k in keys}
        rows = self.execute(
            "SELECT lower(table_schema || '.' || table_name), column_name, data_type "
            "FROM information_schema.columns WHERE lower(table_schema || '.' || table_name) "
            "= ANY(?) ORDER BY table_schema, table_name, ordinal_position",
            [list(wanted)],
        )
        out: dict[str, list[Column]] = {}
        for low, name, dtype in rows:
            out.setdefault(wanted[low], []).append(Column(str(name), str(dtype)))
        return out

    # direct window writes of dbt models (sqlorch.dbt.windows.WindowStore) -----------------

    def relation_exists(self, relation: Relation) -> bool:
        """Whether `relation` (database, schema, table) exists as a table (not a view)."""
        rows = self.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p') AND n.nspname = ? AND c.relname = ?",
            [relation[1], relation[2]],
        )
        return bool(rows and rows[0][0])

    def schema_drift(self, relation: Relation, query: str) -> str | None:
        """How `query`'s columns differ from `relation`'s (None when they match)."""
        with self._lock, self._con.cursor() as cur:
            return _window_drift(cur, relation, query_body(query))

    def replace_window_sql(
        self,
        relation: Relation,
        queries: list[str],
        where: str,
        params: list[Any],
        audit: Audit | None = None,
    ) -> int:
        """Replace the rows of `relation` matching `where` with `queries`' rows, in one transaction.

        Each query's rows outside `where` are filtered out, so a window never writes another
        window's rows. `audit` runs inside the transaction on a handle that sees the new rows
        (write-audit-publish: it raises to roll back). Returns the rows written.

        Raises:
            SchemaDrift: a query's columns (names or types) differ from the table's: the
                model's `on_schema_change` must decide, so dbt has to write this window.
            WarehouseError: PostgreSQL failed; nothing was written.
        """
        import psycopg

        target = ".".join(quote_ident(p) for p in relation if p is not None)
        key = f"{relation[1]}.{relation[2]}"
        # the predicate's values inlined: the compiled SQL goes to the server untouched
        predicate = inline_params(where, params)
        bodies = [query_body(q) for q in queries]
        try:
            with self._lock, self._con.transaction(), self._con.cursor() as cur:
                drift = _window_drift(cur, relation, bodies[0])
                if drift:
                    raise SchemaDrift(drift)
                names = [c.name for c in cur.description or ()]
                cols = ", ".join(quote_ident(n) for n in names)
                cur.execute(f"DELETE FROM {target} WHERE {predicate}")
                rows = 0
                for body in bodies:
                    cur.execute(
                        f"INSERT INTO {target} ({cols}) SELECT {cols} FROM ({body}\n) "
                        f"AS __sqlorch_window WHERE {predicate}"
                    )
                    rows += max(int(cur.rowcount), 0)
                if audit is not None:
                    audit(_InTransaction(cur))  # type: ignore[arg-type]
                return rows
        except psycopg.Error as exc:
            raise WarehouseError(
                f"Writing a partition window of {key!r} to PostgreSQL failed (nothing was "
                f"written): {_mask(str(exc).strip(), self._keywords)}",
                asset=key,
            ) from None

    def interrupt(self) -> None:
        """Cancel this session's running query (from another thread); never raises."""
        try:
            self._con.cancel_safe()
        except Exception:  # noqa: BLE001 - a closed session has nothing to cancel
            log.debug("could not cancel a PostgreSQL query", exc_info=True)
        if self._adbc is not None:
            try:
                self._adbc.adbc_cancel()
            except Exception:  # noqa: BLE001 - nothing running on it
                log.debug("could not cancel an ADBC statement", exc_info=True)

    def close(self) -> None:
        """Close this session's connections."""
        for con in (self._adbc, self._con):
            if con is None:
                continue
            try:
                con.close()
            except Exception:  # noqa: BLE001 - closing twice is harmless
                log.debug("closing a PostgreSQL connection failed", exc_info=True)
        self._adbc = None

    def _adbc_connection(self) -> Any:
        if self._adbc is None:
            import adbc_driver_postgresql.dbapi as adbc

            try:
                self._adbc = adbc.connect(conninfo_text(self._keywords))
            except adbc.Error as exc:
                raise WarehouseError(
                    f"Could not open a bulk-load connection to PostgreSQL "
                    f"{describe(self._keywords)}: {_mask(str(exc), self._keywords)}"
                ) from None
        return self._adbc

    def _transaction(self, key: str, work: Callable[[Any], int]) -> int:
        """Run `work(cursor)` on the ADBC connection in one transaction; errors roll back."""
        import adbc_driver_postgresql.dbapi as adbc

        with self._lock:
            con = self._adbc_connection()
            cur = con.cursor()
            try:
                out = work(cur)
                con.commit()
                return out
            except adbc.Error as exc:
                con.rollback()
                raise WarehouseError(
                    f"Writing asset {key!r} to PostgreSQL failed (nothing was written): "
                    f"{_mask(str(exc), self._keywords)}",
                    asset=key,
                ) from None
            except BaseException:
                con.rollback()
                raise
            finally:
                cur.close()


def cur_exists(cur: Any, key: str) -> bool:
    """Whether table `key` exists, seen from an ADBC cursor's transaction."""
    schema, name = key.split(".", 1)
    cur.execute(
        "SELECT count(*) FROM information_schema.tables WHERE lower(table_schema) = "
        f"lower({_literal(schema)}) AND lower(table_name) = lower({_literal(name)})"
    )
    return bool(cur.fetchone()[0])


def _same_columns(existing: list[Column], schema: Any) -> bool:
    """Whether an Arrow schema has the table's column names, in order (types are cast)."""
    return [c.name.lower() for c in existing] == [n.lower() for n in schema.names]


def _mask(text: str, keywords: Mapping[str, str]) -> str:
    password = keywords.get("password")
    return text.replace(password, "****") if password else text


class _InTransaction:
    """A window write's cursor as the audit sees it: `execute` inside the transaction."""

    def __init__(self, cur: Any) -> None:
        self._cur = cur

    def execute(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Run `sql` (`?` placeholders) in the write's transaction; return all rows."""
        cur = self._cur
        cur.execute(qmark_to_pyformat(sql) if params else sql, params or None)
        return list(cur.fetchall()) if cur.description else []


def _window_drift(cur: Any, relation: Relation, body: str) -> str | None:
    """How the columns of query `body` differ from table `relation`'s (None: they match).

    Types compare as PostgreSQL stores them (type and modifier, e.g. `numeric(10,2)`); the
    query runs with `LIMIT 0`. When they match, `cur.description` is the query's columns.
    """
    table = quote_ident(relation[1]) + "." + quote_ident(relation[2])
    cur.execute(
        "SELECT a.attname, a.atttypid::int, a.atttypmod, format_type(a.atttypid, a.atttypmod) "
        "FROM pg_attribute a WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 "
        "AND NOT a.attisdropped ORDER BY a.attnum",
        (table,),
    )
    have = {str(r[0]): (int(r[1]), int(r[2]), str(r[3])) for r in cur.fetchall()}
    cur.execute(f"SELECT * FROM ({body}\n) AS __sqlorch_window LIMIT 0")
    result = cur.pgresult
    assert result is not None
    got = {
        result.fname(i).decode(): (int(result.ftype(i)), int(result.fmod(i)))
        for i in range(result.nfields)
    }
    if got == {n: (t, m) for n, (t, m, _) in have.items()}:
        return None
    cur.execute(
        "SELECT format_type(t, m) FROM unnest(%s::oid[], %s::int[]) WITH ORDINALITY AS u(t, m, i) "
        "ORDER BY i",
        ([t for t, _ in got.values()], [m for _, m in got.values()]),
    )
    named = {n: str(r[0]) for n, r in zip(got, cur.fetchall(), strict=True)}
    return drift({n: f for n, (_, _, f) in have.items()}, named)
