"""The Spark warehouse: Arrow writes into managed tables through the in-process SparkSession.

dbt-spark's `session` method runs its SQL on the active SparkSession of this process
(`SparkSession.builder.getOrCreate()`), so the session sqlorch starts here is the one dbt
uses: Python assets and dbt models share one catalog, and each sees the other's tables at once.

Spark tables are not transactional: a write replaces its table (or partitions) in place, and a
write killed half-way leaves them half-written. sqlorch records a write (and its partitions in
the ledger) only after it returned, so such a table is never called fresh; the next build
rewrites it. A partition write is a dynamic partition overwrite: exactly the partitions in the
data are replaced, and the partitions of the window that no longer have rows are dropped.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from sqlorch.core.graph import Column
from sqlorch.errors import AssetError, ConfigError, WarehouseError
from sqlorch.warehouse.base import Audit, WriteMode
from sqlorch.warehouse.spark_catalog import describe
from sqlorch.warehouse.spark_partitions import (
    inspect_partitions,
    matching_specs,
    spec_names,
    spec_string,
    spec_values,
)

log = logging.getLogger(__name__)

#: What sqlorch sets on a session it starts unless the profile says otherwise.
DEFAULTS: Mapping[str, str] = {
    "spark.master": "local[2]",
    "spark.sql.sources.partitionOverwriteMode": "dynamic",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
}

_QUOTED = re.compile(r"'(?:[^']|'')*'|\"((?:[^\"]|\"\")*)\"")


def spark_sql(sql: str) -> str:
    """Rewrite sqlorch's ANSI SQL for Spark: double-quoted identifiers become backquoted."""

    def swap(m: re.Match[str]) -> str:
        if m.group(1) is None:
            return m.group(0)  # a string literal
        return "`" + m.group(1).replace('""', '"').replace("`", "``") + "`"

    return _QUOTED.sub(swap, sql)


def quote_ident(name: str) -> str:
    """Quote an identifier for Spark SQL."""
    return "`" + name.replace("`", "``") + "`"


def quote_key(key: str) -> str:
    """Return `schema.name` as a backquoted Spark identifier."""
    return ".".join(quote_ident(p) for p in key.split(".", 1))


