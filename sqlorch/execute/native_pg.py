"""dbt-postgres's materializations as sqlorch runs them natively: view, table, incremental, tests.

Statement for statement what dbt-core's default view/table/incremental materializations
render through dbt-postgres 1.11's macros: leftovers `<name>__dbt_tmp` / `<name>__dbt_backup`
dropped first (names cut to PostgreSQL's 63 characters as `postgres__make_relation_with_suffix`
cuts them); then, in one transaction, `create view|table <name>__dbt_tmp as (...)`, the old
relation renamed to `<name>__dbt_backup` (`alter table ... rename to ...`, views included),
the new one renamed into place; after the commit `drop table|view if exists <backup>
cascade` (which, as with dbt, drops the views that depended on the old relation). An
incremental model is created in place on its first run, swapped in on a full refresh, and
otherwise changed in place by its strategy (sqlorch.execute.native_pg_incremental). Several
models share one transaction; the backups are dropped after its commit, then the catalog is
read again (a cascade may have dropped more). Data tests run as dbt's test materialization.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlorch.dbt.datatests import DataTest
from sqlorch.execute.native_incremental import NativeWriteError, Relation
from sqlorch.execute.native_pg_names import ident, quoted, with_suffix
from sqlorch.execute.native_writes import Write, in_place

_KINDS = {"r": "table", "p": "table", "v": "view", "m": "materialized_view", "f": "table"}


class PgCatalog:
    """The relations of the database as one batch of native writes sees them (pg_class)."""

    def __init__(self, con: Any) -> None:
        self.kinds: dict[tuple[str, str], str] = {}
        self.schemas: set[str] = set()
        self.refresh(con)

    def refresh(self, con: Any) -> None:
        """Read every relation and schema again."""
        self.kinds = {
            (str(s), str(n)): _KINDS[str(k)]
            for s, n, k in con.execute(
                "select n.nspname, c.relname, c.relkind from pg_class c join pg_namespace n "
                "on n.oid = c.relnamespace where c.relkind in ('r', 'p', 'v', 'm', 'f') "
                "and n.nspname not like 'pg\\_%' and n.nspname <> 'information_schema'"
            ).fetchall()
        }
        self.schemas = {str(r[0]) for r in con.execute("select nspname from pg_namespace")}

    def kind(self, relation: Relation) -> str | None:
        """'table', 'view', 'materialized_view' or None."""
        return self.kinds.get((relation[1], relation[2]))

    def set(self, relation: Relation, kind: str | None) -> None:
        """Record what `relation` is now."""
        if kind is None:
            self.kinds.pop((relation[1], relation[2]), None)
        else:
            self.kinds[(relation[1], relation[2])] = kind


def _drop(con: Any, relation: Relation, kind: str) -> None:
    """dbt-postgres's drop_relation: `drop table|view if exists ... cascade`."""
    word = "materialized view" if kind == "materialized_view" else kind
    con.execute(f"drop {word} if exists {quoted(relation)} cascade")


def materialize_many(
    con: Any, writes: Sequence[Write], catalog: PgCatalog
) -> list[tuple[int | None, float]]:
    """Write each model as dbt-postgres does, all in ONE transaction (in order).

    Returns (rows or None, seconds) per write. A failure rolls every one of them back
    (each relation keeps its old content) and raises.
    """
    for write in writes:
        schema = write.relation[1]
        if schema not in catalog.schemas:
            con.execute(f"create schema if not exists {ident(schema)}")
            catalog.schemas.add(schema)
        for leftover in (with_suffix(write.relation, "__dbt_tmp"), _backup(write.relation)):
            kind = catalog.kind(leftover)
            if kind is not None:
                _drop(con, leftover, kind)
                catalog.set(leftover, None)
        if catalog.kind(write.relation) == "materialized_view":
            raise NativeWriteError(
                f"{quoted(write.relation)} is a materialized view; dbt must replace it"
            )
    out: list[tuple[int | None, float]] = []
    backups: list[tuple[Relation, str]] = []
    with con.transaction():
        for write in writes:
            started = time.perf_counter()
            existing = catalog.kind(write.relation)
            rows: int | None
            if write.seed is not None:
                from sqlorch.execute.native_pg_seeds import load_seed

                rows = load_seed(con, write, existing)
                kind = "table"
            elif write.incremental is not None and in_place(write, existing):
                rows = _incremental(con, write, existing)
                kind = "table"
            else:
                rows, kind = _swap(con, write, existing)
                if existing is not None:
                    backups.append((_backup(write.relation), existing))
            catalog.set(write.relation, kind)
            out.append((rows, time.perf_counter() - started))
    if backups:
        for backup, kind in backups:
            _drop(con, backup, kind)
        catalog.refresh(con)  # a cascade may have dropped views on the old relations
    return out


def _incremental(con: Any, write: Write, existing: str | None) -> int | None:
    """The first run (`create table as`) or a later run (the strategy)."""
    if existing is None:
        cur = con.execute(_create_table_as(write.relation, write.sql))
        return _rows(cur)
    from sqlorch.execute.native_pg_incremental import write_incremental

    assert write.incremental is not None
    return write_incremental(con, write.relation, write.sql, write.incremental)


def _create_table_as(relation: Relation, sql: str, temporary: bool = False) -> str:
    """postgres__create_table_as (no unlogged, contract or sql_header: dbt runs those)."""
    kind = "temporary" if temporary else ""
    return f"\n  create {kind} table {quoted(relation)}\n  \n    as\n  \n  (\n    {sql}\n  );"


def _swap(con: Any, write: Write, existing: str | None) -> tuple[int | None, str]:
    """Build `<name>__dbt_tmp`, rename the old relation to the backup, rename the new in."""
    tmp = with_suffix(write.relation, "__dbt_tmp")
    if write.materialized == "view":
        con.execute(f"\n  create view {quoted(tmp)}\n    \n  as (\n    {write.sql}\n  );")
        rows, kind = None, "view"
    else:
        rows, kind = _rows(con.execute(_create_table_as(tmp, write.sql))), "table"
    if existing is not None:
        backup = _backup(write.relation)
        con.execute(f"alter table {quoted(write.relation)} rename to {ident(backup[2])}")
    con.execute(f"alter table {quoted(tmp)} rename to {ident(write.relation[2])}")
    return rows, kind


def _backup(relation: Relation) -> Relation:
    return with_suffix(relation, "__dbt_backup")


def _rows(cur: Any) -> int | None:
    n = getattr(cur, "rowcount", -1)
    return int(n) if n is not None and n >= 0 else None


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
        con.execute(f"create schema if not exists {ident(schema)}")
        row = con.execute(
            "select c.relkind from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = %s and c.relname = %s",
            [schema, name],
        ).fetchone()
        with con.transaction():
            if row is not None:
                _drop(con, relation, _KINDS.get(str(row[0]), "table"))
            if kind == "view":
                con.execute(f"\n  create view {quoted(relation)}\n    \n  as (\n    {main}\n  );")
            else:
                con.execute(_create_table_as(relation, main))
        main = f"select *\n        from {quoted(relation)}"
    row = con.execute(test.query(main)).fetchone()
    failures = int(row[0] or 0) if row else 0
    status, message = test.outcome(failures, bool(row and row[1]), bool(row and row[2]))
    return status, message, failures, time.perf_counter() - started
