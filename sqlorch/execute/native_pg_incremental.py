"""dbt's incremental materialization on PostgreSQL as sqlorch runs it natively.

A later run (the relation is a table, no full refresh due), inside the caller's
transaction, as dbt-core 1.11's default materialization renders it through dbt-postgres:
`create temporary table "<name>__dbt_tmp<HHMMSSffffff>" as (...)` (no schema, the name cut
to 63 characters); `expand_target_column_types` (a string column of the target narrower than
the temporary table's widens to `character varying(n)`, `text` counting as 256, with
dbt's four `__dbt_alter` statements); `process_schema_changes` with dbt-postgres's
`PostgresColumn` types from information_schema; then the strategy: `append` (insert),
`delete+insert` (dbt-postgres's default when there is a unique_key, else append) and `merge`
(PostgreSQL 15's MERGE as dbt-core's `default__get_merge_sql` renders it).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from sqlorch.dbt.native import Incremental
from sqlorch.execute.native_incremental import Relation, schema_changes
from sqlorch.execute.native_pg_names import MAX_NAME, ident, quoted

_STRINGS = frozenset({"text", "character varying", "character", "varchar"})


@dataclass(frozen=True, slots=True)
class PgColumn:
    """dbt-postgres's `PostgresColumn` of one information_schema.columns row."""

    name: str
    dtype: str
    char_size: int | None = None
    precision: int | None = None
    scale: int | None = None

    def is_string(self) -> bool:
        """dbt's `Column.is_string`."""
        return self.dtype.lower() in _STRINGS

    def string_size(self) -> int:
        """dbt's `Column.string_size` (`text`, or no length: 256)."""
        if self.dtype == "text" or self.char_size is None:
            return 256
        return int(self.char_size)

    @property
    def data_type(self) -> str:
        """`PostgresColumn.data_type`: text and unbounded varchar kept, others sized."""
        low = self.dtype.lower()
        if low == "text" or (low == "character varying" and self.char_size is None):
            return self.dtype
        if self.is_string():
            return f"character varying({self.string_size()})"
        if low in ("numeric", "decimal") and self.precision is not None and self.scale is not None:
            return f"{self.dtype}({self.precision},{self.scale})"
        return self.dtype

    def can_expand_to(self, other: PgColumn) -> bool:
        """dbt's `Column.can_expand_to`: both strings and the other one wider."""
        return self.is_string() and other.is_string() and other.string_size() > self.string_size()


def columns(con: Any, relation: Relation, temporary: bool = False) -> list[PgColumn]:
    """postgres__get_columns_in_relation (by name only for a temporary relation)."""
    sql = (
        "select column_name, data_type, character_maximum_length, numeric_precision, "
        "numeric_scale from information_schema.columns where table_name = %s"
    )
    params: list[Any] = [relation[2]]
    if not temporary:
        sql += " and table_schema = %s"
        params.append(relation[1])
    rows = con.execute(sql + " order by ordinal_position", params).fetchall()
    return [PgColumn(str(r[0]), str(r[1]), r[2], r[3], r[4]) for r in rows]


def temp_relation(relation: Relation, now: datetime.datetime | None = None) -> Relation:
    """postgres__make_temp_relation: `<name>__dbt_tmp<HHMMSSffffff>`, no schema."""
    moment = now or datetime.datetime.now()
    suffix = "__dbt_tmp" + moment.strftime("%H%M%S%f")
    return (None, "", relation[2][: MAX_NAME - len(suffix)] + suffix)


def write_incremental(con: Any, relation: Relation, sql: str, spec: Incremental) -> int | None:
    """Apply one incremental run to the existing table `relation` in the open transaction.

    Returns the rows the last statement wrote. Raises what psycopg raises, or
    `SchemaChangeError`; the caller rolls back, leaving the old table whole.
    """
    tmp_rel = temp_relation(relation)
    tmp = ident(tmp_rel[2])
    target = quoted(relation)
    con.execute(f"\n  create temporary table {tmp}\n  \n    as\n  \n  (\n    {sql}\n  );")
    _expand(con, relation, tmp_rel)
    dest = _reconcile(con, relation, tmp_rel, spec.on_schema_change)
    rows = None
    for statement in strategy_sql(spec, target, tmp, dest):
        cur = con.execute(statement)
        rows = cur.rowcount if cur.rowcount is not None and cur.rowcount >= 0 else None
    # dbt leaves its temporary table to the session's end; this session lives on
    con.execute(f"drop table {tmp}")
    return rows


