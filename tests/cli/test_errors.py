"""Broken input gets a clear, one-paragraph error and the right exit code (DESIGN.md §6, §10).

Exit codes: 2 for usage and configuration errors (nothing ran), 1 for run-time failures.
Every message names the asset, the file (and line where known); no Python traceback is
printed unless `--debug`. Each case is a tiny dbt project of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    TRACEBACK,
    CliResult,
    TinyProject,
    assert_clean_error,
    run_cli,
    run_cli_subprocess,
    tables,
)

pytestmark = pytest.mark.dbt

Make = Callable[..., TinyProject]

ONE_MODEL = {"models/a.sql": "select 1 as x\n"}

SOURCES_RAW_P = """
version: 2
sources:
  - name: raw
    schema: raw
    tables:
      - name: p
"""


def statuses(project: Path) -> dict[str, dict[str, Any]]:
    result = run_cli(project, "status", "--json")
    assert result.exit_code == 0, result.describe()
    return {s["key"]: s for s in result.json()}


def last_run(project: Path) -> dict[str, Any]:
    result = run_cli(project, "runs", "--json")
    assert result.exit_code == 0, result.describe()
    return result.json()[0]


def events(project: Path, run_id: str) -> list[dict[str, Any]]:
    result = run_cli(project, "logs", run_id, "--json")
    assert result.exit_code == 0, result.describe()
    return result.json_lines()


# --------------------------------------------------------------------------- project errors: 2


def test_model_that_does_not_compile(make_dbt_project: Make) -> None:
    project = make_dbt_project(
        {
            **ONE_MODEL,
            "models/bad.sql": "select\n    1 as x,\n    {{ ref('a') }\n",
        }
    )
    result = run_cli(project.path, "build")
    assert_clean_error(result, 2, "bad", "models/bad.sql:3")
    assert not project.db.exists() or "main.a" not in tables(project.db), "something ran"


def test_missing_ref(make_dbt_project: Make) -> None:
    project = make_dbt_project(
        {**ONE_MODEL, "models/b.sql": "select *\nfrom {{ ref('no_such_model') }}\n"}
    )
    result = run_cli(project.path, "build")
    assert_clean_error(result, 2, "models/b.sql", "no_such_model")
    assert "'b'" in result.flat or "model.tiny.b" in result.flat or " b " in result.flat


def test_dbt_cycle_shows_the_path(make_dbt_project: Make) -> None:
    project = make_dbt_project(
        {
            "models/a.sql": "select * from {{ ref('b') }}\n",
            "models/b.sql": "select * from {{ ref('a') }}\n",
        }
    )
    result = run_cli(project.path, "build")
    assert_clean_error(result, 2, "cycle")
    assert "main.a -> main.b -> main.a" in result.flat or "main.b -> main.a -> main.b" in (
        result.flat
    ), result.describe()


def test_python_dbt_python_cycle_shows_the_path(make_dbt_project: Make) -> None:
    # raw.p (Python) reads model m; m reads source('raw', 'p'), which IS raw.p
    project = make_dbt_project(
        {
            "models/m.sql": "select * from {{ source('raw', 'p') }}\n",
            "models/sources.yml": SOURCES_RAW_P,
        },
        {
            "ingest/assets.py": """
                from sqlorch import asset


                @asset(schema="raw", deps=["m"])
                def p():
                    raise AssertionError("never runs")
            """
        },
    )
    result = run_cli(project.path, "build")
    assert_clean_error(result, 2, "cycle", "raw.p", "main.m", "models/m.sql", "ingest/assets.py")
    assert "raw.p -> main.m -> raw.p" in result.flat or "main.m -> raw.p -> main.m" in (
        result.flat
    ), result.describe()


def test_selection_that_matches_nothing(make_dbt_project: Make) -> None:
    project = make_dbt_project(ONE_MODEL)
    result = run_cli(project.path, "build", "-s", "no_such_asset")
    assert_clean_error(result, 2, "no_such_asset", "sqlorch ls")
    assert not project.db.exists() or not tables(project.db)


def test_exclude_that_leaves_nothing(make_dbt_project: Make) -> None:
    project = make_dbt_project(ONE_MODEL)
    result = run_cli(project.path, "build", "-s", "a", "--exclude", "a")
    assert_clean_error(result, 2, "--exclude", "'a'")


def test_malformed_selector_names_the_token(make_dbt_project: Make) -> None:
    project = make_dbt_project(ONE_MODEL)
    result = run_cli(project.path, "build", "-s", "bogus_method:x")
    assert_clean_error(result, 2, "bogus_method")


def test_ingest_module_with_a_syntax_error(make_dbt_project: Make) -> None:
    project = make_dbt_project(
        ONE_MODEL,
        {"ingest/assets.py": "from sqlorch import asset\n\n\n@asset\ndef p(:\n    return None\n"},
    )
    result = run_cli(project.path, "build")
    assert_clean_error(result, 2, "ingest/assets.py:5")


def test_ingest_module_that_fails_to_import(make_dbt_project: Make) -> None:
    project = make_dbt_project(
        ONE_MODEL,
        {
            "ingest/assets.py": """
                from sqlorch import asset

                LIMIT = int("not a number")
            """
        },
    )
    result = run_cli(project.path, "build")
    assert_clean_error(result, 2, "ingest/assets.py:3", "ValueError")


def test_python_asset_with_an_unknown_dep(make_dbt_project: Make) -> None:
    project = make_dbt_project(
        ONE_MODEL,
        {
            "ingest/assets.py": """
                from sqlorch import asset


                @asset(deps=["no_such_table"])
                def p():
                    return None
            """
        },
    )
    result = run_cli(project.path, "build")
    assert_clean_error(result, 2, "raw.p", "no_such_table", "ingest/assets.py:4")


def test_python_asset_and_model_with_the_same_key(make_dbt_project: Make) -> None:
    project = make_dbt_project(
        ONE_MODEL,
        {
            "ingest/assets.py": """
                from sqlorch import asset


                @asset(schema="main")
                def a():
                    return None
            """
        },
    )
    result = run_cli(project.path, "build")
    assert_clean_error(result, 2, "main.a", "ingest/assets.py:4", "models/a.sql")


def test_unknown_setting(make_dbt_project: Make) -> None:
    project = make_dbt_project({**ONE_MODEL, "pyproject.toml": "[tool.sqlorch]\nthreds = 2\n"})
    result = run_cli(project.path, "build")
    assert_clean_error(result, 2, "threds", "pyproject.toml")


def test_no_dbt_project(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "build")
    assert_clean_error(result, 2, "dbt_project.yml", "--project-dir")


# --------------------------------------------------------------------------- profiles: 2


def test_missing_profiles_yml(make_dbt_project: Make, tmp_path: Path) -> None:
    project = make_dbt_project(ONE_MODEL)
    (project.path / "profiles.yml").unlink()
    home = tmp_path / "home"
    home.mkdir()
    result = run_cli(project.path, "build", env={"HOME": str(home)})
    assert_clean_error(result, 2, "profiles.yml", "'tiny'", "--profiles-dir", "DBT_PROFILES_DIR")


def test_error_messages_keep_square_brackets(make_dbt_project: Make, tmp_path: Path) -> None:
    project = make_dbt_project(ONE_MODEL)
    (project.path / "profiles.yml").unlink()
    home = tmp_path / "home"
    home.mkdir()
    result = run_cli(project.path, "build", env={"HOME": str(home)})
    assert_clean_error(result, 2, "[tool.sqlorch]")


def test_failure_summary_keeps_square_brackets(make_dbt_project: Make) -> None:
    project = make_dbt_project(
        ONE_MODEL,
        {
            "ingest/assets.py": """
                from sqlorch import asset


                @asset
                def p():
                    raise KeyError("no column [carrier] in the [api.response] payload")
            """
        },
    )
    result = run_cli(project.path, "build")
    assert_clean_error(result, 1, "raw.p", "[carrier]", "[api.response]")


def test_profile_named_by_the_project_is_missing(make_dbt_project: Make) -> None:
    project = make_dbt_project(ONE_MODEL)
    dbt_project = project.path / "dbt_project.yml"
    dbt_project.write_text(dbt_project.read_text().replace("profile: tiny", "profile: other"))
    result = run_cli(project.path, "build")
    assert_clean_error(result, 2, "'other'", "profiles.yml", "tiny")


def test_unknown_target(make_dbt_project: Make) -> None:
    project = make_dbt_project(ONE_MODEL)
    result = run_cli(project.path, "build", "--target", "prod")
    assert_clean_error(result, 2, "'prod'", "dev", "--target")


def test_profile_reads_an_unset_env_var(make_dbt_project: Make) -> None:
    project = make_dbt_project(
        {
            **ONE_MODEL,
            "profiles.yml": """
                tiny:
                  target: dev
                  outputs:
                    dev:
                      type: duckdb
                      path: "{{ env_var('SQLORCH_TEST_UNSET_DB_PATH') }}"
            """,
        }
    )
    result = run_cli(project.path, "build")
    assert_clean_error(result, 2, "SQLORCH_TEST_UNSET_DB_PATH")


UNREACHABLE_DB = """
    tiny:
      target: dev
      outputs:
        dev:
          type: duckdb
          path: /nonexistent_sqlorch_test_dir/sub/tiny.duckdb
