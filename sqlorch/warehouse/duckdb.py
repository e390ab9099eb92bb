"""The DuckDB warehouse: zero-copy Arrow writes into the file dbt-duckdb also uses.

In one process, every `duckdb.connect(path)` of the same file shares one database instance,
so sqlorch's connection and dbt-duckdb's see each other's writes and never hit a file lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from sqlorch.core.graph import Column
from sqlorch.errors import AssetError, WarehouseError
from sqlorch.warehouse.base import Audit, SchemaDrift, WriteMode
from sqlorch.warehouse.sql import drift as _drift
from sqlorch.warehouse.sql import query_body as _body
from sqlorch.warehouse.sql import quote_key as quote_key  # importers know it from here

log = logging.getLogger(__name__)

_TRANSIENT = ("write-write conflict", "Conflicting lock", "could not set lock")

# (database or None for the file's own, schema, table)
Relation = tuple[str | None, str, str]


def to_arrow_stream(data: Any, key: str) -> Any:
    """Convert an asset's return value into something DuckDB can scan (Arrow table/reader).

    Raises:
        AssetError: the value is not Arrow-compatible data.
    """
    import pyarrow as pa

    if isinstance(data, pa.Table | pa.RecordBatchReader):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    mod = type(data).__module__
    if mod.startswith("duckdb"):
        if hasattr(data, "to_arrow_reader"):
            return data.to_arrow_reader(1_000_000)
        if hasattr(data, "fetch_record_batch"):
            return data.fetch_record_batch(1_000_000)
    if hasattr(data, "__arrow_c_stream__"):
        return pa.RecordBatchReader.from_stream(data)
    if hasattr(data, "__arrow_c_array__"):
        return pa.table(data)
    raise AssetError(
        f"Asset {key!r} returned a {type(data).__module__}.{type(data).__qualname__}, which "
        "sqlorch cannot write. Return a pyarrow Table or RecordBatchReader, a pandas or polars "
        "DataFrame (anything with the Arrow PyCapsule interface), or a DuckDB relation; or take "
        "a `context` argument, write through `context.warehouse` yourself and return None.",
        asset=key,
    )


#: What a partitioned asset's changed columns do (dbt's `on_schema_change` values).
SCHEMA_POLICIES = ("fail", "append_new_columns", "sync_all_columns")


def evolve_columns(
    con: Any,
    key: str,
    have: Mapping[str, str],
    got: Mapping[str, str],
    policy: str,
    keep: tuple[str, ...] = (),
) -> None:
    """Make table `key` (columns `have`) take a partition whose data has columns `got`.

    `fail`: any added, removed or retyped column is an error (nothing is ever coerced);
    `append_new_columns`: new columns are added (removed ones stay, NULL in the new rows),
    a changed type is an error; `sync_all_columns`: the table takes the data's columns (added,
    dropped, retyped; `keep`, the partition columns, are never dropped). Untyped (all-NULL)
    columns of the data match any type.

    Raises:
        AssetError: the policy refuses the difference; the caller's transaction rolls back.
    """
    if not have:
        return
    got = {c: t for c, t in got.items() if t.strip('"').upper() != "NULL" or c not in have}
    added = sorted(set(got) - set(have))
    removed = sorted(set(have) - set(got))
    changed = sorted(c for c in set(have) & set(got) if have[c].upper() != got[c].upper())
    if policy == "append_new_columns":
        removed = []  # they stay, NULL in the new rows
    if not (added or removed or changed):
        return
    if policy == "fail" or (policy == "append_new_columns" and changed):
        what = _drift(
            {c: have[c] for c in have if c in got or c in removed},
            {c: got[c] for c in got if c in have or c in added},
        )
        raise AssetError(
            f"Asset {key!r}: its output's columns differ from its table's ({what}); nothing "
            "was written, and no value was converted. To accept the new columns, rebuild "
            f"every partition with `sqlorch build --full -s {key}`, or declare what a "
            "partitioned asset does when its columns change: "
            "`@asset(on_schema_change='append_new_columns')` (add new columns) or "
            "`'sync_all_columns'` (add, drop and retype columns), as dbt's on_schema_change.",
            asset=key,
        )
    target = quote_key(key)

    def ident(c: str) -> str:
        return '"' + c.replace('"', '""') + '"'

    for c in added:
        con.execute(f"ALTER TABLE {target} ADD COLUMN {ident(c)} {got[c]}")
    for c in removed:
        if c not in {k.lower() for k in keep}:
            con.execute(f"ALTER TABLE {target} DROP COLUMN {ident(c)}")
    for c in changed:
        con.execute(f"ALTER TABLE {target} ALTER COLUMN {ident(c)} TYPE {got[c]}")


def open_target(target: Any) -> DuckDBWarehouse:
    """Open the DuckDB file of a dbt target (`path:`; an in-memory database is refused).

    Raises:
        WarehouseError: the target has no file, or the file cannot be opened.
    """
    if not target.path or target.path == ":memory:":
        raise WarehouseError(
            "it is an in-memory DuckDB database, which sqlorch cannot share with dbt; set "
            "`path:` to a .duckdb file"
        )
    return DuckDBWarehouse(target.path, target.config)


class DuckDBWarehouse:
    """A DuckDB database file (or an attached connection) as a `Warehouse`."""

    dialect = "duckdb"

    def __init__(
        self,
        path: str,
        config: Mapping[str, Any] | None = None,
        *,
        _parent: Any = None,
        _bound: Any = None,
    ) -> None:
        import duckdb

        self.path = path
        self._config = dict(config or {})
        self._owned = _bound is None
        try:
            if _bound is not None:
                self._con = _bound  # a cursor inside a write's open transaction
            elif _parent is not None:
                self._con = _parent.cursor()
            else:
                self._con = duckdb.connect(path, config=self._config)
        except duckdb.Error as exc:
            raise WarehouseError(f"Could not open the DuckDB database {path!r}: {exc}") from exc
        self._lock = threading.Lock()

    @property
    def connection(self) -> Any:
        """The DuckDB connection of this session."""
        return self._con

    def session(self) -> DuckDBWarehouse:
        """Return a handle with its own cursor on the same database instance."""
        return DuckDBWarehouse(self.path, self._config, _parent=self._con)

    def _audit(self, audit: Audit | None, con: Any) -> None:
        """Run `audit` on a handle of `con`, inside its transaction (it raises to roll back)."""
        if audit is not None:
            audit(DuckDBWarehouse(self.path, self._config, _bound=con))

    def execute(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Run `sql` and return all rows."""
        return self._con.execute(sql, params).fetchall()  # type: ignore[no-any-return]

    def arrow(self, sql: str, params: Any = None) -> Any:
        """Run a query and return its rows as a pyarrow Table."""
        return self._con.sql(sql, params=params).to_arrow_table()

    def relations(self) -> frozenset[str]:
        """Return every table and view of the file as lower-case `schema.name`."""
        return frozenset(
            str(r[0])
            for r in self._con.execute(
                "SELECT lower(table_schema || '.' || table_name) FROM information_schema.tables "
                "WHERE table_catalog = current_database()"
            ).fetchall()
        )

    def interrupt(self) -> None:
        """Interrupt this session's running query (from another thread)."""
        try:
            self._con.interrupt()
        except Exception:  # noqa: BLE001 - a closed session has nothing to interrupt
            log.debug("could not interrupt a DuckDB session", exc_info=True)

    def ensure_schema(self, schema: str) -> None:
        """Create `schema` if it does not exist."""
        self._retry(lambda: self._con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))

    def write(
        self,
        key: str,
        data: Any,
        mode: WriteMode = WriteMode.REPLACE,
        audit: Audit | None = None,
    ) -> int:
        """Write `data` to `key` in one transaction and return the table's row count.

        `audit` runs inside the transaction on the new data (write-audit-publish): when it
        raises, nothing is written and readers never saw the new rows.
        """
        import duckdb

        stream = to_arrow_stream(data, key)
        rows_hint = getattr(stream, "num_rows", None)
        target = quote_key(key)
        schema = key.split(".", 1)[0]

        def work(con: Any) -> int:
            # `con` is a cursor of its own: a DuckDB relation the asset returned may hold an open
            # result on the session's connection while it streams into this write
            con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            con.register("__sqlorch_input", stream)
            try:
                if mode is WriteMode.REPLACE:
                    con.execute(
                        f"CREATE OR REPLACE TABLE {target} AS SELECT * FROM __sqlorch_input"
                    )
                else:
                    con.execute(
                        f"CREATE TABLE IF NOT EXISTS {target} AS "
                        "SELECT * FROM __sqlorch_input LIMIT 0"
                    )
                    con.execute(f"INSERT INTO {target} SELECT * FROM __sqlorch_input")
            finally:
                con.unregister("__sqlorch_input")
            self._audit(audit, con)
            if rows_hint is not None and mode is WriteMode.REPLACE:
                return int(rows_hint)
            return int(con.execute(f"SELECT count(*) FROM {target}").fetchone()[0])

        try:
            # a reader is consumed by the first attempt: only tables can be retried
            return self._transaction(work, retries=3 if rows_hint is not None else 0)
        except duckdb.Error as exc:
            raise WarehouseError(
                f"Writing asset {key!r} to DuckDB failed: {exc}", asset=key
            ) from exc

    def write_partition(
        self,
        key: str,
        data: Any,
        where: str,
        params: list[Any],
        columns: tuple[str, ...],
        audit: Audit | None = None,
        on_schema_change: str = "fail",
    ) -> int:
        """Replace the rows of `key` matching `where` with `data`, in one transaction.

        Every row of `data` must match `where` (the partition's filter) and `data` must have
        every partition column; otherwise nothing is written. A difference between the data's
        columns and the table's follows `on_schema_change` (see `evolve_columns`); `audit`
        runs inside the transaction, as in `write`. Returns the rows written.

        Raises:
            AssetError: the data lacks a partition column, holds rows outside the partition,
                or its columns differ from the table's and the policy refuses that.
        """
        import duckdb
        import pyarrow as pa

        stream = to_arrow_stream(data, key)
        if isinstance(stream, pa.RecordBatchReader):
            stream = stream.read_all()  # scanned twice: the filter check, then the insert
        _require_columns(key, stream.column_names, columns)
        target = quote_key(key)
        schema = key.split(".", 1)[0]

        def work(con: Any) -> int:
            con.register("__sqlorch_input", stream)
            outside = con.execute(
                f"SELECT count(*) FROM __sqlorch_input WHERE NOT coalesce(({where}), false)",
                params,
            ).fetchone()[0]
            if outside:
                raise AssetError(
                    f"Asset {key!r} returned {outside:,} row(s) outside the partition it "
                    f"was asked for (filter: {where} with {params}); nothing was written. "
                    "Return only the rows of `context.partition`.",
                    asset=key,
                )
            got = {
                str(r[0]).lower(): str(r[1])
                for r in con.execute("DESCRIBE SELECT * FROM __sqlorch_input").fetchall()
            }
            have = self._column_types(con, (None, schema, key.split(".", 1)[1]))
            evolve_columns(con, key, have, got, on_schema_change, columns)
            con.execute(f"DELETE FROM {target} WHERE {where}", params)
            con.execute(f"INSERT INTO {target} BY NAME SELECT * FROM __sqlorch_input")
            self._audit(audit, con)
            return int(stream.num_rows)

        try:
            if not self.table_exists(key):
                self._retry(lambda: self._create_empty(schema, target, stream), retries=5)
            return self._transaction(work, retries=5)
        except duckdb.Error as exc:
            raise WarehouseError(
                f"Writing a partition of asset {key!r} to DuckDB failed: {exc}", asset=key
            ) from exc

    def _create_empty(self, schema: str, target: str, stream: Any) -> None:
        """Create `target` with `stream`'s columns and no rows, if it does not exist.

        Its own short transaction: partitions written in parallel would all race to create
        the table inside their writes (a write-write conflict in DuckDB).
        """
        con = self._con.cursor()
        try:
            con.register("__sqlorch_input", stream)
            con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            con.execute(
                f"CREATE TABLE IF NOT EXISTS {target} AS SELECT * FROM __sqlorch_input LIMIT 0"
            )
        finally:
            con.close()

    def schema_drift(self, relation: Relation, query: str) -> str | None:
        """How `query`'s columns differ from `relation`'s (None when they match)."""
        have = self._column_types(self._con, relation)
        got = {
            str(r[0]).lower(): str(r[1])
            for r in self._con.execute(f"DESCRIBE SELECT * FROM ({_body(query)}\n)").fetchall()
        }
        return _drift(have, got) if got != have else None

    def relation_exists(self, relation: Relation) -> bool:
        """Whether `relation` (database or None, schema, table) exists as a table (not a view)."""
        database, schema, name = relation
        row = self._con.execute(
            "SELECT count(*) FROM duckdb_tables() "
            "WHERE lower(database_name) = lower(coalesce(?, current_database())) "
            "AND lower(schema_name) = lower(?) AND lower(table_name) = lower(?)",
            [database, schema, name],
        ).fetchone()
        return bool(row and row[0])

    @staticmethod
    def _column_types(con: Any, relation: Relation) -> dict[str, str]:
        database, schema, name = relation
        return {
            str(n).lower(): str(t)
            for n, t in con.execute(
                "SELECT column_name, data_type FROM duckdb_columns() "
                "WHERE lower(database_name) = lower(coalesce(?, current_database())) "
                "AND lower(schema_name) = lower(?) AND lower(table_name) = lower(?)",
                [database, schema, name],
            ).fetchall()
        }

    def replace_window_sql(
        self,
        relation: Relation,
        queries: list[str],
        where: str,
        params: list[Any],
        audit: Audit | None = None,
    ) -> int:
        """Replace the rows of `relation` matching `where` with `queries`' rows, in one transaction.

        `relation` is (database or None for the file's own, schema, table), as dbt names it.
        Each query's rows outside `where` are filtered out, so a window never writes another
        window's rows. `audit` runs inside the transaction on the new table (write-audit-
        publish: it raises to roll back). Returns the rows written.

        Raises:
            SchemaDrift: a query's columns (names or types) differ from the table's: the
                model's `on_schema_change` must decide, so dbt has to write this window.
            WarehouseError: DuckDB failed; nothing was written.
        """
        import duckdb

        target = ".".join('"' + p.replace('"', '""') + '"' for p in relation if p is not None)
        key = ".".join(p for p in relation[1:])
        bodies = [_body(q) for q in queries]

        def work(con: Any) -> int:
            have = self._column_types(con, relation)
            got = {
                str(r[0]).lower(): str(r[1])
                for r in con.execute(f"DESCRIBE SELECT * FROM ({bodies[0]}\n)").fetchall()
            }
            if got != have:
                raise SchemaDrift(_drift(have, got))
            con.execute(f"DELETE FROM {target} WHERE {where}", params)
            rows = 0
            for body in bodies:
                row = con.execute(
                    f"INSERT INTO {target} BY NAME SELECT * FROM ({body}\n) "
                    f"AS __sqlorch_window WHERE {where}",
                    params,
                ).fetchone()
                rows += int(row[0]) if row else 0
            self._audit(audit, con)
            return rows

        try:
            return self._transaction(work, retries=5)
        except duckdb.Error as exc:
            raise WarehouseError(
                f"Writing a partition window of {key!r} to DuckDB failed: {exc}", asset=key
            ) from exc

    def delete_where(self, key: str, where: str, params: list[Any]) -> int:
        """Delete the rows of `key` matching `where` (a wipe); return how many."""
        if not self.table_exists(key):
            return 0
        row = self._con.execute(f"DELETE FROM {quote_key(key)} WHERE {where}", params).fetchone()
        return int(row[0]) if row else 0

    def table_exists(self, key: str) -> bool:
        """Return True when a table or view `key` exists."""
        schema, name = key.split(".", 1)
        row = self._con.execute(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE lower(table_schema) = lower(?) AND lower(table_name) = lower(?)",
            [schema, name],
        ).fetchall()  # (fetchone leaves the result open: the next .sql() would refuse)
        return bool(row and row[0][0])

    def row_counts(self, keys: list[str]) -> dict[str, int]:
        """Return exact row counts of the existing tables among `keys` (one query if it can)."""
        import duckdb

        if not keys:
            return {}
        try:
            return self._count(keys)
        except duckdb.Error:
            pass  # some key is missing or a view: count those that are tables, one by one
        tables = {
            f"{s}.{n}".lower()
            for s, n in self._con.execute(
                "SELECT schema_name, table_name FROM duckdb_tables() "
                "WHERE database_name = current_database()"
            ).fetchall()
        }
        present = [k for k in keys if k.lower() in tables]
        return self._count(present) if present else {}

    def _count(self, keys: list[str]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            sql = " UNION ALL ".join(
                f"SELECT {i}, count(*) FROM {quote_key(k)}" for i, k in enumerate(chunk)
            )
            for i, n in self._con.execute(sql).fetchall():
                counts[chunk[i]] = int(n)
        return counts

    def columns(self, key: str) -> list[Column]:
        """Return the columns of `key` in order (empty when it does not exist)."""
        schema, name = key.split(".", 1)
        rows = self._con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE lower(table_schema) = lower(?) AND lower(table_name) = lower(?) "
            "ORDER BY ordinal_position",
            [schema, name],
        ).fetchall()
        return [Column(n, t) for n, t in rows]

    def table_columns(self, keys: list[str]) -> dict[str, list[Column]]:
        """Return the columns (in order) of each existing table or view among `keys`, at once."""
        if not keys:
            return {}
        wanted = {k.lower(): k for k in keys}
        rows = self._con.execute(
            "SELECT lower(schema_name) || '.' || lower(table_name), column_name, data_type "
            "FROM duckdb_columns() WHERE database_name = current_database() "
            "AND list_contains(?, lower(schema_name) || '.' || lower(table_name)) "
            "ORDER BY schema_name, table_name, column_index",
            [list(wanted)],
        ).fetchall()
        out: dict[str, list[Column]] = {}
        for low, name, dtype in rows:
            out.setdefault(wanted[low], []).append(Column(name, dtype))
        return out

    def close(self) -> None:
        """Close this session's connection (a handle inside a write leaves it to the write)."""
        if not self._owned:
            return
        try:
            self._con.close()
        except Exception:  # noqa: BLE001 - closing twice or after the parent is harmless
            log.debug("closing DuckDB connection failed", exc_info=True)

    def _transaction(self, work: Callable[[Any], int], retries: int) -> int:
        """Run `work(cursor)` in one transaction on a cursor of its own; any error rolls it
        back. Transient conflicts are retried up to `retries` times."""
        import duckdb

        def attempt() -> int:
            con = self._con.cursor()
            con.execute("BEGIN TRANSACTION")
            try:
                out = work(con)
                con.execute("COMMIT")
                return out
            except BaseException:
                try:
                    con.execute("ROLLBACK")
                except duckdb.Error:
                    pass
                raise
            finally:
                con.close()

        return int(self._retry(attempt, retries=retries))

    def _retry(self, fn: Any, retries: int = 3) -> Any:
        import duckdb

        delay = 0.05
        for attempt in range(retries + 1):
            try:
                return fn()
            except duckdb.Error as exc:
                if attempt == retries or not any(t in str(exc) for t in _TRANSIENT):
                    raise
                log.debug("transient DuckDB error, retrying in %.2fs: %s", delay, exc)
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")


def _require_columns(key: str, have: list[str], columns: tuple[str, ...]) -> None:
    """Refuse a partition's output that lacks a partition column."""
    missing = [c for c in columns if c not in have]
    if missing:
        raise AssetError(
            f"Asset {key!r} is partitioned on {', '.join(columns)} but its output has no "
            f"column {', '.join(missing)} (it has: {', '.join(have)}). "
            "Return that column, or fix `column=` in the partition definition.",
            asset=key,
        )
