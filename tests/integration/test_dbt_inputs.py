"""What sqlorch reads of a dbt project as plain dbt does (issue 18, items 8 and 12).

A `local:` package that links back above the project (a symlink loop in dbt_packages/),
the profile's `threads` handed to dbt, and a manifest cache that re-parses for what changes
dbt's parse (an env_var() the project reads) and for nothing else (usage statistics).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import TRACEBACK, TinyProject, run_cli, run_dbt, scalar

pytestmark = pytest.mark.dbt

Make = Callable[..., TinyProject]


def test_a_local_package_linking_back_is_walked_once(make_dbt_project: Make) -> None:
    # the package's repository holds the project that uses it (a package's
    # integration_tests/ folder): `dbt deps` links dbt_packages/helpers -> ../
    project = make_dbt_project(
        {
            "packages.yml": "packages:\n  - local: ../\n",
            "models/m.sql": "{{ config(materialized='table') }}\nselect {{ helpers.one() }} as x\n",
        },
        folder="helpers_repo/integration_tests",
    )
    repo = project.path.parent
    (repo / "dbt_project.yml").write_text(
        'name: helpers\nversion: "1.0.0"\nconfig-version: 2\nmacro-paths: [macros]\n'
        "model-paths: [package_models]\n"
    )
    (repo / "macros").mkdir()
    (repo / "macros" / "one.sql").write_text("{% macro one() %}1{% endmacro %}\n")
    deps = run_dbt(project.path, "deps")
    assert deps.returncode == 0, deps.stdout + deps.stderr
    link = project.path / "dbt_packages" / "helpers"
    assert link.is_symlink() and link.resolve() == repo.resolve()

    result = run_cli(project.path, "build")
    assert result.exit_code == 0, result.describe()
    assert TRACEBACK not in result.output
    assert scalar(project.db, "select x from main.m") == 1
    again = run_cli(project.path, "build")
    assert again.exit_code == 0 and "0 assets" in again.flat.lower() or "nothing" in again.flat


def _dbt_threads(project: Path) -> list[int]:
    found = sorted((project / ".sqlorch" / "runs").glob("*/dbt-*/**/run_results.json"))
    assert found, "no run_results.json written"
    return [json.loads(p.read_text())["args"]["threads"] for p in found]


def test_dbt_gets_the_profiles_threads_unless_threads_is_given(make_dbt_project: Make) -> None:
    # dbt executes this model (not sqlorch natively), so dbt's threads are used and recorded
    config = "{{ config(materialized='table', meta={'sqlorch': {'execution': 'dbt'}}) }}"
    project = make_dbt_project({"models/m.sql": f"{config}\nselect 1 as x\n"})
    profiles = project.path / "profiles.yml"
    assert "threads: 2" in profiles.read_text()
    profiles.write_text(profiles.read_text().replace("threads: 2", "threads: 3"))
    result = run_cli(project.path, "build")
    assert result.exit_code == 0, result.describe()
    assert _dbt_threads(project.path) == [3]

    result = run_cli(project.path, "build", "--full", "--threads", "5")
    assert result.exit_code == 0, result.describe()
    assert sorted(_dbt_threads(project.path)) == [3, 5]


def test_the_manifest_cache_keys_on_what_changes_the_parse(make_dbt_project: Make) -> None:
    project = make_dbt_project(
        {
            "models/m.sql": (
                "{{ config(materialized='table') }}\n"
                'select \'{{ env_var("TRUST_REGION", "eu") }}\' as region\n'
            )
        }
    )
    cache = project.path / ".sqlorch" / "dbt" / "graph.pickle"
    first = run_cli(project.path, "ls", env={"TRUST_REGION": "eu"})
    assert first.exit_code == 0, first.describe()
    stamp = cache.stat().st_mtime_ns

    # a run-time flag of dbt does not change the parse: the cache is read, not rewritten
    flipped = run_cli(
        project.path,
        "ls",
        env={"TRUST_REGION": "eu", "DBT_SEND_ANONYMOUS_USAGE_STATS": "true", "DBT_QUIET": "1"},
    )
    assert flipped.exit_code == 0, flipped.describe()
    assert cache.stat().st_mtime_ns == stamp

    # a variable the project reads with env_var() does: parsed again, and the model is stale
    built = run_cli(project.path, "build", env={"TRUST_REGION": "eu"})
    assert built.exit_code == 0, built.describe()
    stamp = cache.stat().st_mtime_ns
    moved = run_cli(project.path, "status", "--json", env={"TRUST_REGION": "us"})
    assert moved.exit_code == 0, moved.describe()
    assert cache.stat().st_mtime_ns != stamp
    row = {r["key"]: r for r in moved.json()}["main.m"]
    assert row["stale"], row


def test_sql_generated_from_the_graph_is_stale_when_a_model_is_added(
    make_dbt_project: Make,
) -> None:
    project = make_dbt_project(
        {
            "models/a.sql": "{{ config(materialized='table') }}\nselect 1 as x\n",
            "models/all_models.sql": """
                {{ config(materialized='table') }}
                {%- set names = [] %}
                {%- if execute %}
                {%- for node in graph.nodes.values() if node.resource_type == 'model' %}
                {%- do names.append(node.name) %}
                {%- endfor %}
                {%- endif %}
                select {{ names | length }} as models
            """,
        }
    )
    assert run_cli(project.path, "build").exit_code == 0
    assert scalar(project.db, "select models from main.all_models") == 2

    project.write({"models/b.sql": "{{ config(materialized='table') }}\nselect 2 as x\n"})
    status = {r["key"]: r for r in run_cli(project.path, "status", "--json").json()}
    assert status["main.all_models"]["stale"], status["main.all_models"]
    assert any("graph" in r for r in status["main.all_models"]["reasons"])
    assert not status["main.a"]["stale"], status["main.a"]
    result = run_cli(project.path, "build")
    assert result.exit_code == 0, result.describe()
    assert scalar(project.db, "select models from main.all_models") == 3

    (project.path / "models" / "b.sql").unlink()
    status = {r["key"]: r for r in run_cli(project.path, "status", "--json").json()}
    assert status["main.all_models"]["stale"], status["main.all_models"]
