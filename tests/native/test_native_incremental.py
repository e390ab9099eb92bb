"""Native incremental models (issue 16): dbt-duckdb's strategies and options, proven by verify.

Twin models cover each strategy (the default delete+insert with a key and with a list of
keys, append, merge with and without a key), `incremental_predicates`, every
`on_schema_change` and `full_refresh: false`. At each step `sqlorch verify` builds them from
the same warehouse with dbt and natively and compares relations, types, row counts and
content: the first build (no relation yet), an incremental build after new and changed raw
rows, a build after the models' columns change, and `--full-refresh`. Between steps the
project's own warehouse advances with a native `sqlorch build`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import TinyProject, query, run_cli, scalar

pytestmark = pytest.mark.dbt

Make = Callable[..., TinyProject]

# the new rows' filter every model shares
SINCE = "where true {% if is_incremental() %} and ts > (select max(ts) from {{ this }}) {% endif %}"
COLUMNS = "id, kind, amount, ts"
CHANGED = "id, amount::double as amount, ts, upper(kind) as note"  # kind gone, type, new
WIDER = f"{COLUMNS}, upper(kind) as note"  # on_schema_change ignore: the new column is not written


def _model(config: str, columns: str = COLUMNS) -> str:
    return f"{{{{ config(materialized='incremental', {config}) }}}}\n" + (
        f"select {columns} from {{{{ source('raw', 'events') }}}}\n{SINCE}\n"
    )


MODELS = {
    "inc_default": "unique_key='id'",
    "inc_keys": "unique_key=['id', 'kind'], incremental_strategy='delete+insert', "
    "incremental_predicates=[\"DBT_INCREMENTAL_TARGET.ts > '2024-01-01'\"]",
    "inc_pred": "unique_key='id', incremental_predicates=['amount >= 0']",
    "inc_append": "incremental_strategy='append'",
    "inc_merge": "unique_key='id', incremental_strategy='merge', "
    "incremental_predicates=[\"DBT_INTERNAL_DEST.ts > '2024-01-01'\"]",
    "inc_merge_keys": "unique_key=['id', 'kind'], incremental_strategy='merge'",
    "inc_merge_nokey": "incremental_strategy='merge'",
    "inc_ignore": "unique_key='id', on_schema_change='ignore'",
    "inc_add": "unique_key='id', on_schema_change='append_new_columns'",
    "inc_sync": "unique_key='id', on_schema_change='sync_all_columns'",
    "inc_sync_merge": "unique_key='id', incremental_strategy='merge', "
    "on_schema_change='sync_all_columns'",
    "inc_keep": "unique_key='id', full_refresh=false",
}
SCHEMA_CHANGING = ("inc_add", "inc_sync", "inc_sync_merge")

FILES = {
    "models/sources.yml": """
        version: 2
        sources:
          - name: raw
            schema: raw
            tables:
              - name: events
    """,
    **{f"models/{name}.sql": _model(config) for name, config in MODELS.items()},
    "models/inc_totals.sql": """
        {{ config(materialized='table') }}
        select kind, count(*) as n, sum(amount) as total from {{ ref('inc_default') }} group by 1
    """,
}


def _raw(db: Path, sql: str) -> None:
    import duckdb

    con = duckdb.connect(str(db))
    try:
        con.execute("create schema if not exists raw")
        con.execute(sql)
    finally:
        con.close()


def _verify(project: TinyProject, *args: str) -> dict[str, Any]:
    result = run_cli(project.path, "verify", "--json", *args)
    doc = result.json()
    assert result.exit_code == 0 and doc["same"] is True, json.dumps(doc, indent=1)[:5000]
    how = {m["key"]: m["execution"] for m in doc["models"]}
    assert all(how[f"main.{name}"] == "native" for name in MODELS), how
    return doc


def _advance(project: TinyProject) -> None:
    result = run_cli(project.path, "build", "--full")
    assert result.exit_code == 0, result.describe()


def test_incremental_models_natively_equal_dbt_at_every_step(make_dbt_project: Make) -> None:
    project = make_dbt_project(FILES, name="incr")
    _raw(
        project.db,
        "create table raw.events as select i as id, "
        "case when i % 3 = 0 then 'a' when i % 3 = 1 then 'b' else 'c' end as kind, "
        "(i * 1.5)::decimal(10, 2) as amount, "
        "timestamp '2024-01-01' + to_hours(i) as ts from range(1, 200) t(i)",
    )
    # 1. the first build: no relation yet (is_incremental() false: create table as)
    doc = _verify(project)
    rows = {m["key"]: m["rows"] for m in doc["models"]}
    assert rows["main.inc_default"] == 199
    _advance(project)
    # 2. new rows, and later versions of existing ids (the keyed strategies replace them)
    _raw(
        project.db,
        "insert into raw.events select i % 250 + 1 as id, "
        "case when i % 2 = 0 then 'a' else 'b' end, (i * -0.5)::decimal(10, 2), "
        "timestamp '2024-02-01' + to_hours(i) from range(150, 300) t(i)",
    )
    doc = _verify(project)
    rows = {m["key"]: m["rows"] for m in doc["models"]}
    assert rows["main.inc_append"] == 199 + 150
    assert rows["main.inc_default"] < rows["main.inc_append"]  # replaced, not appended
    assert rows["main.inc_merge_nokey"] == rows["main.inc_append"]  # ON FALSE: all inserted
    _advance(project)
    before = scalar(project.db, "select count(*) from main.inc_sync")
    # 3. the models' columns change: a column dropped, one retyped, one added
    _raw(
        project.db,
        "insert into raw.events select 1000 + i, 'z', i::decimal(10, 2), "
        "timestamp '2024-03-01' + to_hours(i) from range(0, 20) t(i)",
    )
    changed = {f"models/{n}.sql": _model(MODELS[n], CHANGED) for n in SCHEMA_CHANGING}
    project.write({**changed, "models/inc_ignore.sql": _model(MODELS["inc_ignore"], WIDER)})
    _verify(project)
    _advance(project)
    columns = query(
        project.db,
        "select column_name, data_type from information_schema.columns "
        "where table_name = 'inc_sync' order by ordinal_position",
    )
    # sync_all_columns: kind dropped, note added, amount retyped (moved last, as dbt does)
    assert columns == [("id", "BIGINT"), ("ts", "TIMESTAMP"), ("note", "VARCHAR")] + [
        ("amount", "DOUBLE")
    ]
    assert scalar(project.db, "select count(*) from main.inc_sync") == before + 20
    added = [r[:2] for r in query(project.db, "describe main.inc_add")]
    # append_new_columns: note added at the end, kind and amount's type kept
    assert added == [
        ("id", "BIGINT"),
        ("kind", "VARCHAR"),
        ("amount", "DECIMAL(10,2)"),
        ("ts", "TIMESTAMP"),
        ("note", "VARCHAR"),
    ]
    # 4. --full-refresh: rebuilt from scratch, except the model with full_refresh: false
    _verify(project, "--full-refresh")


def test_on_schema_change_fail_fails_both_ways_and_keeps_the_table(make_dbt_project: Make) -> None:
    files = {
        "models/sources.yml": FILES["models/sources.yml"],
        "models/strict.sql": _model("unique_key='id', on_schema_change='fail'"),
    }
    project = make_dbt_project(files, name="strict")
    _raw(
        project.db,
        "create table raw.events as select i as id, 'a' as kind, i::decimal(10, 2) as amount, "
        "timestamp '2024-01-01' + to_hours(i) as ts from range(1, 10) t(i)",
    )
    assert run_cli(project.path, "build").exit_code == 0
    strict = _model("unique_key='id', on_schema_change='fail'", CHANGED)
    project.write({"models/strict.sql": strict})
    _raw(project.db, "insert into raw.events values (50, 'b', 1, timestamp '2025-01-01')")
    result = run_cli(project.path, "verify", "--json")
    doc = result.json()
    assert result.exit_code == 1
    # both builds failed; the table each left is the old one, the same both ways
    assert doc["failed_runs"] == ["dbt", "native"], doc
    assert doc["models"][0]["same"] is True and doc["models"][0]["execution"] == "native"
    result = run_cli(project.path, "build")
    assert result.exit_code == 1
    assert "out of sync" in result.output, result.describe()
    assert scalar(project.db, "select count(*) from main.strict") == 9
    tables = [r[0] for r in query(project.db, "select table_name from information_schema.tables")]
    assert not [t for t in tables if "__dbt_" in t]
