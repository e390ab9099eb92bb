"""Who executes a dbt node (sqlorch.dbt.native): each reason dbt keeps a node, from the manifest."""

from __future__ import annotations

from typing import Any

import pytest

from sqlorch.dbt.native import model_blocker, own_materializations
from sqlorch.errors import ProjectError

TABLE = {"materialized": "table"}

CASES: list[tuple[dict[str, Any], dict[str, Any], list[str], str]] = [
    # (node fields, config, code rendered into it, expected reason)
    ({}, TABLE, ["select 1"], ""),
    ({}, {"materialized": "view"}, ["select 1"], ""),
    ({"resource_type": "seed"}, {"materialized": "seed"}, [], ""),
    (
        {"resource_type": "seed"},
        {"materialized": "seed", "fast": False},
        [],
        "dbt: seed with fast: false (agate inserts its parsed values)",
    ),
    (
        {"resource_type": "seed"},
        {"materialized": "seed", "quote_columns": "yes"},
        [],
        "dbt: quote_columns 'yes'",
    ),
    (
        {"resource_type": "seed"},
        {"materialized": "seed", "delimiter": "'"},
        [],
        'dbt: delimiter "\'"',
    ),
    (
        {"resource_type": "seed"},
        {"materialized": "seed", "post-hook": [{"sql": "x"}]},
        [],
        "dbt: has post-hook",
    ),
    ({"resource_type": "snapshot"}, {"materialized": "snapshot"}, [], "dbt: snapshot"),
    ({"language": "python"}, TABLE, [], "dbt: python model"),
    ({}, {"materialized": "incremental"}, [], ""),
    ({}, {"materialized": "incremental", "incremental_strategy": "append"}, [], ""),
    ({}, {"materialized": "incremental", "unique_key": ["a", "b"]}, [], ""),
    ({}, {"materialized": "incremental", "incremental_strategy": "merge"}, [], ""),
    (
        {},
        {"materialized": "incremental", "incremental_strategy": "insert_overwrite"},
        [],
        "dbt: incremental_strategy 'insert_overwrite'",
    ),
    (
        {},
        {"materialized": "incremental", "incremental_strategy": "microbatch"},
        [],
        "dbt: incremental_strategy 'microbatch'",
    ),
    (
        {},
        {
            "materialized": "incremental",
            "incremental_strategy": "merge",
            "merge_update_columns": ["a"],
        },
        [],
        "dbt: merge options (merge_update_columns)",
    ),
    ({}, {"materialized": "incremental", "unique_key": 5}, [], "dbt: unique_key 5"),
    (
        {},
        {"materialized": "incremental", "incremental_predicates": "a > 1"},
        [],
        "dbt: incremental_predicates 'a > 1'",
    ),
    ({}, {"materialized": "incremental", "full_refresh": "yes"}, [], "dbt: full_refresh 'yes'"),
    (
        {},
        {"materialized": "incremental", "post-hook": [{"sql": "x"}]},
        [],
        "dbt: has post-hook",
    ),
    ({}, {"materialized": "external"}, [], "dbt: custom materialization 'external'"),
    ({}, {**TABLE, "post-hook": [{"sql": "x"}]}, [], "dbt: has post-hook"),
    ({}, {**TABLE, "pre-hook": [{"sql": "x"}]}, [], "dbt: has pre-hook"),
    ({}, {**TABLE, "contract": {"enforced": True}}, [], "dbt: contract enforced"),
    ({}, {**TABLE, "grants": {"select": ["r"]}}, [], "dbt: grants"),
    ({}, {**TABLE, "persist_docs": {"relation": True}}, [], "dbt: persist_docs"),
    ({}, {**TABLE, "sql_header": "set x = 1"}, [], "dbt: sql_header"),
    (
        {},
        {**TABLE, "meta": {"sqlorch": {"execution": "dbt"}}},
        [],
        "dbt: meta.sqlorch.execution is 'dbt'",
    ),
    (
        {},
        TABLE,
        ["select '{{ run_started_at }}'"],
        "dbt: renders the run's moment (run_started_at, invocation_id, datetime)",
    ),
    (
        {},
        TABLE,
        ["{% set r = run_query('select 1') %}"],
        "dbt: introspective SQL (run_query, adapter calls, ...)",
    ),
    (
        {},
        TABLE,
        ["{{ adapter.get_columns_in_relation(ref('a')) }}"],
        "dbt: introspective SQL (run_query, adapter calls, ...)",
    ),
    ({}, TABLE, ["{{ adapter.dispatch('x')() }} select 1"], ""),
]


@pytest.mark.parametrize(("fields", "config", "code", "expected"), CASES)
def test_reasons(
    fields: dict[str, Any], config: dict[str, Any], code: list[str], expected: str
) -> None:
    node = {"resource_type": "model", "name": "m", "original_file_path": "models/m.sql", **fields}
    got = model_blocker(node, config, code, unit_tested=False, own_materializations=frozenset())
    assert got == expected


def test_unit_tests_and_own_materializations_keep_a_model_with_dbt() -> None:
    node = {"resource_type": "model", "name": "m"}
    assert model_blocker(node, TABLE, [], unit_tested=True, own_materializations=frozenset()) == (
        "dbt: has unit tests"
    )
    macros = {
        "macro.shop.materialization_table_default": {
            "name": "materialization_table_default",
            "package_name": "shop",
        },
        "macro.dbt.materialization_view_default": {
            "name": "materialization_view_default",
            "package_name": "dbt",
        },
    }
    own = own_materializations(macros)
    assert own == {"table"}
    redefined = {
        "macro.shop.duckdb__get_delete_insert_merge_sql": {
            "name": "duckdb__get_delete_insert_merge_sql",
            "package_name": "shop",
        },
        "macro.shop.load_csv_rows": {"name": "load_csv_rows", "package_name": "shop"},
    }
    assert own_materializations(redefined) == {"incremental", "seed"}
    seed = {"resource_type": "seed", "name": "s"}
    assert model_blocker(
        seed,
        {"materialized": "seed"},
        [],
        unit_tested=False,
        own_materializations=frozenset({"seed"}),
    ) == ("dbt: the project redefines how dbt loads seeds")
    got = model_blocker(node, TABLE, [], unit_tested=False, own_materializations=own)
    assert got == "dbt: custom materialization 'table'"


def test_a_bad_execution_value_names_the_model_and_file() -> None:
    node = {"resource_type": "model", "name": "m", "original_file_path": "models/m.sql"}
    config = {**TABLE, "meta": {"sqlorch": {"execution": "fast"}}}
    with pytest.raises(ProjectError, match=r"dbt model 'm' \(models/m.sql\): meta.sqlorch"):
        model_blocker(node, config, [], unit_tested=False, own_materializations=frozenset())
