"""Code versions: formatting does not count, every real input does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sqlorch.core.codeversion import describe_changes, normalize_sql, python_source_version
from sqlorch.dbt.codeversion import dbt_code_parts

SAME = [
    ("select a, b from t", "select a,b\nfrom   t"),
    ("select a from t", "-- leading comment\nselect a from t -- trailing"),
    ("select a from t", "select /* why */ a from t"),
    ("select a from {{ ref('t') }}", "select a from {{ref('t')}}  {# jinja comment #}"),
    ("{% if is_incremental() %}x{% endif %}", "{%  if is_incremental()  %}\n x\n{% endif %}"),
    ("select f(a, b)", "select f( a , b )"),
]
DIFFERENT = [
    ("select 'a b'", "select 'a  b'"),  # inside a string literal
    ("select '--x'", "select ''"),  # a comment marker inside a string is data
    ('select "A"', 'select "a"'),  # quoted identifiers keep case
    ("select a from t", "select a from u"),
    ("select a b", "select ab"),
    ("select {{ var('x') }}", "select {{ var('y') }}"),
]


@pytest.mark.parametrize(("a", "b"), SAME)
def test_formatting_and_comments_do_not_count(a: str, b: str) -> None:
    assert normalize_sql(a) == normalize_sql(b)


@pytest.mark.parametrize(("a", "b"), DIFFERENT)
def test_real_edits_count(a: str, b: str) -> None:
    assert normalize_sql(a) != normalize_sql(b)


def test_python_versions_ignore_comments_and_layout() -> None:
    a = "def f(x):\n    return x + 1\n"
    b = "def f(x):  # add one\n\n    return (x +\n            1)\n"
    assert python_source_version(a) == python_source_version(b)
    assert python_source_version(a) != python_source_version(a.replace("1", "2"))
    indented = "    def f(x):\n        return x + 1\n"
    assert python_source_version(indented) == python_source_version(a)


def test_describe_changes_without_change_still_says_code_changed() -> None:
    assert describe_changes({"sql": "1"}, {"sql": "1"}, file="m.sql") == ["code changed (m.sql)"]
    assert describe_changes({"source": "1"}, {"source": "2"}, file="i.py", line=3) == [
        "code changed (i.py:3)"
    ]
    assert describe_changes({"sql": "1", "macro:x": "1"}, {"sql": "1"}, file="m.sql") == [
        "no longer calls macro x"
    ]


def _manifest(**over: Any) -> dict[str, Any]:
    macros = {
        "macro.p.outer": {
            "name": "outer",
            "package_name": "p",
            "macro_sql": "{% macro outer() %}{{ inner() }}{% endmacro %}",
            "depends_on": {"macros": ["macro.p.inner"]},
        },
        "macro.p.inner": {
            "name": "inner",
            "package_name": "p",
            "macro_sql": "{% macro inner() %}{{ var('depth') }}{% endmacro %}",
            "depends_on": {"macros": []},
        },
        "macro.dep.helper": {
            "name": "helper",
            "package_name": "dep",
            "macro_sql": "{% macro helper() %}1{% endmacro %}",
            "depends_on": {"macros": []},
        },
    }
    node = {
        "resource_type": "model",
        "package_name": "p",
        "raw_code": "select {{ outer() }}, {{ helper() }}, '{{ var(\"region\") }}'",
        "config": {"materialized": "table", "tags": ["a"], "meta": {"owner": "x"}},
        "depends_on": {"macros": ["macro.p.outer", "macro.dep.helper"]},
    }
    node.update(over)
    return {"metadata": {"project_name": "p"}, "macros": macros, "nodes": {"model.p.m": node}}


def _parts(manifest: dict[str, Any], **vars_: Any) -> dict[str, str]:
    return dbt_code_parts(
        manifest, project_vars=vars_, target={"type": "duckdb"}, project_dir=Path(".")
    )["model.p.m"]


def test_dbt_parts_cover_macros_transitively_and_the_vars_they_read() -> None:
    parts = _parts(_manifest(), region="us", depth=1)
    assert set(parts) == {
        "sql",
        "config",
        "target",
        "macro:outer",
        "macro:inner",
        "macro:dep.helper",
        "var:depth",
        "var:region",
    }
    assert _parts(_manifest(), region="eu", depth=1)["var:region"] != parts["var:region"]
    # a package-scoped var wins over a global one
    scoped = _parts(_manifest(), region="us", depth=1, p={"depth": 2})
    assert scoped["var:depth"] != parts["var:depth"] and scoped["var:region"] == parts["var:region"]


def test_dbt_config_noise_does_not_count_but_real_config_does() -> None:
    base = _parts(_manifest())
    quiet = _manifest(config={"materialized": "table", "tags": ["b"], "meta": {"owner": "y"}})
    assert _parts(quiet)["config"] == base["config"]
    loud = _manifest(config={"materialized": "view", "tags": ["a"]})
    assert _parts(loud)["config"] != base["config"]
    sqlorch_meta = _manifest(config={"materialized": "table", "meta": {"sqlorch": {"x": 1}}})
    assert _parts(sqlorch_meta)["config"] != base["config"]


def test_a_changed_partition_mapping_changes_the_dbt_code_version() -> None:
    def with_deps(deps: Any) -> dict[str, str]:
        meta = {"sqlorch": {"partitions": {"type": "daily", "start": "2024-01-01"}, "deps": deps}}
        return _parts(_manifest(config={"materialized": "incremental", "meta": meta}))

    offset = with_deps({"up": {"window": {"offset": -1}}})
    assert with_deps({"up": {"window": {"offset": -1}}}) == offset
    assert with_deps({"up": {"window": {"offset": -2}}})["config"] != offset["config"]
    assert with_deps({"up": "all"})["config"] != offset["config"]
    assert with_deps({"up": {"window": {"offset": -2}}})["sql"] == offset["sql"]


def test_code_reading_dbt_graph_includes_the_projects_node_ids() -> None:
    reads = _manifest(raw_code="{% for n in graph.nodes.values() %}{{ n.name }}{% endfor %}")
    plain = _parts(_manifest())
    assert "graph" not in plain
    before = _parts(reads)
    added = dict(reads)
    added["nodes"] = {**reads["nodes"], "model.p.new": {"resource_type": "model"}}
    after = _parts(added)
    assert after["graph"] != before["graph"]
    assert {k: v for k, v in after.items() if k != "graph"} == {
        k: v for k, v in before.items() if k != "graph"
    }
    # a macro reading graph['sources'] counts for the models calling it (transitively)
    via_macro = _manifest()
    via_macro["macros"]["macro.p.inner"]["macro_sql"] = (
        "{% macro inner() %}{{ graph['sources'] | length }}{% endmacro %}"
    )
    assert "graph" in _parts(via_macro)


def test_remembered_sql_digests_give_the_same_parts_and_keep_only_what_is_used() -> None:
    manifest = _manifest()
    plain = dbt_code_parts(
        manifest, project_vars={}, target={"type": "duckdb"}, project_dir=Path(".")
    )
    memo: dict[str, str] = {"stale": "entry of code no longer in the project"}
    first = dbt_code_parts(
        manifest,
        project_vars={},
        target={"type": "duckdb"},
        project_dir=Path("."),
        sql_digests=memo,
    )
    assert first == plain
    assert "stale" not in memo and len(memo) == 4  # the model and its three macros
    # a remembered digest is used as is (what proves it is read, not recomputed)
    key = next(k for k, v in memo.items() if v == plain["model.p.m"]["sql"])
    memo[key] = "remembered"
    again = dbt_code_parts(
        manifest,
        project_vars={},
        target={"type": "duckdb"},
        project_dir=Path("."),
        sql_digests=memo,
    )
    assert again["model.p.m"]["sql"] == "remembered"
    # edited code misses the memo: normalized afresh
    edited = _manifest(raw_code="select 2")
    assert (
        dbt_code_parts(
            edited,
            project_vars={},
            target={"type": "duckdb"},
            project_dir=Path("."),
            sql_digests=memo,
        )["model.p.m"]["sql"]
        == dbt_code_parts(
            edited, project_vars={}, target={"type": "duckdb"}, project_dir=Path(".")
        )["model.p.m"]["sql"]
    )
