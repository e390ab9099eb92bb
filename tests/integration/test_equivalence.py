"""sqlorch builds a dbt project to the same tables as plain `dbt build`.

A small hand-written project with seeds, an ephemeral model, an incremental model, a
snapshot, a macro, tests of warn and error severity, a singular test, a custom schema and
on-run-start / on-run-end hooks is built twice each way — plain `dbt build` (a subprocess, in
its own copy) and `sqlorch build` (in its own copy) — with new seed rows in between, so the
incremental model and the snapshot take their incremental paths. The sqlorch copy also has
a Python asset between two models, which forces the run into several dbt invocations: the
hooks must still run once per run and see the whole run.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import TinyProject, query, run_cli, run_dbt, tables, write_dbt_project

pytestmark = pytest.mark.dbt

HOOK_MODELS = (
    "{{ graph.nodes.values() | selectattr('resource_type', 'equalto', 'model') | list | length }}"
)

DBT_PROJECT = f"""
name: shop
version: "1.0.0"
config-version: 2
profile: shop
model-paths: [models]
seed-paths: [seeds]
snapshot-paths: [snapshots]
macro-paths: [macros]
test-paths: [dbt_tests]

on-run-start:
  - "create schema if not exists audit"
  - "create table if not exists audit.hook_log (hook varchar, results integer, models integer)"
  - "insert into audit.hook_log values ('start', null, {HOOK_MODELS})"
on-run-end:
  - "insert into audit.hook_log values ('end', {{{{ results | length }}}}, {HOOK_MODELS})"

seeds:
  shop:
    +schema: raw
    orders:
      +column_types:
        ordered_at: date

models:
  shop:
    staging:
      +materialized: ephemeral
    marts:
      +schema: marts
      +materialized: table
"""

CUSTOMERS_V1 = """id,name,tier,updated_at
1,Ann,gold,2024-01-01
2,Bob,silver,2024-01-01
3,Cid,bronze,2024-01-01
"""

# Bob moves up a tier (a new snapshot version), Dee arrives
CUSTOMERS_V2 = """id,name,tier,updated_at
1,Ann,gold,2024-01-01
2,Bob,gold,2024-02-01
3,Cid,bronze,2024-01-01
4,Dee,silver,2024-02-01
"""

ORDERS_V1 = """id,customer_id,amount_cents,status,ordered_at
1,1,1250,shipped,2024-01-02
2,1,990,shipped,2024-01-03
3,2,15000,returned,2024-01-03
4,3,450,placed,2024-01-04
"""

ORDERS_V2 = (
    ORDERS_V1
    + """5,4,2000,placed,2024-02-02
