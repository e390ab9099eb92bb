"""dbt-postgres's names, column types and strategy statements as native execution renders them.

The facts come from dbt-postgres 1.11 / dbt-adapters: `postgres__make_relation_with_suffix`
cuts the name so name + suffix fit 63 characters; `PostgresColumn.data_type` keeps `text` and
unbounded varchar, sizes the rest; `Column.can_expand_to` counts `text` as 256; the default
delete+insert / merge / append macros. End-to-end equivalence is tests/postgres/test_native_pg.py.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from sqlorch.dbt.native import Incremental
from sqlorch.execute.native_pg_incremental import PgColumn, strategy_sql, temp_relation
from sqlorch.execute.native_pg_names import quoted, with_suffix


def _spec(strategy: str, key: object = None, preds: list[str] | None = None) -> Incremental:
    return Incremental.of(
        {"strategy": strategy, "unique_key": key, "predicates": preds, "on_schema_change": "ignore"}
    )


def test_suffixed_names_are_cut_to_63_characters_as_dbt_postgres_cuts_them() -> None:
    long = "t_" + "x" * 60
    tmp = with_suffix(("db", "main", long), "__dbt_tmp")
    assert len(tmp[2]) == 63 and tmp[2].endswith("x__dbt_tmp") and tmp[:2] == ("db", "main")
    assert with_suffix(("db", "s", "short"), "__dbt_backup")[2] == "short__dbt_backup"
    stamp = datetime.datetime(2024, 1, 2, 3, 4, 5, 678)
    temp = temp_relation(("db", "main", long), stamp)
    assert temp[2] == long[: 63 - 21] + "__dbt_tmp030405000678" and len(temp[2]) == 63
    assert quoted(("db", 'we"ird', "n")) == '"we""ird"."n"'  # no database, as dbt-postgres


def test_postgres_column_types_and_expansion_follow_dbt() -> None:
    assert PgColumn("a", "text").data_type == "text"
    assert PgColumn("a", "character varying").data_type == "character varying"
    assert PgColumn("a", "character varying", 20).data_type == "character varying(20)"
    assert PgColumn("a", "numeric", None, 10, 2).data_type == "numeric(10,2)"
    assert PgColumn("a", "numeric").data_type == "numeric"
    assert PgColumn("a", "integer").data_type == "integer"
    narrow, text = PgColumn("a", "character varying", 5), PgColumn("a", "text")
    assert narrow.can_expand_to(text) and not text.can_expand_to(narrow)  # text counts 256
    assert not PgColumn("a", "integer").can_expand_to(text)


def test_strategies_render_dbt_postgres_statements() -> None:
    cols = ["id", "v"]
    (append,) = strategy_sql(_spec("append"), '"s"."t"', '"tmp"', cols)
    assert append.startswith('insert into "s"."t" ("id", "v")') and 'from "tmp"' in append
    delete, insert = strategy_sql(_spec("delete+insert", ["id", "k"], ["x > 1"]), "T", "S", cols)
    assert "delete from T as DBT_INTERNAL_DEST" in delete
    assert "where (id, k) in (" in delete and "select distinct id, k" in delete
    assert delete.rstrip().endswith("and x > 1") and insert.startswith("insert into T")
    # no unique_key: dbt-postgres's default is append
    assert strategy_sql(_spec("delete+insert"), "T", "S", cols) == [
        append.replace('"s"."t"', "T").replace('"tmp"', "S")
    ]
    (merge,) = strategy_sql(_spec("merge", "id", ["p = 1"]), "T", "S", cols)
    assert "on (p = 1) and ((DBT_INTERNAL_SOURCE.id = DBT_INTERNAL_DEST.id))" in merge
    assert 'when matched then update set\n        "id" = DBT_INTERNAL_SOURCE."id"' in merge
    (nokey,) = strategy_sql(_spec("merge"), "T", "S", cols)
    assert "on (FALSE)" in nokey and "when matched" not in nokey


def test_the_truthy_nulls_flag_is_read_from_dbt_project_yml(tmp_path: Path) -> None:
    from sqlorch.dbt.native import dialect_of

    (tmp_path / "dbt_project.yml").write_text("name: x\n")
    assert dialect_of("postgres", tmp_path) == "postgres"
    flag = "flags:\n  enable_truthy_nulls_equals_macro: true\n"
    (tmp_path / "dbt_project.yml").write_text("name: x\n" + flag)
    assert dialect_of("postgres", tmp_path) == "postgres+truthy-nulls"
    assert dialect_of("duckdb", tmp_path) == "duckdb"
