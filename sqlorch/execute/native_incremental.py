"""dbt-duckdb's incremental materialization as sqlorch runs it natively, statement for statement.

On a later run (the relation is a table and no full refresh is due) dbt-duckdb builds the
model's compiled SQL into a temporary table, reconciles the target's columns per
`on_schema_change` (dbt-core's `process_schema_changes`; `expand_target_column_types` is a
no-op on DuckDB), then runs the strategy's statements (`append`, `delete+insert` (the
default), `merge` with its default clauses), all inside the caller's transaction. The first
run and a full refresh are the table materialization (sqlorch.execute.native_writes).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from sqlorch.dbt.native import Incremental

# (database or None, schema, identifier), as dbt names a relation
Relation = tuple[str | None, str, str]


class NativeWriteError(Exception):
    """A native write failed for a reason of dbt's materialization, not DuckDB's."""


_STRINGS = frozenset({"text", "character varying", "character", "varchar"})


class SchemaChangeError(NativeWriteError):
    """`on_schema_change: fail` and the model's columns changed (dbt's compiler error)."""


class ColumnLike(Protocol):
    """What dbt's schema-change handling reads of a column (DuckDB's or PostgreSQL's)."""

    @property
    def name(self) -> str: ...

    @property
    def data_type(self) -> str: ...

    def can_expand_to(self, other: Any) -> bool: ...


C = TypeVar("C", bound=ColumnLike)


@dataclass(frozen=True, slots=True)
class SchemaChanges(Generic[C]):
    """How a model's new columns differ from its table's (dbt's `check_for_schema_changes`)."""

    add: list[C]
    remove: list[C]
    new_types: list[tuple[str, str]]


def schema_changes(
    source: list[C], existing: list[C], on_schema_change: str
) -> SchemaChanges[C] | None:
    """The differences dbt acts on, None when there are none.

    Raises:
        SchemaChangeError: there are some and `on_schema_change` is `fail`.
    """
    source_names = [c.name for c in source]
    target_names = [c.name for c in existing]
    add = [c for c in source if c.name not in target_names]
    remove = [c for c in existing if c.name not in source_names]
    first = {c.name: c for c in reversed(existing)}  # the first column of a name, as dbt
    new_types = [
        (first[c.name].name, c.data_type)
        for c in source
        if c.name in first
        and c.data_type != first[c.name].data_type
        and not c.can_expand_to(first[c.name])
    ]
    if not (add or remove or new_types):
        return None
    if on_schema_change == "fail":
        raise SchemaChangeError(
            "The source and target schemas on this incremental model are out of sync! "
            "Set `on_schema_change` to append_new_columns or sync_all_columns, or rebuild it "
            f"with --full-refresh. Source columns not in target: {[c.name for c in add]}; "
            f"target columns not in source: {[c.name for c in remove]}; new column types: "
            f"{new_types}"
        )
    return SchemaChanges(add, remove, new_types)


@dataclass(frozen=True, slots=True)
class _Column:
    """dbt's `Column` of one DESCRIBE row (what schema-change handling compares)."""

    name: str
    dtype: str

    @property
    def data_type(self) -> str:
        """`Column.data_type`: strings are `character varying(256)` (DuckDB has no length)."""
        if self.dtype.lower() in _STRINGS:
            return "character varying(256)"
        return self.dtype

    def can_expand_to(self, other: _Column) -> bool:
        """Always False on DuckDB: every string is 256 wide to dbt."""
        return False


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _render(relation: Relation) -> str:
    return ".".join(_q(p) for p in relation if p is not None)


def _columns(con: Any, rendered: str) -> list[_Column]:
    """dbt-duckdb's `get_columns_in_relation`: DESCRIBE, in order."""
    rows = con.execute(f"select column_name, column_type from (describe {rendered})").fetchall()
    return [_Column(str(n), str(t)) for n, t in rows]