"""


def test_profile_that_does_not_connect(make_dbt_project: Make) -> None:
    project = make_dbt_project({**ONE_MODEL, "profiles.yml": UNREACHABLE_DB})
    result = run_cli(project.path, "build")
    assert result.exception is None, result.describe()
    assert result.exit_code in (1, 2), result.describe()
    assert TRACEBACK not in result.output
    assert "/nonexistent_sqlorch_test_dir/sub/tiny.duckdb" in result.flat


def test_profile_that_does_not_connect_is_a_configuration_error(make_dbt_project: Make) -> None:
    project = make_dbt_project({**ONE_MODEL, "profiles.yml": UNREACHABLE_DB})
    result = run_cli(project.path, "build")
    assert_clean_error(result, 2, "profiles.yml", "'dev'")
    assert "another process" not in result.flat
    assert run_cli(project.path, "runs", "--json").json() == []


# --------------------------------------------------------------------------- run-time errors: 1


def test_python_asset_that_raises(make_dbt_project: Make) -> None:
    project = make_dbt_project(
        {
            **ONE_MODEL,
            "models/after_p.sql": "select * from {{ source('raw', 'p') }}\n",
            "models/sources.yml": SOURCES_RAW_P,
        },
        {
            "ingest/assets.py": """
                from sqlorch import asset


                @asset
                def p():
                    raise ValueError("the upstream API said no")
            """
        },
    )
    result = run_cli(project.path, "build")
    assert_clean_error(
        result, 1, "raw.p", "ingest/assets.py:6", "ValueError", "the upstream API said no"
    )
    state = statuses(project.path)
    assert state["raw.p"]["last_outcome"] == "failed"
    assert state["raw.p"]["stale"] is True and state["raw.p"]["reasons"]
    assert state["main.after_p"]["last_outcome"] == "skipped"
    assert state["main.a"]["last_outcome"] == "success"
    run = last_run(project.path)
    assert run["status"] == "failed"
    assert {k: run["assets"][k] for k in ("succeeded", "failed", "skipped")} == {
        "succeeded": 1,
        "failed": 1,
        "skipped": 1,
    }
    # the traceback is kept in the run's log, and shown by `logs --debug`
    failed = [e for e in events(project.path, run["run_id"]) if e["kind"] == "asset_failed"]
    assert [e["asset"] for e in failed] == ["raw.p"]
    assert failed[0]["level"] == "error"
    assert "the upstream API said no" in failed[0]["message"]
    assert "ValueError" in (failed[0]["data"].get("traceback") or "")
    shown = run_cli(project.path, "logs", run["run_id"], "--debug")
    assert shown.exit_code == 0, shown.describe()
    assert TRACEBACK in shown.output and "the upstream API said no" in shown.output


def test_python_asset_returning_an_unsupported_type(make_dbt_project: Make) -> None:
    project = make_dbt_project(
        ONE_MODEL,
        {
            "ingest/assets.py": """
                from sqlorch import asset


                @asset
                def p():
                    return 42
            """
        },
    )
    result = run_cli(project.path, "build")
    assert_clean_error(result, 1, "raw.p", "int", "pyarrow", "ingest/assets.py")
    assert statuses(project.path)["main.a"]["last_outcome"] == "success"


def test_python_asset_returning_none_without_context(make_dbt_project: Make) -> None:
    project = make_dbt_project(
        ONE_MODEL,
        {
            "ingest/assets.py": """
                from sqlorch import asset


                @asset
                def p():
                    return None
            """
        },
    )
    result = run_cli(project.path, "build")
    assert_clean_error(result, 1, "raw.p", "ingest/assets.py:4", "None", "context")


SQL_ERROR_PROJECT = {
    "models/a.sql": "select 1 as x\n",
    "models/bad.sql": "select *\nfrom {{ ref('a') }}\nwhere no_such_column = 1\n",
    "models/down.sql": "select * from {{ ref('bad') }}\n",
    "models/ok.sql": "select x + 1 as y from {{ ref('a') }}\n",
}
PY_AFTER_BAD = {
    "ingest/assets.py": """
        from sqlorch import asset


        @asset(deps=["bad"])
        def after_bad(context):
            raise AssertionError("must be skipped, not run")


        @asset(deps=["ok"])
        def after_ok(context):
            return context.warehouse.connection.sql("select y from main.ok")
    """
}


def test_model_with_a_sql_error_at_run_time(make_dbt_project: Make) -> None:
    project = make_dbt_project(SQL_ERROR_PROJECT, PY_AFTER_BAD)
    result = run_cli(project.path, "build")
    assert_clean_error(result, 1, "main.bad", "models/bad.sql", "no_such_column")
    state = statuses(project.path)
    outcome = {k: s["last_outcome"] for k, s in state.items()}
    assert outcome == {
        "main.a": "success",
        "main.bad": "failed",
        "main.down": "skipped",
        "main.ok": "success",
        "raw.after_bad": "skipped",
        "raw.after_ok": "success",
    }
    built = tables(project.db)
    assert {"main.a", "main.ok", "raw.after_ok"} <= set(built)
    assert not {"main.bad", "main.down", "raw.after_bad"} & set(built)
    run = last_run(project.path)
    assert run["status"] == "failed"
    assert run["assets"]["failed"] == 1 and run["assets"]["skipped"] == 2
    assert run["assets"]["succeeded"] == 3


def test_skip_message_names_the_failed_upstream(make_dbt_project: Make) -> None:
    project = make_dbt_project(SQL_ERROR_PROJECT, PY_AFTER_BAD)
    result = run_cli(project.path, "build")
    assert result.exit_code == 1, result.describe()
    run = last_run(project.path)
    skipped = {
        e["asset"]: e["message"]
        for e in events(project.path, run["run_id"])
        if e["kind"] == "asset_skipped"
    }
    assert set(skipped) == {"main.down", "raw.after_bad"}
    for key, message in skipped.items():
        assert "main.bad" in message, f"{key}: {message!r}"


def test_blocking_test_failure_skips_downstream(make_dbt_project: Make) -> None:
    project = make_dbt_project(
        {
            "models/a.sql": "select 1 as x union all select 1\n",
            "models/b.sql": "select * from {{ ref('a') }}\n",
            "models/c.sql": "select 2 as z\n",
            "models/schema.yml": """
                version: 2
                models:
                  - name: a
                    columns:
                      - name: x
                        data_tests:
                          - unique
            """,
        }
    )
    result = run_cli(project.path, "build")
    assert result.exception is None and result.exit_code == 1, result.describe()
    assert TRACEBACK not in result.output
    assert "unique_a_x" in result.flat
    outcome = {k: s["last_outcome"] for k, s in statuses(project.path).items()}
    assert outcome["main.a"] == "success"
    assert outcome["main.b"] == "skipped"
    assert outcome["main.c"] == "success"


def test_malformed_seed_csv(make_dbt_project: Make) -> None:
    project = make_dbt_project(
        {
            **ONE_MODEL,
            "seeds/people.csv": "id,name\n1,ann\n2,bob,extra,fields\n3\n",
            "models/from_seed.sql": "select * from {{ ref('people') }}\n",
        }
    )
    result = run_cli(project.path, "build")
    # dbt reads a seed's CSV when it runs the seed: a run-time failure of that seed
    assert_clean_error(result, 1, "main.people", "seeds/people.csv")
    outcome = {k: s["last_outcome"] for k, s in statuses(project.path).items()}
    assert outcome == {"main.a": "success", "main.people": "failed", "main.from_seed": "skipped"}


# --------------------------------------------------------------------------- other commands


def test_logs_before_any_run(make_dbt_project: Make) -> None:
    project = make_dbt_project(ONE_MODEL)
    result = run_cli(project.path, "logs")
    assert_clean_error(result, 2, "No runs yet", "sqlorch build")


def test_runs_before_any_run(make_dbt_project: Make) -> None:
    project = make_dbt_project(ONE_MODEL)
    result = run_cli(project.path, "runs", "--json")
    assert result.exit_code == 0, result.describe()
    assert result.json() == []


def test_debug_shows_the_traceback(make_dbt_project: Make) -> None:
    project = make_dbt_project(ONE_MODEL)
    result = run_cli(project.path, "build", "-s", "no_such_asset", "--debug")
    assert result.exit_code == 2, result.describe()
    assert TRACEBACK in result.output and "no_such_asset" in result.output


def test_unknown_option_is_a_usage_error(make_dbt_project: Make) -> None:
    project = make_dbt_project(ONE_MODEL)
    result = run_cli(project.path, "build", "--no-such-option")
    assert result.exit_code == 2, result.describe()
    assert "--no-such-option" in result.output


# --------------------------------------------------------------------------- real processes


def _assert_process(result: CliResult, exit_code: int, *needles: str) -> None:
    assert result.exit_code == exit_code, result.describe()
    assert TRACEBACK not in result.output, result.describe()
    for needle in needles:
        assert needle in result.flat, f"{needle!r} not in\n{result.describe()}"


def test_process_exit_code_for_a_bad_selection(make_dbt_project: Make) -> None:
    project = make_dbt_project(ONE_MODEL)
    result = run_cli_subprocess(project.path, "build", "-s", "no_such_asset")
    _assert_process(result, 2, "no_such_asset")
    assert "no_such_asset" in result.stderr, "errors go to stderr"


def test_process_exit_code_for_a_missing_profile(make_dbt_project: Make, tmp_path: Path) -> None:
    project = make_dbt_project(ONE_MODEL)
    (project.path / "profiles.yml").unlink()
    home = tmp_path / "home"
    home.mkdir()
    result = run_cli_subprocess(project.path, "build", env={"HOME": str(home)})
    _assert_process(result, 2, "profiles.yml")


def test_process_exit_code_for_a_failing_asset(make_dbt_project: Make) -> None:
    project = make_dbt_project(SQL_ERROR_PROJECT, PY_AFTER_BAD)
    result = run_cli_subprocess(project.path, "build")
    _assert_process(result, 1, "main.bad", "models/bad.sql")


def test_process_exit_code_for_success(make_dbt_project: Make) -> None:
    project = make_dbt_project(ONE_MODEL)
    result = run_cli_subprocess(project.path, "build")
    _assert_process(result, 0, "main.a")
    assert tables(project.db) == {"main.a": "VIEW"}