def _alter_type(con: Any, target: str, name: str, new_type: str) -> None:
    """default__alter_column_type: add `__dbt_alter`, copy, drop (cascade), rename."""
    alter = ident(name + "__dbt_alter")
    con.execute(
        f"alter table {target} add column {alter} {new_type};\n"
        f"update {target} set {alter} = {ident(name)};\n"
        f"alter table {target} drop column {ident(name)} cascade;\n"
        f"alter table {target} rename column {alter} to {ident(name)}"
    )


def _expand(con: Any, relation: Relation, tmp: Relation) -> None:
    """SQLAdapter.expand_column_types(goal=tmp, current=target)."""
    goal = {c.name: c for c in columns(con, tmp, temporary=True)}
    current = {c.name: c for c in columns(con, relation)}
    for name, reference in goal.items():
        column = current.get(name)
        if column is not None and column.can_expand_to(reference):
            new_type = f"character varying({reference.string_size()})"
            _alter_type(con, quoted(relation), name, new_type)


def _reconcile(con: Any, relation: Relation, tmp: Relation, on_schema_change: str) -> list[str]:
    """dbt's `process_schema_changes`; the names of the columns the strategy writes."""
    target = quoted(relation)
    if on_schema_change == "ignore":
        return [c.name for c in columns(con, relation)]
    source, existing = columns(con, tmp, temporary=True), columns(con, relation)
    source_names = [c.name for c in source]
    changes = schema_changes(source, existing, on_schema_change)
    if changes is None:
        return source_names
    add, remove, new_types = changes.add, changes.remove, changes.new_types
    drops = remove if on_schema_change == "sync_all_columns" else []
    if add or drops:
        parts = [f'add column "{c.name}" {c.data_type}' for c in add]
        parts += [f'drop column "{c.name}"' for c in drops]
        con.execute(f"alter table {target} " + ", ".join(parts))
    if on_schema_change == "sync_all_columns":
        for name, new_type in new_types:
            _alter_type(con, target, name, new_type)
    return source_names


def strategy_sql(spec: Incremental, target: str, tmp: str, dest: list[str]) -> list[str]:
    """The strategy's statements, as dbt-core's default macros render them on PostgreSQL."""
    cols = ", ".join(ident(c) for c in dest)
    insert = (
        f"insert into {target} ({cols})\n    (\n        select {cols}\n        from {tmp}\n    )"
    )
    key, preds = spec.unique_key, spec.predicates
    if spec.strategy == "merge":
        return [_merge(target, tmp, key, preds, dest)]
    if spec.strategy == "append" or not key:
        return [insert]
    keys = ", ".join(key) if isinstance(key, tuple) else key
    extra = "".join(f"\n            and {p}" for p in preds or ())
    delete = (
        f"delete from {target} as DBT_INTERNAL_DEST\n        where ({keys}) in (\n"
        f"            select distinct {keys}\n            from {tmp} as DBT_INTERNAL_SOURCE\n"
        f"        ){extra}"
    )
    return [delete, insert]


def _merge(
    target: str, tmp: str, key: str | tuple[str, ...] | None, preds: Any, dest: list[str]
) -> str:
    on = list(preds or ())
    if isinstance(key, tuple):
        on += [f"DBT_INTERNAL_SOURCE.{k} = DBT_INTERNAL_DEST.{k}" for k in key]
    elif key:
        # postgres__equals without the truthy-nulls behaviour flag (its default)
        on.append(f"(DBT_INTERNAL_SOURCE.{key} = DBT_INTERNAL_DEST.{key})")
    else:
        on.append("FALSE")
    cols = ", ".join(ident(c) for c in dest)
    sql = (
        f"merge into {target} as DBT_INTERNAL_DEST\n        using {tmp} as DBT_INTERNAL_SOURCE\n"
        f"        on ({') and ('.join(on)})\n"
    )
    if key:
        sets = ", ".join(f"{ident(c)} = DBT_INTERNAL_SOURCE.{ident(c)}" for c in dest)
        sql += f"    when matched then update set\n        {sets}\n"
    return sql + f"    when not matched then insert\n        ({cols})\n    values\n        ({cols})"
