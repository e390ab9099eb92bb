"""Spark partitions as `SHOW PARTITIONS` prints them, matched against sqlorch's window filters.

The filters are sqlorch's (DuckDB's SQL, `?` parameters): they are evaluated on the
partition values, or on a chunk's Arrow data, in an in-memory DuckDB (no Spark job).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Spark's partition column types as DuckDB reads them (evaluating a window's filter)
_DUCKDB_TYPES = {
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "timestamp_ntz": "TIMESTAMP",
    "tinyint": "TINYINT",
    "smallint": "SMALLINT",
    "int": "INTEGER",
    "bigint": "BIGINT",
    "boolean": "BOOLEAN",
}
_NULL = "__HIVE_DEFAULT_PARTITION__"


def spec_string(value: str) -> str:
    """Return `value` as a Spark string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def spec_names(spec: str) -> list[str]:
    """The partition columns of a spec (`a=1/b=x`: a, b)."""
    return [part.split("=", 1)[0] for part in spec.split("/")]


def spec_values(spec: str) -> tuple[str | None, ...]:
    """The values of a spec (None for Hive's NULL partition)."""
    from urllib.parse import unquote

    values = (unquote(part.split("=", 1)[1]) for part in spec.split("/"))
    return tuple(None if v == _NULL else v for v in values)


def matching_specs(
    specs: list[str], types: Mapping[str, str], where: str, params: list[Any]
) -> list[str]:
    """The partitions (as `SHOW PARTITIONS` prints them) whose values satisfy `where`.

    `where` is sqlorch's partition filter (DuckDB's SQL, `?` parameters): it is evaluated on
    the partition values in an in-memory DuckDB, typed as the table's columns.
    """
    import duckdb
    import pyarrow as pa

    from sqlorch.warehouse.sql import quote_ident as ansi

    names = spec_names(specs[0])
    rows = [spec_values(s) for s in specs]
    parts = pa.table(
        {f"__p{i}": pa.array([r[i] for r in rows], pa.string()) for i in range(len(names))}
        | {"__i": pa.array(range(len(rows)), pa.int64())}
    )
    typed = ", ".join(
        f"TRY_CAST(__p{i} AS {_DUCKDB_TYPES.get(types.get(n, '').lower(), 'VARCHAR')}) AS {ansi(n)}"
        for i, n in enumerate(names)
    )
    con = duckdb.connect()
    try:
        con.register("__parts", parts)
        found = con.execute(
            f"SELECT __i FROM (SELECT {typed}, __i FROM __parts) WHERE {where}", params
        ).fetchall()
    finally:
        con.close()
    return [specs[i] for (i,) in found]


def inspect_partitions(
    table: Any, where: str, params: list[Any], columns: tuple[str, ...]
) -> tuple[int, set[tuple[str | None, ...]]]:
    """Rows of Arrow `table` outside `where`, and the partition values it has rows for.

    Computed by an in-memory DuckDB over the Arrow data (no Spark job); values are the
    text Spark prints in partition specs (dates as 2013-01-01).
    """
    import duckdb

    from sqlorch.warehouse.sql import quote_ident as ansi

    con = duckdb.connect()
    try:
        con.register("__input", table)
        row = con.execute(
            f"SELECT count(*) FROM __input WHERE NOT coalesce(({where}), false)", params
        ).fetchone()
        cols = ", ".join(f"CAST({ansi(c)} AS VARCHAR)" for c in columns)
        present = {tuple(r) for r in con.execute(f"SELECT DISTINCT {cols} FROM __input").fetchall()}
    finally:
        con.close()
    return (int(row[0]) if row else 0), present