def write_incremental(
    con: Any, relation: Relation, sql: str, spec: Incremental, stamp: str | None = None
) -> int | None:
    """Apply one incremental run to the existing table `relation` in the open transaction.

    Returns the rows the last statement wrote. Raises what DuckDB raises, or
    `SchemaChangeError`; the caller rolls back, leaving the old table whole.
    """
    target = _render(relation)
    tmp = _q(f"{relation[2]}__dbt_tmp{stamp or time.strftime('%H%M%S')}{time.time_ns() % 10**6}")
    con.execute(f"create temporary table\n      {tmp}\n  as (\n{sql}\n  );")
    dest = _reconcile(con, target, tmp, spec.on_schema_change)
    rows = None
    for statement in strategy_sql(spec, target, tmp, dest):
        row = con.execute(statement).fetchone()
        rows = int(row[0]) if row and isinstance(row[0], int) else None
    # dbt leaves its temporary table to the connection's end; this connection lives on
    con.execute(f"drop table temp.main.{tmp}")
    return rows


def _reconcile(con: Any, target: str, tmp: str, on_schema_change: str) -> list[_Column]:
    """dbt's `process_schema_changes`; the columns the strategy writes."""
    if on_schema_change == "ignore":
        return _columns(con, target)
    source, existing = _columns(con, tmp), _columns(con, target)
    changes = schema_changes(source, existing, on_schema_change)
    if changes is None:
        return source
    add, remove, new_types = changes.add, changes.remove, changes.new_types
    for column in add:
        con.execute(f"alter table {target} add column {_q(column.name)} {column.data_type}")
    if on_schema_change == "sync_all_columns":
        for column in remove:
            con.execute(f"alter table {target} drop column {_q(column.name)}")
        for name, new_type in new_types:
            alter = _q(name + "__dbt_alter")
            con.execute(f"alter table {target} add column {alter} {new_type}")
            con.execute(f"update {target} set {alter} = {_q(name)}")
            con.execute(f"alter table {target} drop column {_q(name)} cascade")
            con.execute(f"alter table {target} rename column {alter} to {_q(name)}")
    return source


def strategy_sql(spec: Incremental, target: str, tmp: str, dest: list[_Column]) -> list[str]:
    """The strategy's statements, as dbt-duckdb's macros render them."""
    cols = ", ".join(_q(c.name) for c in dest)
    insert = (
        f"insert into {target} ({cols})\n    (\n        select {cols}\n        from {tmp}\n    )"
    )
    key, preds = spec.unique_key, spec.predicates
    if spec.strategy == "append":
        return [insert]
    if spec.strategy == "merge":
        return [_merge(target, tmp, key, preds)]
    if not key:
        return [insert]
    if isinstance(key, tuple):
        joins = " and ".join(f"{tmp}.{k} = DBT_INCREMENTAL_TARGET.{k}" for k in key)
        extra = "".join(f" and {p}" for p in preds or ())
        delete = (
            f"delete from {target} as DBT_INCREMENTAL_TARGET\n    using {tmp}\n"
            f"    where (\n        {joins}{extra}\n    )"
        )
    else:
        extra = "".join(f"\n        and {p}" for p in preds or ())
        delete = (
            f"delete from {target}\n    where (\n        {key}) in (\n"
            f"        select ({key})\n        from {tmp}\n    ){extra}"
        )
    return [delete, insert]


def _merge(target: str, tmp: str, key: str | tuple[str, ...] | None, preds: Any) -> str:
    keys = key if isinstance(key, tuple) else ((key,) if key else ())
    on = [f"DBT_INTERNAL_SOURCE.{k} = DBT_INTERNAL_DEST.{k}" for k in keys] or ["FALSE"]
    on += list(preds or ())
    return (
        f"MERGE INTO {target} AS DBT_INTERNAL_DEST\n"
        f"        USING {tmp} AS DBT_INTERNAL_SOURCE\n"
        f"        ON ({') AND ('.join(on)})\n"
        "    WHEN MATCHED\n    THEN\n        UPDATE BY NAME\n"
        "    WHEN NOT MATCHED\n    THEN\n        INSERT BY NAME"
    )
