"""Reading `DESCRIBE TABLE EXTENDED` (the rows are Spark 4.3's own, copied from a session).

No JVM: the real statement runs in every Spark build test (columns, partition columns and the
table type of each built table are read this way).
"""

from __future__ import annotations

from sqlorch.core.graph import Column
from sqlorch.warehouse.spark_catalog import parse_description

PARTITIONED = [
    ("v", "bigint"),
    ("day", "date"),
    ("# Partition Information", ""),
    ("# col_name", "data_type"),
    ("day", "date"),
    ("", ""),
    ("# Detailed Table Information", ""),
    ("Catalog", "spark_catalog"),
    ("Database", "d"),
    ("Table", "p"),
    ("Type", "MANAGED"),
    ("Provider", "parquet"),
    ("Location", "file:/tmp/s4desc/wh/d.db/p"),
    ("Partition Provider", "Catalog"),
]

VIEW = [
    ("id", "bigint"),
    ("s", "string"),
    ("", ""),
    ("# Detailed Table Information", ""),
    ("Table", "v"),
    ("Type", "VIEW"),
    ("View Text", "select t.id, t.s from d.t t join d.t t2 using (id)"),
    ("View Query Output Columns", "[`id`, `s`]"),
    ("Table Properties", "[transient_lastDdlTime=1796151517]"),
]


def test_a_partitioned_tables_description_gives_its_columns_partitions_and_type() -> None:
    info = parse_description(PARTITIONED)
    assert info.columns == (Column("v", "bigint"), Column("day", "date"))
    assert info.partitions == ("day",)
    assert info.kind == "MANAGED"


def test_a_views_description_has_no_partitions_and_its_detail_rows_are_not_columns() -> None:
    info = parse_description(VIEW)
    assert info.columns == (Column("id", "bigint"), Column("s", "string"))
    assert info.partitions == ()
    assert info.kind == "VIEW"


def test_complex_column_types_are_kept_whole() -> None:
    rows = [("a", "array<bigint>"), ("st", "struct<x:bigint>"), ("dd", "decimal(10,2)")]
    info = parse_description([*rows, ("", ""), ("# Detailed Table Information", "")])
    assert [(c.name, c.type) for c in info.columns] == rows
    assert info.kind == ""
