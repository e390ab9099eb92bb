"""What Spark's catalog says of one table, read with one `DESCRIBE TABLE EXTENDED`.

pyspark's `Catalog.listColumns` executes a Dataset (`toLocalIterator`) and makes seven
gateway calls per column; `getTable` is a metastore call of its own. One DESCRIBE is one
metastore call, no job, and says the columns, the partition columns and the table's type.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from sqlorch.core.graph import Column


@dataclasses.dataclass(frozen=True, slots=True)
class TableInfo:
    """A table's columns (in order), its partition columns and its type."""

    columns: tuple[Column, ...]
    partitions: tuple[str, ...]
    #: MANAGED, EXTERNAL or VIEW
    kind: str


def describe(spark: Any, quoted: str) -> TableInfo | None:
    """Describe the table or view `quoted` (a quoted Spark name); None when there is none."""
    try:
        rows = spark.sql(f"DESCRIBE TABLE EXTENDED {quoted}").collect()
    except Exception:  # noqa: BLE001 - pyspark's AnalysisException: no such table or database
        return None
    return parse_description((str(r[0] or ""), str(r[1] or "")) for r in rows)


def parse_description(rows: Iterable[tuple[str, str]]) -> TableInfo:
    """Read `DESCRIBE TABLE EXTENDED`'s rows (name, data type): the columns come first, then
    sections opened by a `# ...` row (`# Partition Information`, `# Detailed Table
    Information`), each ended by an empty row."""
    columns: list[Column] = []
    partitions: list[str] = []
    kind = ""
    section = ""
    for name, value in rows:
        if name.startswith("#"):
            if name != "# col_name":  # the header row of the partition columns
                section = name
            continue
        if not name:
            section = "end of a section"
            continue
        if not section:
            columns.append(Column(name, value))
        elif section == "# Partition Information":
            partitions.append(name)
        elif section == "# Detailed Table Information" and name == "Type":
            kind = value.upper()
    return TableInfo(tuple(columns), tuple(partitions), kind)
