"""Window templates: cutting sentinel bounds out of compiled SQL, dbt's test outcome rules."""

from __future__ import annotations

import duckdb
import pytest

from sqlorch.dbt.datatests import DataTest
from sqlorch.dbt.templates import Template, cut, inputs_of


def test_cut_and_render_round_trip() -> None:
    sql = "select * from t where d >= '2987-03-11' and d < '2987-03-12' -- '2987-03-11'"
    parts = cut(sql, {"start_date": "2987-03-11", "end_date": "2987-03-12"})
    assert parts == (
        "select * from t where d >= '",
        "start_date",
        "' and d < '",
        "end_date",
        "' -- '",
        "start_date",
        "'",
    )
    t = Template("m", "x", parts, microbatch=False)
    assert t.render({"start_date": "2013-03-01", "end_date": "2013-04-01"}) == (
        "select * from t where d >= '2013-03-01' and d < '2013-04-01' -- '2013-03-01'"
    )


def test_cut_prefers_the_longest_sentinel_and_none_without_one() -> None:
    values = {"a": "2987-03-11", "b": "2987-03-11 05:00:00"}
    assert cut("x '2987-03-11 05:00:00' y", values) == ("x '", "b", "' y")
    assert cut("select 1", values) is None


def run(test: DataTest) -> tuple[str, str]:
    con = duckdb.connect()
    con.execute("create table t as select * from range(5) r(i)")
    row = con.execute(test.query()).fetchone()
    assert row is not None
    return test.outcome(int(row[0]), bool(row[1]), bool(row[2]))


def test_test_outcomes_follow_dbts_rules() -> None:
    failing = "select * from t where i > 2"  # two rows
    fail = ("fail", "Got 2 results, configured to fail if != 0")
    assert run(DataTest("t1", failing)) == fail
    assert run(DataTest("t2", "select * from t where i > 9")) == ("pass", "")
    warn = DataTest("t3", failing, severity="WARN")
    assert run(warn) == ("warn", "Got 2 results, configured to warn if != 0")
    # thresholds: fail above 2, warn above 1
    both = DataTest("t4", failing, warn_if=">1", error_if=">2")
    assert run(both) == ("warn", "Got 2 results, configured to warn if >1")
    limited = DataTest("t5", failing, limit=1)
    assert run(limited) == ("fail", "Got 1 result, configured to fail if != 0")
    summed = DataTest("t6", failing + ";", fail_calc="sum(i)")
    assert run(summed) == ("fail", "Got 7 results, configured to fail if != 0")


def test_a_template_is_valid_for_the_env_vars_its_sql_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sqlorch.core.graph import AssetKind, AssetNode
    from sqlorch.dbt.meta import direct_facts as _direct_facts

    nodes = {
        "model.p.eph": {
            "config": {"materialized": "ephemeral"},
            "raw_code": "select '{{ env_var('IN_EPHEMERAL') }}'",
            "depends_on": {"nodes": [], "macros": []},
        }
    }
    macros = {
        "macro.p.m": {"macro_sql": "{{ env_var('FROM_MACRO') }}", "depends_on": {"macros": []}}
    }
    model = {
        "raw_code": "select '{{ env_var(\"REGION\", 'eu') }}'",
        "depends_on": {"nodes": ["model.p.eph"], "macros": ["macro.p.m"]},
    }
    facts = _direct_facts(model, {"materialized": "incremental"}, nodes, {}, macros)
    names = facts["sqlorch_env_vars"]
    assert names == ["FROM_MACRO", "IN_EPHEMERAL", "REGION"]
    assert facts["sqlorch_direct_blocker"] == ""
    node = AssetNode(
        key="main.m", kind=AssetKind.MODEL, name="m", metadata={"sqlorch_env_vars": names}
    )
    monkeypatch.setenv("REGION", "eu")
    first = inputs_of(node)
    assert inputs_of(node) == first
    monkeypatch.setenv("REGION", "us")
    assert inputs_of(node) != first