6,2,700,shipped,2024-02-03
"""
)

FILES = {
    "dbt_project.yml": DBT_PROJECT,
    "seeds/customers.csv": CUSTOMERS_V1,
    "seeds/orders.csv": ORDERS_V1,
    "macros/money.sql": """
        {% macro cents_to_dollars(column, digits=2) -%}
            round({{ column }} / 100.0, {{ digits }})
        {%- endmacro %}
    """,
    "models/staging/stg_orders.sql": """
        select
            id as order_id,
            customer_id,
            {{ cents_to_dollars('amount_cents') }} as amount,
            status,
            ordered_at
        from {{ ref('orders') }}
    """,
    "models/marts/customer_orders.sql": """
        select
            c.id as customer_id,
            c.name,
            count(o.order_id) as orders,
            coalesce(sum(o.amount), 0) as revenue
        from {{ ref('customers') }} c
        left join {{ ref('stg_orders') }} o on o.customer_id = c.id
        group by 1, 2
    """,
    "models/marts/orders_incremental.sql": """
        {{ config(materialized='incremental', unique_key='order_id') }}
        select order_id, customer_id, amount, status, ordered_at
        from {{ ref('stg_orders') }}
        {% if is_incremental() %}
        where ordered_at > (select max(ordered_at) from {{ this }})
        {% endif %}
    """,
    "models/marts/order_summary.sql": """
        {{ config(materialized='view') }}
        select status, count(*) as orders, sum(amount) as amount
        from {{ ref('orders_incremental') }}
        group by status
    """,
    "models/top_customer.sql": """
        select customer_id, name from {{ ref('customer_orders') }}
        order by revenue desc limit 1
    """,
    "models/schema.yml": """
        version: 2
        models:
          - name: customer_orders
            columns:
              - name: customer_id
                data_tests: [unique, not_null]
          - name: orders_incremental
            columns:
              - name: order_id
                data_tests: [unique, not_null]
              - name: status
                data_tests:
                  - accepted_values:
                      arguments:
                        values: [shipped, placed]
                      config:
                        severity: warn
    """,
    "snapshots/customers_snapshot.yml": """
        snapshots:
          - name: customers_snapshot
            relation: ref('customers')
            config:
              schema: snapshots
              unique_key: id
              strategy: timestamp
              updated_at: updated_at
    """,
    "dbt_tests/assert_revenue_is_positive.sql": """
        select * from {{ ref('customer_orders') }} where revenue < 0
    """,
}

# Only in the sqlorch copy: a Python asset between two models forces a second dbt invocation.
SQLORCH_EXTRA = {
    "models/py_sources.yml": """
        version: 2
        sources:
          - name: scoring
            schema: scoring
            tables:
              - name: customer_scores
    """,
    "models/marts/scored_customers.sql": """
        select o.customer_id, o.name, s.score
        from {{ ref('customer_orders') }} o
        join {{ source('scoring', 'customer_scores') }} s using (customer_id)
    """,
}
SQLORCH_PYTHON = {
    "ingest/scoring.py": """
        from sqlorch import asset


        @asset(schema="scoring", deps=["customer_orders"])
        def customer_scores(context):
            return context.warehouse.connection.sql(
                "select customer_id, revenue * 2 as score from main_marts.customer_orders"
            )
    """
}
SQLORCH_ONLY = {"scoring.customer_scores", "main_marts.scored_customers"}


@dataclass
class Builds:
    dbt: TinyProject
    sqlorch: TinyProject
    sqlorch_runs: list[dict[str, Any]]
    sqlorch_events: list[list[dict[str, Any]]]
    dbt_outputs: list[str]


def _dbt_build(project: TinyProject) -> str:
    done = run_dbt(project.path, "build")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    return done.stdout


def _sqlorch_build(project: TinyProject) -> str:
    result = run_cli(project.path, "build")
    assert result.exit_code == 0 and result.exception is None, result.describe()
    runs = run_cli(project.path, "runs", "--json").json()
    return str(runs[0]["run_id"])


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Builds:
    root = tmp_path_factory.mktemp("equivalence")
    dbt_copy = write_dbt_project(root / "dbt", FILES, name="shop")
    sqlorch_copy = write_dbt_project(
        root / "sqlorch", {**FILES, **SQLORCH_EXTRA}, SQLORCH_PYTHON, name="shop"
    )
    outputs = [_dbt_build(dbt_copy)]
    run_ids = [_sqlorch_build(sqlorch_copy)]
    # new and changed rows: the incremental model and the snapshot take their incremental path
    for project in (dbt_copy, sqlorch_copy):
        project.write({"seeds/customers.csv": CUSTOMERS_V2, "seeds/orders.csv": ORDERS_V2})
    outputs.append(_dbt_build(dbt_copy))
    run_ids.append(_sqlorch_build(sqlorch_copy))
    runs = run_cli(sqlorch_copy.path, "runs", "--json").json()
    events = [run_cli(sqlorch_copy.path, "logs", r, "--json").json_lines() for r in run_ids]
    return Builds(dbt_copy, sqlorch_copy, runs, events, outputs)


def _contents(db: Path, key: str) -> Counter[tuple[Any, ...]]:
    schema, name = key.split(".", 1)
    return Counter(query(db, f'select * from "{schema}"."{name}"'))


def _columns(db: Path, key: str) -> list[tuple[str, str]]:
    schema, name = key.split(".", 1)
    return [
        (c, t)
        for c, t in query(
            db,
            "select column_name, data_type from information_schema.columns "
            "where table_schema = ? and table_name = ? order by ordinal_position",
            [schema, name],
        )
    ]


def test_same_relations_as_dbt_build(builds: Builds) -> None:
    expected = tables(builds.dbt.db)
    got = {k: v for k, v in tables(builds.sqlorch.db).items() if k not in SQLORCH_ONLY}
    assert got == expected
    # the project's features are all there: custom schemas, snapshot, no ephemeral relation
    assert {
        "main_raw.customers",
        "main_raw.orders",
        "main_marts.customer_orders",
        "main_marts.orders_incremental",
        "main_marts.order_summary",
        "main.top_customer",
        "main_snapshots.customers_snapshot",
        "audit.hook_log",
    } <= set(expected)
    assert not [k for k in expected if k.endswith("stg_orders")]
    assert SQLORCH_ONLY <= set(tables(builds.sqlorch.db))


def test_same_columns_rows_and_contents_as_dbt_build(builds: Builds) -> None:
    compared = 0
    for key in tables(builds.dbt.db):
        if key == "audit.hook_log":
            continue  # compared in the hook tests
        assert _columns(builds.sqlorch.db, key) == _columns(builds.dbt.db, key), key
        want = _contents(builds.dbt.db, key)
        got = _contents(builds.sqlorch.db, key)
        assert sum(got.values()) == sum(want.values()), f"{key}: row counts differ"
        assert got == want, f"{key}: only in sqlorch {got - want}, only in dbt {want - got}"
        compared += 1
    assert compared == 7


def test_incremental_model_and_snapshot_took_the_incremental_path(builds: Builds) -> None:
    for db in (builds.dbt.db, builds.sqlorch.db):
        assert query(db, "select count(*) from main_marts.orders_incremental") == [(6,)]
        versions = query(
            db,
            "select id, tier, dbt_valid_to is null from main_snapshots.customers_snapshot "
            "order by id, dbt_valid_from",
        )
        assert versions == [
            (1, "gold", True),
            (2, "silver", False),
            (2, "gold", True),
            (3, "bronze", True),
            (4, "silver", True),
        ]


def test_warn_test_warned_and_error_tests_passed(builds: Builds) -> None:
    # plain dbt: one warning (status 'returned' is not an accepted value), no errors
    assert "WARN=1" in builds.dbt_outputs[-1] and "ERROR=0" in builds.dbt_outputs[-1]
    events = builds.sqlorch_events[-1]
    warned = [e["data"].get("check") for e in events if e["kind"] == "check_warned"]
    failed = [e for e in events if e["kind"] == "check_failed"]
    passed = {e["data"].get("check") for e in events if e["kind"] == "check_passed"}
    assert len(warned) == 1 and warned[0].startswith("accepted_values_orders_incremental_status")
    assert not failed
    assert "assert_revenue_is_positive" in passed
    assert "unique_customer_orders_customer_id" in passed
    assert all(r["status"] == "success" for r in builds.sqlorch_runs)


def test_run_needed_several_dbt_invocations(builds: Builds) -> None:
    for events in builds.sqlorch_events:
        invocations = [e for e in events if e["kind"] == "dbt_invocation_started"]
        assert len(invocations) >= 2, "the Python asset did not split the run"
    assert query(builds.sqlorch.db, "select count(*) from main_marts.scored_customers") == [(4,)]


def _hook_rows(db: Path) -> list[tuple[Any, ...]]:
    return query(db, "select hook, results, models from audit.hook_log")


def test_hooks_run_once_per_run(builds: Builds) -> None:
    for db, runs in ((builds.dbt.db, 2), (builds.sqlorch.db, len(builds.sqlorch_runs))):
        hooks = Counter(h for h, _, _ in _hook_rows(db))
        assert hooks == {"start": runs, "end": runs}, db
    assert len(builds.sqlorch_runs) == 2


def test_hooks_see_the_whole_project_graph(builds: Builds) -> None:
    dbt_models = {m for _, _, m in _hook_rows(builds.dbt.db)}
    sqlorch_models = {m for _, _, m in _hook_rows(builds.sqlorch.db)}
    assert dbt_models == {5}  # stg_orders, customer_orders, orders_incremental, ...
    assert sqlorch_models == {6}  # ... and scored_customers


@pytest.mark.xfail(
    reason="sqlorch/dbt/runner.py DbtInvoker._hooks_only / execute/dbt_steps.py DbtSteps.launch: "
    "on-run-end runs in the last dbt invocation only, so its `results` holds only that "
    "segment's nodes, not the whole run's",
    strict=True,
)
def test_on_run_end_sees_the_results_of_the_whole_run(builds: Builds) -> None:
    dbt_results = [r for h, r, _ in _hook_rows(builds.dbt.db) if h == "end"]
    sqlorch_results = [r for h, r, _ in _hook_rows(builds.sqlorch.db) if h == "end"]
    # the sqlorch copy has one more dbt node (scored_customers) than the plain dbt copy
    assert sqlorch_results == [n + 1 for n in dbt_results]
