"""dbt's materializations as sqlorch runs them natively on DuckDB: view, table, incremental, tests.

Each write follows dbt-duckdb's statements: the relation is built under `<name>__dbt_tmp`,
the existing one renamed to `<name>__dbt_backup`, the new one renamed into place, all in one
transaction, and the backup dropped after the commit. A reader sees the old relation or the
new one, never none. An incremental model is created in place on its first run, swapped in
as a table on a full refresh, and otherwise changed in place by its strategy
(sqlorch.execute.native_incremental), in the same transaction. Data tests run as dbt's test
materialization runs them (limit, store_failures, fail_calc, warn_if, error_if).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlorch.dbt.datatests import DataTest
from sqlorch.dbt.native import Incremental
from sqlorch.dbt.seeds import Seed
from sqlorch.execute.native_incremental import NativeWriteError, Relation, write_incremental


def quoted(relation: Sequence[str | None]) -> str:
    """`"db"."schema"."name"` (a part that is None is left out)."""
    return ".".join('"' + p.replace('"', '""') + '"' for p in relation if p is not None)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def relation_type(con: Any, relation: Relation) -> str | None:
    """'table', 'view' or None: what `relation` is now."""
    database, schema, name = relation
    row = con.execute(
        "select table_type from information_schema.tables where table_schema = ? "
        "and table_name = ? and (? is null or table_catalog = ?)",
        [schema, name, database, database],
    ).fetchone()
    if row is None:
        return None
    return "view" if str(row[0]).upper() == "VIEW" else "table"


class Catalog:
    """The relations of the database as one batch of native writes sees them.

    Read once per batch (the catalog of a 1000-model project costs milliseconds a query)
    and kept up to date by the batch's own writes; nothing else writes dbt's relations
    while a batch runs (dbt invocations and native batches take turns).
    """

    def __init__(self, con: Any) -> None:
        self.kinds: dict[tuple[str, str], str] = {
            (str(s).lower(), str(n).lower()): "view" if str(t).upper() == "VIEW" else "table"
            for s, n, t in con.execute(
                "select table_schema, table_name, table_type from information_schema.tables "
                "where table_catalog = current_database()"
            ).fetchall()
        }
        self.schemas = {
            str(r[0]).lower()
            for r in con.execute(
                "select schema_name from information_schema.schemata "
                "where catalog_name = current_database()"
            ).fetchall()
        }

    def kind(self, relation: Relation) -> str | None:
        """'table', 'view' or None."""
        return self.kinds.get((relation[1].lower(), relation[2].lower()))

    def set(self, relation: Relation, kind: str | None) -> None:
        """Record what `relation` is now."""
        key = (relation[1].lower(), relation[2].lower())
        if kind is None:
            self.kinds.pop(key, None)
        else:
            self.kinds[key] = kind


@dataclass(frozen=True, slots=True)
class Write:
    """One model to write: its relation, materialization and compiled SQL."""

    relation: Relation
    materialized: str  # "view" | "table" | "incremental"
    sql: str
    incremental: Incremental | None = None
    #: a seed: its configuration and columns (dbt's agate inference)
    seed: tuple[Seed, list[tuple[str, str]]] | None = None
    #: `--full-refresh` was given (an incremental model's config may override it)
    full_refresh: bool = False
    #: the SQL was compiled with `is_incremental()` true (incremental models only)
    compiled_incremental: bool = False


class ModeChangedError(NativeWriteError):
    """An incremental model's relation changed since its SQL was compiled for it."""


def materialize(con: Any, write: Write, catalog: Catalog) -> int | None:
    """Replace or update `write.relation` atomically, as dbt's materialization does.

    Returns the rows written (a table), None for a view. Raises what DuckDB raises; a
    failed write leaves the old relation in place.
    """
    return materialize_many(con, [write], catalog)[0][0]


def materialize_many(
    con: Any, writes: Sequence[Write], catalog: Catalog
) -> list[tuple[int | None, float]]:
    """Write each model as `materialize` does, all in ONE transaction (in order).

    Returns (rows or None, seconds) per write. A failure rolls every one of them back
    (each relation keeps its old content) and raises.
    """
    import duckdb

    swaps: list[tuple[Relation, str, str | None]] = []
    made: list[Relation] = []
    for write in writes:
        database, schema, name = write.relation
        if schema.lower() not in catalog.schemas:
            con.execute(f"create schema if not exists {quoted((database, schema))}")
            catalog.schemas.add(schema.lower())
        for leftover in ((database, schema, f"{name}__dbt_tmp"), _backup(write.relation)):
            kind = catalog.kind(leftover)
            if kind is not None:
                con.execute(f"drop {kind} if exists {quoted(leftover)} cascade")
                catalog.set(leftover, None)
    out: list[tuple[int | None, float]] = []
    con.execute("begin transaction")
    try:
        for write in writes:
            started = time.perf_counter()
            existing = catalog.kind(write.relation)
            if write.seed is not None:
                rows = _load_seed(con, write, existing)
                made.append(write.relation)
            elif write.incremental is not None and in_place(write, existing):
                rows = _incremental(con, write, existing)
                made.append(write.relation)
            else:
                rows = _swap(con, write, existing)
                swaps.append((write.relation, _kind(write), existing))
            out.append((rows, time.perf_counter() - started))
        con.execute("commit")
    except BaseException:
        try:
            con.execute("rollback")
        except duckdb.Error:
            pass
        raise
    for relation in made:
        catalog.set(relation, "table")
    for relation, kind, _existing in swaps:
        catalog.set(relation, kind)
    backups = [(_backup(r), kind) for r, _m, kind in swaps if kind is not None]
    if backups:
        con.execute("begin transaction")
        for backup, kind in backups:
            con.execute(f"drop {kind} if exists {quoted(backup)} cascade")
        con.execute("commit")
    return out


