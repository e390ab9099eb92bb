"""dbt features a dbt user relies on behave under sqlorch as under `dbt build`.

A project with a local package (its model and macros), a `dispatch` override of a package
macro, an enforced contract, a Python model, a unit test and a versioned model is built by
plain `dbt build` and by `sqlorch build` (each in its own copy): the same relations with the
same contents. The package is written into `dbt_packages/` as `dbt deps` would leave it.
"""

from __future__ import annotations

from collections import Counter

import pytest
from conftest import query, run_cli, run_dbt, tables, write_dbt_project

pytestmark = pytest.mark.dbt

FILES = {
    "dbt_project.yml": """
        name: feat
        version: "1.0.0"
        config-version: 2
        profile: feat
        model-paths: [models]
        dispatch:
          - macro_namespace: util_pkg
            search_order: [feat, util_pkg]
    """,
    "dbt_packages/util_pkg/dbt_project.yml": """
        name: util_pkg
        version: "1.0.0"
        config-version: 2
        model-paths: [models]
        macro-paths: [macros]
    """,
    "dbt_packages/util_pkg/macros/label.sql": """
        {% macro label(x) %}{{ return(adapter.dispatch('label', 'util_pkg')(x)) }}{% endmacro %}
        {% macro default__label(x) %}'pkg-' || {{ x }}{% endmacro %}
    """,
    "dbt_packages/util_pkg/models/pkg_numbers.sql": """
        {{ config(materialized='table') }}
        select range as n from range(5)
    """,
    # the root project's override wins through `dispatch`
    "macros/label.sql": """
        {% macro duckdb__label(x) %}'root-' || {{ x }}{% endmacro %}
    """,
    "models/labelled.sql": """
        {{ config(materialized='table') }}
        select n, {{ util_pkg.label('cast(n as varchar)') }} as label
        from {{ ref('util_pkg', 'pkg_numbers') }}
    """,
    "models/contracted.sql": """
        {{ config(materialized='table') }}
        select cast(n as integer) as n, label from {{ ref('labelled') }}
    """,
    "models/py_doubled.py": """
def model(dbt, session):
    dbt.config(materialized="table")
    return dbt.ref("contracted").df().assign(doubled=lambda d: d.n * 2)
    """,
    "models/versioned.sql": """
        {{ config(materialized='table') }}
        select n from {{ ref('contracted') }} where n < 3
    """,
    "models/schema.yml": """
        version: 2
        models:
          - name: contracted
            config:
              contract: {enforced: true}
            columns:
              - name: n
                data_type: integer
                constraints: [{type: not_null}]
              - name: label
                data_type: varchar
          - name: versioned
            latest_version: 1
            versions:
              - v: 1
        unit_tests:
          - name: labelled_uses_the_root_override
            model: labelled
            given:
              - input: ref('util_pkg', 'pkg_numbers')
                rows: [{n: 7}]
            expect:
              rows: [{n: 7, label: root-7}]
    """,
}


def test_packages_dispatch_contracts_python_models_and_unit_tests_match_dbt(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    root = tmp_path_factory.mktemp("features")
    plain = write_dbt_project(root / "dbt", FILES, name="feat")
    ours = write_dbt_project(root / "sqlorch", FILES, name="feat")
    done = run_dbt(plain.path, "build")
    assert done.returncode == 0, done.stdout[-4000:]
    result = run_cli(ours.path, "build")
    assert result.exit_code == 0 and result.exception is None, result.describe()

    expected = tables(plain.db)
    assert tables(ours.db) == expected
    assert {"main.pkg_numbers", "main.labelled", "main.contracted", "main.py_doubled"} <= set(
        expected
    )
    for key in expected:
        sql = f'select * from "{key.split(".")[0]}"."{key.split(".")[1]}"'
        assert Counter(query(ours.db, sql)) == Counter(query(plain.db, sql)), key
    assert query(ours.db, "select label from main.labelled where n = 1") == [("root-1",)]

    assets = {a["key"]: a for a in run_cli(ours.path, "ls", "--json").json()}
    assert assets["main.pkg_numbers"]["kind"] == "model"  # the package's model is an asset
    run_id = run_cli(ours.path, "runs", "--json").json()[0]["run_id"]
    events = run_cli(ours.path, "logs", run_id, "--json").json_lines()
    passed = {e["data"].get("check") for e in events if e["kind"] == "check_passed"}
    assert "labelled_uses_the_root_override" in passed


def test_a_broken_contract_fails_like_dbt(tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp("contract")
    files = {
        **FILES,
        "models/contracted.sql": "{{ config(materialized='table') }} select 'x' as n, 1 as label",
    }
    ours = write_dbt_project(root / "sqlorch", files, name="feat")
    result = run_cli(ours.path, "build")
    assert result.exit_code == 1, result.describe()
    assert "contracted" in result.flat and "contract" in result.flat.lower()
    assert "main.contracted" not in tables(ours.db)
