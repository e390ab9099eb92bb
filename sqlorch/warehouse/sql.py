"""SQL text helpers shared by the warehouses: quoting, and the rows of a partition range."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlorch.core.partitions.definitions import PartitionsDefinition, TimeWindows
from sqlorch.core.partitions.ranges import Prefix


def quote_ident(name: str) -> str:
    """Quote a column name for SQL (double quotes, as DuckDB and PostgreSQL read them)."""
    return '"' + name.replace('"', '""') + '"'


def quote_key(key: str) -> str:
    """Return `schema.name` as a quoted identifier."""
    return ".".join(quote_ident(part) for part in key.split(".", 1))


def filter_sql(
    definition: PartitionsDefinition, prefix: Prefix, lo: int, hi: int
) -> tuple[str, list[Any]]:
    """The predicate (with `?` parameters) that holds exactly the rows of partitions lo..hi.

    Time columns compare with the window's wall-clock bounds in the definition's time zone
    (a DATE or TIMESTAMP column holds local time); static columns by equality. Dimensions
    without a `column` add no condition.
    """
    parts: list[str] = []
    params: list[Any] = []
    others = iter(prefix)
    for i, d in enumerate(definition.dimensions):
        if isinstance(d, TimeWindows):
            if d.column:
                col = quote_ident(d.column)
                parts.append(f"{col} >= ?::TIMESTAMP AND {col} < ?::TIMESTAMP")
                params += [
                    d.window_start(lo).replace(tzinfo=None),
                    d.window_end(hi).replace(tzinfo=None),
                ]
            continue
        if i == definition.axis:
            if d.column:
                keys = list(d.keys[lo : hi + 1])
                marks = ", ".join("?" for _ in keys)
                parts.append(f"{quote_ident(d.column)} IN ({marks})")
                params += keys
            continue
        value = next(others)
        if d.column:
            parts.append(f"{quote_ident(d.column)} = ?")
            params.append(value)
    return (" AND ".join(f"({p})" for p in parts) or "TRUE"), params


def query_body(sql: str) -> str:
    """A compiled query as a subquery body: no trailing semicolon."""
    return sql.strip().rstrip(";").rstrip()


def drift(have: Mapping[str, str], got: Mapping[str, str]) -> str:
    """How columns `got` (name -> type) differ from a table's `have`, in words."""
    added = sorted(set(got) - set(have))
    removed = sorted(set(have) - set(got))
    changed = sorted(c for c in set(have) & set(got) if have[c] != got[c])
    parts = []
    if added:
        parts.append("new columns " + ", ".join(added))
    if removed:
        parts.append("dropped columns " + ", ".join(removed))
    if changed:
        parts.append(", ".join(f"{c} {have[c]} -> {got[c]}" for c in changed))
    return "; ".join(parts) or "columns differ"