def _kind(write: Write) -> str:
    return "view" if write.materialized == "view" else "table"


def in_place(write: Write, existing: str | None) -> bool:
    """Whether an incremental model is created or updated in place (not swapped in)."""
    spec = write.incremental
    assert spec is not None
    incremental = spec.is_incremental(existing, write.full_refresh)
    if incremental != write.compiled_incremental:
        raise ModeChangedError(
            f"{quoted(write.relation)} is {existing or 'missing'} now; its SQL was compiled "
            f"with is_incremental() {write.compiled_incremental}. Build it again."
        )
    return existing is None or incremental


def _incremental(con: Any, write: Write, existing: str | None) -> int | None:
    """dbt-duckdb's first run (`create table as`) or a later run (the strategy)."""
    if existing is None:
        row = con.execute(
            f"create  table\n      {quoted(write.relation)}\n  as (\n{write.sql}\n  );"
        ).fetchone()
        return int(row[0]) if row else None
    assert write.incremental is not None
    return write_incremental(con, write.relation, write.sql, write.incremental)


def _load_seed(con: Any, write: Write, existing: str | None) -> int | None:
    """dbt's seed materialization with dbt-duckdb's fast load (COPY of the file)."""
    assert write.seed is not None
    seed, columns = write.seed
    target = quoted(write.relation)
    if existing == "view":
        raise NativeWriteError(f"Cannot seed to '{target}', it is a view")
    if existing == "table" and not seed.should_full_refresh(write.full_refresh):
        con.execute(f"truncate table {target}")
    else:
        if existing == "table":
            con.execute(f"drop table if exists {target} cascade")
        cols = ", ".join(f"{name} {kind}" for name, kind in columns)
        con.execute(f"create table {target} ({cols})")
    row = con.execute(
        f"COPY {target} FROM '{seed.path}' (FORMAT CSV, HEADER TRUE, DELIMITER '{seed.delimiter}')"
    ).fetchone()
    return int(row[0]) if row else None


def _swap(con: Any, write: Write, existing: str | None) -> int | None:
    """Build `<name>__dbt_tmp`, rename the old relation to the backup, rename the new in."""
    database, schema, name = write.relation
    tmp: Relation = (database, schema, f"{name}__dbt_tmp")
    kind = _kind(write)
    if kind == "table":
        row = con.execute(f"create table {quoted(tmp)} as (\n{write.sql}\n  )").fetchone()
        rows: int | None = int(row[0]) if row else None
    else:
        con.execute(f"create view {quoted(tmp)} as (\n{write.sql}\n  )")
        rows = None
    if existing is not None:
        backup = _backup(write.relation)
        con.execute(f"alter {existing} {quoted(write.relation)} rename to {_ident(backup[2])}")
    con.execute(f"alter {kind} {quoted(tmp)} rename to {_ident(name)}")
    return rows


def _backup(relation: Relation) -> Relation:
    return (relation[0], relation[1], f"{relation[2]}__dbt_backup")


def run_test(con: Any, test: DataTest) -> tuple[str, str, int, float]:
    """Run one data test as dbt's test materialization: (status, message, failures, seconds).

    With store_failures, the failing rows replace the test's audit relation first and the
    test counts them there.
    """
    started = time.perf_counter()
    main = test.limited()
    if test.store is not None:
        database, schema, name, kind = test.store
        relation: Relation = (database, schema, name)
        con.execute(f"create schema if not exists {quoted((database, schema))}")
        old = relation_type(con, relation)
        if old is not None:
            con.execute(f"drop {old} if exists {quoted(relation)} cascade")
        con.execute("begin transaction")
        try:
            con.execute(f"create {kind} {quoted(relation)} as (\n{main}\n  )")
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
        main = f"select *\n        from {quoted(relation)}"
    row = con.execute(test.query(main)).fetchone()
    failures = int(row[0] or 0) if row else 0
    status, message = test.outcome(failures, bool(row and row[1]), bool(row and row[2]))
    return status, message, failures, time.perf_counter() - started
