"""Native seeds (issue 16): dbt's agate type inference and dbt-duckdb's COPY, proven by verify.

Seeds of every inferred type (integer, number with and without decimals, boolean, date,
timestamp, text), empty values (NULL), `column_types`, `quote_columns: false` and another
`delimiter` are loaded by dbt and natively from the same warehouse and compared by
`sqlorch verify`: the first load (create table), a reload after the CSV changed (dbt
truncates the table and keeps its types) and `--full-refresh` (drop and create).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from conftest import TinyProject, query, run_cli
from test_native_execution import not_imported_dbt

pytestmark = pytest.mark.dbt

Make = Callable[..., TinyProject]

FILES = {
    "seeds/kinds.csv": """
        id,price,ratio,flag,day,moment,label,empty_col
        1,10,1.5,true,2024-01-01,2024-01-01 10:00:00,a,
        2,20,2.25,false,2024-01-02,2024-01-02 11:30:00,,
        3,,3,,2024-01-03,,"c, quoted",
    """,
    "seeds/typed.csv": """
        code,amount,note
        007,1.10,x
        010,2.20,y
    """,
    "seeds/plain.csv": """
        Key;Value
        a;1
        b;2
    """,
    "seeds/schema.yml": """
        version: 2
        seeds:
          - name: typed
            config:
              column_types:
                code: varchar
                amount: decimal(10, 2)
          - name: plain
            config:
              delimiter: ";"
              quote_columns: false
            columns:
              - name: Key
                data_tests: [unique, not_null]
    """,
    "models/uses_seeds.sql": """
        {{ config(materialized='table') }}
        select k.id, t.code, p."Value" from {{ ref('kinds') }} k
        cross join {{ ref('typed') }} t cross join {{ ref('plain') }} p
    """,
}
SEEDS = ("main.kinds", "main.typed", "main.plain")


def _verify(project: TinyProject, *args: str) -> dict:
    result = run_cli(project.path, "verify", "--json", *args)
    doc = result.json()
    assert result.exit_code == 0 and doc["same"] is True, json.dumps(doc, indent=1)[:5000]
    how = {m["key"]: m["execution"] for m in doc["models"]}
    assert all(how[k] == "native" for k in SEEDS), how
    return doc


def test_seeds_natively_equal_dbt_first_load_reload_and_full_refresh(
    make_dbt_project: Make,
) -> None:
    project = make_dbt_project(FILES, name="seedy")
    # 1. the first load: the tables are created from agate's types
    doc = _verify(project)
    assert {m["key"]: m["rows"] for m in doc["models"]}["main.kinds"] == 3
    assert len(doc["tests"]) == 2
    assert run_cli(project.path, "build").exit_code == 0
    types = dict(
        query(
            project.db,
            "select column_name, data_type from "
            "information_schema.columns where table_name = 'kinds'",
        )
    )
    assert types == {
        "id": "INTEGER",
        "price": "INTEGER",
        "ratio": "DOUBLE",
        "flag": "BOOLEAN",
        "day": "DATE",
        "moment": "TIMESTAMP",
        "label": "VARCHAR",
        "empty_col": "INTEGER",
    }
    # unchanged CSVs: reloading them needs no dbt (their columns are cached)
    assert not_imported_dbt(project.path, "build", "--full", "-s", "kinds typed plain")
    # 2. the CSV changes (a new row, a value that agate now reads as a number with decimals):
    # without --full-refresh dbt truncates the table and keeps its column types
    project.write(
        {
            "seeds/kinds.csv": FILES["seeds/kinds.csv"].rstrip()
            + "\n"
            + ("        4,40.5,4,true,2024-01-04,2024-01-04 00:00:00,d,\n")
        }
    )
    doc = _verify(project)
    assert {m["key"]: m["rows"] for m in doc["models"]}["main.kinds"] == 4
    # 3. --full-refresh: dropped and created with the new types
    doc = _verify(project, "--full-refresh")