def start_session(params: Mapping[str, Any]) -> Any:
    """Return the process's SparkSession, starting it (Hive catalog) with `params` if needed.

    Raises:
        ConfigError: pyspark is missing or Spark (its JVM) does not start.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise ConfigError(
            "The target is a Spark target, but pyspark is not installed. Install it with "
            "`pip install 'sqlorch[spark]'` (pyspark and dbt-spark) and run again."
        ) from exc
    from pyspark.logger import PySparkLogger

    # sqlorch reports failed statements itself (and a missing table is an answer, not an
    # error): pyspark would log each one with its query context on stderr
    PySparkLogger.getLogger("SQLQueryContextLogger").setLevel(logging.CRITICAL)
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    builder = SparkSession.builder.appName("sqlorch")
    for name, value in {**DEFAULTS, **{k: str(v) for k, v in params.items()}}.items():
        builder = builder.config(name, value)
    try:
        spark = builder.enableHiveSupport().getOrCreate()
        # sqlorch reports failed statements itself; Spark's own log would repeat each one
        spark.sparkContext.setLogLevel("FATAL")
        return spark
    except Exception as exc:  # the JVM did not start: no Java, bad memory setting, ...
        raise ConfigError(
            f"Spark did not start: {str(exc).splitlines()[0] if str(exc) else exc!r}. Spark "
            "needs a Java 17 (or later) runtime on PATH or in JAVA_HOME (Debian: `apt-get "
            "install openjdk-17-jre-headless`); check the `server_side_parameters` of the "
            "target in profiles.yml."
        ) from exc


def open_target(target: Any) -> SparkWarehouse:
    """Join (or start) the SparkSession of a dbt-spark target with `method: session`.

    Its `server_side_parameters` configure the session (master, warehouse dir, metastore),
    exactly as dbt-spark's session method applies them, so sqlorch and dbt share it.

    Raises:
        WarehouseError: the target uses another method (a Thrift server, ODBC, HTTP): sqlorch
            writes Python assets through a session in its own process.
    """
    options = dict(getattr(target, "options", None) or {})
    method = str(options.get("method") or "")
    if method != "session":
        raise WarehouseError(
            f"it is a dbt-spark target with `method: {method or '(none)'}`; sqlorch writes to "
            "Spark through a SparkSession in its own process, which dbt-spark shares only with "
            "`method: session`. Use `method: session` (pyspark connects to a cluster with "
            "`spark.master` in server_side_parameters), or run this target with plain dbt."
        )
    params = options.get("server_side_parameters") or {}
    if not isinstance(params, Mapping):
        raise WarehouseError("its `server_side_parameters` must be a mapping of Spark settings")
    try:
        return SparkWarehouse.open(params)
    except ConfigError as exc:
        raise WarehouseError(exc.message) from exc


class _Result:
    """Rows of one statement, read like a DB-API cursor."""

    def __init__(self, df: Any) -> None:
        self._df = df
        self._rows: list[tuple[Any, ...]] | None = None

    def fetchall(self) -> list[tuple[Any, ...]]:
        if self._rows is None:
            self._rows = [tuple(r) for r in self._df.collect()] if self._df is not None else []
        return self._rows

    def fetchone(self) -> tuple[Any, ...] | None:
        rows = self.fetchall()
        return rows[0] if rows else None

    @property
    def df(self) -> Any:
        """The Spark DataFrame of the statement."""
        return self._df

    def to_arrow_table(self) -> Any:
        """The rows as a pyarrow Table (Spark's own Arrow collection, no pandas)."""
        return self._df.toArrow()

    def arrow(self) -> Any:
        """The rows as a pyarrow Table."""
        return self.to_arrow_table()


class SparkConnection:
    """What `context.warehouse.connection` is on Spark: SQL in, rows or Arrow out.

    `execute(sql, params)` and `sql(sql, params=...)` take `?` parameters (Spark's positional
    markers); `.spark` is the SparkSession itself, for DataFrame code.
    """

    def __init__(self, spark: Any) -> None:
        self.spark = spark

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> _Result:
        """Run one statement; return its rows as a cursor (`fetchone`, `fetchall`)."""
        return self.sql(sql, params)

    def sql(self, sql: str, params: Sequence[Any] | None = None) -> _Result:
        """Run one statement; its rows are read lazily (`fetchall`, `to_arrow_table`, `df`)."""
        return _Result(self.spark.sql(spark_sql(sql), args=list(params) if params else None))

    def interrupt(self) -> None:
        """Cancel every running Spark job of this session (Ctrl-C)."""
        self.spark.interruptAll()

    def close(self) -> None:
        """Nothing to release: the session lives as long as the process."""


class SparkWarehouse:
    """The in-process SparkSession (Hive catalog) as a `Warehouse`: schemas are databases."""

    dialect = "spark"
    #: dbt's `insert_overwrite` keeps the partitions its new data has no rows for: sqlorch
    #: drops a window's partitions before dbt writes it (`sqlorch.execute.dbt_chunks`)
    keeps_absent_partitions = True

    def __init__(self, spark: Any) -> None:
        self.spark = spark
        self._con = SparkConnection(spark)
        self._lock = threading.Lock()

    @classmethod
    def open(cls, params: Mapping[str, Any]) -> SparkWarehouse:
        """Start (or join) the process's SparkSession with the profile's parameters."""
        return cls(start_session(params))

    @property
    def connection(self) -> SparkConnection:
        """SQL on the session: `execute(sql, params)`, `sql(...)`; `.spark` the session."""
        return self._con

    def session(self) -> SparkWarehouse:
        """Return a handle on the same SparkSession (it is safe to share between threads)."""
        return SparkWarehouse(self.spark)

    def execute(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Run `sql` and return all rows."""
        return self._con.execute(sql, params).fetchall()

    def arrow(self, sql: str, params: Any = None) -> Any:
        """Run a query (`?` placeholders) and return its rows as a pyarrow Table."""
        return self._con.sql(sql, params).to_arrow_table()

    def relations(self) -> frozenset[str]:
        """Every table and view of the catalog as lower-case `schema.name` (catalog only).

        A managed table of a local warehouse whose directory is gone (deleted by hand) holds
        nothing: it is not listed, so the planner rebuilds it.
        """
        from sqlorch.warehouse.spark_presence import local_dir, table_dir

        root = local_dir(str(self.spark.conf.get("spark.sql.warehouse.dir", "")))
        out: set[str] = set()
        for db in self.spark.catalog.listDatabases():
            for t in self.spark.catalog.listTables(db.name):
                key = f"{db.name}.{t.name}".lower()
                if t.isTemporary:
                    continue
                if root and str(t.tableType) == "MANAGED" and not table_dir(root, key).is_dir():
                    continue
                out.add(key)
        return frozenset(out)

    def interrupt(self) -> None:
        """Cancel every running Spark job of the session; never raises."""
        try:
            self.spark.interruptAll()
        except Exception:  # noqa: BLE001 - the session is stopping
            log.debug("interrupting Spark failed", exc_info=True)

    def ensure_schema(self, schema: str) -> None:
        """Create the database `schema` if it does not exist."""
        self.spark.sql(f"CREATE DATABASE IF NOT EXISTS {quote_ident(schema)}")

    def _frame(self, data: Any, key: str) -> tuple[Any, int]:
        """A Spark DataFrame of an asset's Arrow data (straight from Arrow, no pandas)."""
        from sqlorch.warehouse.duckdb import to_arrow_stream

        stream = to_arrow_stream(data, key)
        table = stream.read_all() if hasattr(stream, "read_all") else stream
        if table.num_columns == 0:
            raise AssetError(f"Asset {key!r} returned data without columns.", asset=key)
        return self.spark.createDataFrame(table), int(table.num_rows)

    def write(
        self,
        key: str,
        data: Any,
        mode: WriteMode = WriteMode.REPLACE,
        audit: Audit | None = None,
    ) -> int:
        """Write `data` to the managed table `key` (Parquet) and return the rows written.

        Plain Spark tables have no transaction to audit inside: `audit` must be None (the
        executor runs blocking checks after the write on Spark).
        """
        _no_audit(audit, key)
        df, rows = self._frame(data, key)
        schema = key.split(".", 1)[0]
        try:
            self.ensure_schema(schema)
            if mode is WriteMode.REPLACE or not self.table_exists(key):
                df.write.mode("overwrite").format("parquet").saveAsTable(quote_key(key))
            else:
                cols = [c.name for c in self.columns(key)]
                df.select(*[quote_ident(c) for c in cols]).write.insertInto(quote_key(key))
                return self.row_counts([key]).get(key, rows)
        except Exception as exc:
            raise _error(f"Writing asset {key!r} to Spark failed", key, exc) from exc
        return rows

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
        """Replace the partitions of `key` that `where` selects with `data`.

        The table is partitioned by `columns`. The partitions present in `data` are replaced
        (a dynamic partition overwrite: one Spark job for the whole chunk), then the
        partitions matching `where` that `data` has no rows for are dropped. Every row of
        `data` must match `where` (checked on the Arrow data before Spark sees it).

        `audit` must be None (see `write`); `on_schema_change` is `fail` in effect: Spark
        refuses data whose columns differ from the table's (the write fails, nothing recorded).

        Raises:
            AssetError: the data lacks a partition column or holds rows outside the partition.
        """
        from sqlorch.warehouse.duckdb import to_arrow_stream

        _no_audit(audit, key)
        stream = to_arrow_stream(data, key)
        table = stream.read_all() if hasattr(stream, "read_all") else stream
        missing = [c for c in columns if c not in table.column_names]
        if missing:
            raise AssetError(
                f"Asset {key!r} is partitioned on {', '.join(columns)} but its output has no "
                f"column {', '.join(missing)} (it has: {', '.join(table.column_names)}). "
                "Return that column, or fix `column=` in the partition definition.",
                asset=key,
            )
        outside, present = inspect_partitions(table, where, params, columns)
        if outside:
            raise AssetError(
                f"Asset {key!r} returned {outside:,} row(s) outside the partition it "
                f"was asked for (filter: {where} with {params}); nothing was written. "
                "Return only the rows of `context.partition`.",
                asset=key,
            )
        try:
            self.ensure_schema(key.split(".", 1)[0])
            with self._lock:  # two chunks of a new table: one creates it
                if not self.table_exists(key):
                    df = self.spark.createDataFrame(table)
                    df.write.format("parquet").partitionBy(*columns).saveAsTable(quote_key(key))
                    return int(table.num_rows)
            if table.num_rows:
                order = [c.name for c in self.columns(key)]
                df = self.spark.createDataFrame(table).select(*[quote_ident(c) for c in order])
                df.write.option("partitionOverwriteMode", "dynamic").insertInto(
                    quote_key(key), overwrite=True
                )
            self.drop_partitions(key, where, params, keep=present)
        except Exception as exc:
            raise _error(f"Writing a partition of asset {key!r} to Spark failed", key, exc) from exc
        return int(table.num_rows)

    def drop_partitions(
        self,
        key: str,
        where: str,
        params: list[Any],
        keep: set[tuple[str | None, ...]] | frozenset[tuple[str | None, ...]] = frozenset(),
    ) -> int:
        """Drop the partitions of `key` whose values match `where`, except those in `keep`.

        Reads the partition list from the catalog (no data is scanned). Returns how many
        partitions were dropped.
        """
        if not self.table_exists(key):
            return 0
        types = {c.name: c.type for c in self.columns(key)}
        specs = [r[0] for r in self.spark.sql(f"SHOW PARTITIONS {quote_key(key)}").collect()]
        if not specs:
            return 0
        matching = matching_specs(specs, types, where, params)
        gone = [v for v in map(spec_values, matching) if v not in keep]
        return self._drop(key, spec_names(specs[0]), gone)

    def _drop(self, key: str, names: list[str], gone: list[tuple[str | None, ...]]) -> int:
        """Drop the partitions `gone` (values of the partition columns `names`), in one ALTER."""
        if not gone:
            return 0
        clauses = ", ".join(
            "PARTITION ("
            + ", ".join(
                f"{quote_ident(c)} = {'NULL' if v is None else spec_string(v)}"
                for c, v in zip(names, values, strict=True)
            )
            + ")"
            for values in gone
        )
        self.spark.sql(f"ALTER TABLE {quote_key(key)} DROP IF EXISTS {clauses}")
        return len(gone)

    def partition_files(self, key: str) -> dict[str, frozenset[str]] | None:
        """The data files of each partition of `key`, taken before a write (`drop_unwritten`).

        Keys are the partitions as `SHOW PARTITIONS` prints them (`day=2024-01-01`), which
        are their folders under the table's. Empty when `key` does not exist (the write
        creates it: nothing is stale). None when `key` is not a managed table of a local
        warehouse, or a partition has no such folder: its partitions cannot be told apart by
        their files, so they must be dropped before the write.
        """
        from sqlorch.warehouse.spark_presence import data_files, local_dir, table_dir

        kind = self._table_type(key)
        if kind is None:
            return {}
        root = local_dir(str(self.spark.conf.get("spark.sql.warehouse.dir", "")))
        if kind != "MANAGED" or root is None:
            return None
        folder = table_dir(root, key)
        out: dict[str, frozenset[str]] = {}
        for (spec,) in self.spark.sql(f"SHOW PARTITIONS {quote_key(key)}").collect():
            files = data_files(folder / spec)
            if files is None:
                return None
            out[spec] = files
        return out

    def drop_unwritten(
        self, key: str, where: str, params: list[Any], before: Mapping[str, frozenset[str]]
    ) -> int:
        """Drop the partitions of `key` matching `where` that a write left as they were.

        `before` is `partition_files(key)` taken before the write. A partition overwrite
        writes new files (their names carry the write's id) into every partition it has
        rows for; a partition of the window whose files are those of `before` had no rows in
        the new data, and its old rows must go. One `SHOW
        PARTITIONS` and one `ALTER TABLE ... DROP` (when any); returns how many were dropped.
        """
        from sqlorch.warehouse.spark_presence import data_files, local_dir, table_dir

        if not before:
            return 0
        root = local_dir(str(self.spark.conf.get("spark.sql.warehouse.dir", "")))
        assert root is not None, "partition_files found this a table of a local warehouse"
        folder = table_dir(root, key)
        specs = [r[0] for r in self.spark.sql(f"SHOW PARTITIONS {quote_key(key)}").collect()]
        if not specs:
            return 0
        types = {c.name: c.type for c in self.columns(key)}
        unwritten = [
            spec
            for spec in matching_specs(specs, types, where, params)
            if spec in before and data_files(folder / spec) == before[spec]
        ]
        return self._drop(key, spec_names(specs[0]), [spec_values(s) for s in unwritten])

    def partition_columns(self, key: str) -> tuple[str, ...]:
        """The columns `key` is partitioned by (empty when it is not, or does not exist)."""
        info = describe(self.spark, quote_key(key))
        return info.partitions if info is not None else ()

    def delete_where(self, key: str, where: str, params: list[Any]) -> int:
        """Delete the rows of `key` matching `where`: drop the partitions they are in.

        Plain Spark tables have no DELETE; `where` must select whole partitions (it is a
        partition range's filter). Returns the rows deleted.

        Raises:
            WarehouseError: `key` is not partitioned, so rows cannot be deleted in place.
        """
        if not self.table_exists(key):
            return 0
        if not self.partition_columns(key):
            raise WarehouseError(
                f"Cannot delete rows of {key!r}: it is a Spark table without partitions, and "
                "plain Spark tables have no DELETE. Rebuild it instead (`sqlorch build --full "
                f"-s {key}`).",
                asset=key,
            )
        row = self._con.execute(
            f"SELECT count(*) FROM {quote_key(key)} WHERE {where}", params
        ).fetchone()
        self.drop_partitions(key, where, params)
        return int(row[0]) if row else 0

    def table_exists(self, key: str) -> bool:
        """Return True when a table or view `key` exists."""
        schema, name = key.split(".", 1)
        try:
            return bool(self.spark.catalog.tableExists(f"{schema}.{name}"))
        except Exception:  # noqa: BLE001 - the database does not exist
            return False

    def row_counts(self, keys: list[str]) -> dict[str, int]:
        """Return exact row counts of the existing tables among `keys`.

        A managed Parquet table of a local warehouse is counted from its files' footers (no
        Spark job: the row count after each write was one); any other table by one Spark job.
        """
        from sqlorch.warehouse.spark_presence import footer_rows, local_dir

        root = local_dir(str(self.spark.conf.get("spark.sql.warehouse.dir", "")))
        counts: dict[str, int] = {}
        present = []
        for key in keys:
            kind = self._table_type(key)
            if kind is None or kind == "VIEW":
                continue
            rows = footer_rows(root, key) if kind == "MANAGED" else None
            if rows is None:
                present.append(key)
            else:
                counts[key] = rows
        for start in range(0, len(present), 200):
            chunk = present[start : start + 200]
            sql = " UNION ALL ".join(
                f"SELECT {i}, count(*) FROM {quote_key(k)}" for i, k in enumerate(chunk)
            )
            for i, n in self.spark.sql(sql).collect():
                counts[chunk[i]] = int(n)
        return counts

    def _table_type(self, key: str) -> str | None:
        """MANAGED, EXTERNAL or VIEW (None: no such relation)."""
        info = describe(self.spark, quote_key(key))
        return info.kind if info is not None else None

    def columns(self, key: str) -> list[Column]:
        """Return the columns of `key` in order (empty when it does not exist)."""
        info = describe(self.spark, quote_key(key))
        return list(info.columns) if info is not None else []

    def table_columns(self, keys: list[str]) -> dict[str, list[Column]]:
        """Return the columns (in order) of each existing table or view among `keys`."""
        out: dict[str, list[Column]] = {}
        for key in keys:
            cols = self.columns(key)
            if cols:
                out[key] = cols
        return out

    def close(self) -> None:
        """Nothing to release: the SparkSession lives as long as the process (dbt uses it)."""


def _no_audit(audit: Audit | None, key: str) -> None:
    """Refuse a write-audit-publish gate: a Spark write cannot be rolled back after it."""
    if audit is not None:
        raise WarehouseError(
            f"Cannot audit the write of {key!r} before publishing it: plain Spark tables have "
            "no transactions. Its blocking checks run after the write on Spark.",
            asset=key,
        )


def _error(what: str, key: str, exc: BaseException) -> WarehouseError:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return WarehouseError(f"{what}: {first}", asset=key)
