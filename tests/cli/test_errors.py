"""Broken input gets a clear, one-paragraph error and the right exit code (DESIGN.md §6, §10).

Exit codes: 2 for usage and configuration errors (nothing ran), 1 for run-time failures.
Every message names the asset, the file (and line where known); no Python traceback is
printed unless `--debug`. Each case is a tiny dbt project of its own.

The cases are rows of `CASES`: the project's files, an optional change to it, the command,
the exit code and the fragments the output must hold; what a case checks beyond that (the
state after the run) is a named function in its `then`. Adding a case is adding a row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
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

ONE_MODEL = {"models/a.sql": "select 1 as x\n"}

SOURCES_RAW_P = """
version: 2
sources:
  - name: raw
    schema: raw
    tables:
      - name: p
"""

UNREACHABLE_DB = """
    tiny:
      target: dev
      outputs:
        dev:
          type: duckdb
          path: /nonexistent_sqlorch_test_dir/sub/tiny.duckdb
"""

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


def python_asset(body: str, decorator: str = "@asset") -> dict[str, str]:
    """Return an ingest module with one asset `p` (or named in `body`) under `decorator`."""
    return {"ingest/assets.py": f"from sqlorch import asset\n\n\n{decorator}\n{body}"}


# --------------------------------------------------------------------------- reading the state


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


def outcomes(project: TinyProject) -> dict[str, str]:
    return {k: s["last_outcome"] for k, s in statuses(project.path).items()}


# --------------------------------------------------------------------------- project changes


def without_profiles(project: TinyProject, tmp_path: Path) -> dict[str, str]:
    """Delete profiles.yml and point HOME at an empty folder (no ~/.dbt either)."""
    (project.path / "profiles.yml").unlink()
    home = tmp_path / "home"
    home.mkdir()
    return {"HOME": str(home)}


def profile_named_other(project: TinyProject, tmp_path: Path) -> dict[str, str]:
    """Make dbt_project.yml name a profile profiles.yml does not have."""
    dbt_project = project.path / "dbt_project.yml"
    dbt_project.write_text(dbt_project.read_text().replace("profile: tiny", "profile: other"))
    return {}


# --------------------------------------------------------------------------- checks after a case


def nothing_ran(project: TinyProject, result: CliResult) -> None:
    assert not project.db.exists() or "main.a" not in tables(project.db), "something ran"


def no_table_built(project: TinyProject, result: CliResult) -> None:
    assert not project.db.exists() or not tables(project.db)


def no_run_recorded(project: TinyProject, result: CliResult) -> None:
    assert "another process" not in result.flat
    assert run_cli(project.path, "runs", "--json").json() == []


def failed_asset_skips_downstream_and_logs_its_traceback(
    project: TinyProject, result: CliResult
) -> None:
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


def other_assets_still_built(project: TinyProject, result: CliResult) -> None:
    assert statuses(project.path)["main.a"]["last_outcome"] == "success"


def sql_error_fails_one_model_and_skips_its_downstream(
    project: TinyProject, result: CliResult
) -> None:
    assert outcomes(project) == {
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


def skip_messages_name_the_failed_upstream(project: TinyProject, result: CliResult) -> None:
    run = last_run(project.path)
    skipped = {
        e["asset"]: e["message"]
        for e in events(project.path, run["run_id"])
        if e["kind"] == "asset_skipped"
    }
    assert set(skipped) == {"main.down", "raw.after_bad"}
    for key, message in skipped.items():
        assert "main.bad" in message, f"{key}: {message!r}"


def failed_test_skips_only_downstream(project: TinyProject, result: CliResult) -> None:
    outcome = outcomes(project)
    assert outcome["main.a"] == "success"
    assert outcome["main.b"] == "skipped"
    assert outcome["main.c"] == "success"


def bad_seed_fails_and_skips_its_downstream(project: TinyProject, result: CliResult) -> None:
    assert outcomes(project) == {
        "main.a": "success",
        "main.people": "failed",
        "main.from_seed": "skipped",
    }


def no_runs_listed(project: TinyProject, result: CliResult) -> None:
    assert result.json() == []


def error_went_to_stderr(project: TinyProject, result: CliResult) -> None:
    assert "no_such_asset" in result.stderr, "errors go to stderr"


def one_view_built(project: TinyProject, result: CliResult) -> None:
    assert tables(project.db) == {"main.a": "VIEW"}


# --------------------------------------------------------------------------- the cases


class Expect(Enum):
    """How a case's output is checked."""

    #: `assert_clean_error`: no exception, the exit code, no traceback, fragments in `flat`
    CLEAN = "clean"
    #: no exception, one of the exit codes, no traceback, fragments in `flat`
    NO_TRACEBACK = "no traceback"
    #: the exit code, fragments in the raw output (tracebacks allowed)
    OUTPUT = "output"
    #: a real process: the exit code, no traceback, fragments in `flat`
    PROCESS = "process"


@dataclass(frozen=True, slots=True)
class Case:
    """One broken input and what sqlorch must answer."""

    id: str
    files: Mapping[str, str] | None  # the dbt project (None: an empty folder)
    python: Mapping[str, str] | None = None  # ingest modules
    args: tuple[str, ...] = ("build",)
    exit_code: int | tuple[int, ...] = 2
    fragments: tuple[str, ...] = ()  # each in the output
    one_of: tuple[str, ...] = ()  # at least one in the output (`flat`)
    change: Callable[[TinyProject, Path], dict[str, str]] | None = None  # -> environment
    expect: Expect = Expect.CLEAN
    then: Callable[[TinyProject, CliResult], None] | None = None

    @property
    def exit_codes(self) -> tuple[int, ...]:
        """The accepted exit codes."""
        return self.exit_code if isinstance(self.exit_code, tuple) else (self.exit_code,)


CASES = [
    # ----------------------------------------------------------------------- project errors: 2
    Case(
        "model_that_does_not_compile",
        {**ONE_MODEL, "models/bad.sql": "select\n    1 as x,\n    {{ ref('a') }\n"},
        fragments=("bad", "models/bad.sql:3"),
        then=nothing_ran,
    ),
    Case(
        "missing_ref",
        {**ONE_MODEL, "models/b.sql": "select *\nfrom {{ ref('no_such_model') }}\n"},
        fragments=("models/b.sql", "no_such_model"),
        one_of=("'b'", "model.tiny.b", " b "),
    ),
    Case(
        "dbt_cycle_shows_the_path",
        {
            "models/a.sql": "select * from {{ ref('b') }}\n",
            "models/b.sql": "select * from {{ ref('a') }}\n",
        },
        fragments=("cycle",),
        one_of=("main.a -> main.b -> main.a", "main.b -> main.a -> main.b"),
    ),
    Case(
        # raw.p (Python) reads model m; m reads source('raw', 'p'), which IS raw.p
        "python_dbt_python_cycle_shows_the_path",
        {
            "models/m.sql": "select * from {{ source('raw', 'p') }}\n",
            "models/sources.yml": SOURCES_RAW_P,
        },
        python_asset(
            'def p():\n    raise AssertionError("never runs")\n',
            '@asset(schema="raw", deps=["m"])',
        ),
        fragments=("cycle", "raw.p", "main.m", "models/m.sql", "ingest/assets.py"),
        one_of=("raw.p -> main.m -> raw.p", "main.m -> raw.p -> main.m"),
    ),
    Case(
        "selection_that_matches_nothing",
        ONE_MODEL,
        args=("build", "-s", "no_such_asset"),
        fragments=("no_such_asset", "sqlorch ls"),
        then=no_table_built,
    ),
    Case(
        "exclude_that_leaves_nothing",
        ONE_MODEL,
        args=("build", "-s", "a", "--exclude", "a"),
        fragments=("--exclude", "'a'"),
    ),
    Case(
        "malformed_selector_names_the_token",
        ONE_MODEL,
        args=("build", "-s", "bogus_method:x"),
        fragments=("bogus_method",),
    ),
    Case(
        "ingest_module_with_a_syntax_error",
        ONE_MODEL,
        {"ingest/assets.py": "from sqlorch import asset\n\n\n@asset\ndef p(:\n    return None\n"},
        fragments=("ingest/assets.py:5",),
    ),
    Case(
        "ingest_module_that_fails_to_import",
        ONE_MODEL,
        {"ingest/assets.py": 'from sqlorch import asset\n\nLIMIT = int("not a number")\n'},
        fragments=("ingest/assets.py:3", "ValueError"),
    ),
    Case(
        "python_asset_with_an_unknown_dep",
        ONE_MODEL,
        python_asset("def p():\n    return None\n", '@asset(deps=["no_such_table"])'),
        fragments=("raw.p", "no_such_table", "ingest/assets.py:4"),
    ),
    Case(
        "python_asset_and_model_with_the_same_key",
        ONE_MODEL,
        python_asset("def a():\n    return None\n", '@asset(schema="main")'),
        fragments=("main.a", "ingest/assets.py:4", "models/a.sql"),
    ),
    Case(
        "unknown_setting",
        {**ONE_MODEL, "pyproject.toml": "[tool.sqlorch]\nthreds = 2\n"},
        fragments=("threds", "pyproject.toml"),
    ),
    Case("no_dbt_project", None, fragments=("dbt_project.yml", "--project-dir")),
    # ----------------------------------------------------------------------- profiles: 2
    Case(
        "missing_profiles_yml",
        ONE_MODEL,
        change=without_profiles,
        fragments=("profiles.yml", "'tiny'", "--profiles-dir", "DBT_PROFILES_DIR"),
    ),
    Case(
        "error_messages_keep_square_brackets",
        ONE_MODEL,
        change=without_profiles,
        fragments=("[tool.sqlorch]",),
    ),
    Case(
        "failure_summary_keeps_square_brackets",
        ONE_MODEL,
        python_asset(
            'def p():\n    raise KeyError("no column [carrier] in the [api.response] payload")\n'
        ),
        exit_code=1,
        fragments=("raw.p", "[carrier]", "[api.response]"),
    ),
    Case(
        "profile_named_by_the_project_is_missing",
        ONE_MODEL,
        change=profile_named_other,
        fragments=("'other'", "profiles.yml", "tiny"),
    ),
    Case(
        "unknown_target",
        ONE_MODEL,
        args=("build", "--target", "prod"),
        fragments=("'prod'", "dev", "--target"),
    ),
    Case(
        "profile_reads_an_unset_env_var",
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
        },
        fragments=("SQLORCH_TEST_UNSET_DB_PATH",),
    ),
    Case(
        "profile_that_does_not_connect",
        {**ONE_MODEL, "profiles.yml": UNREACHABLE_DB},
        exit_code=(1, 2),
        expect=Expect.NO_TRACEBACK,
        fragments=("/nonexistent_sqlorch_test_dir/sub/tiny.duckdb",),
    ),
    Case(
        "profile_that_does_not_connect_is_a_configuration_error",
        {**ONE_MODEL, "profiles.yml": UNREACHABLE_DB},
        fragments=("profiles.yml", "'dev'"),
        then=no_run_recorded,
    ),
    # ----------------------------------------------------------------------- run-time errors: 1
    Case(
        "python_asset_that_raises",
        {
            **ONE_MODEL,
            "models/after_p.sql": "select * from {{ source('raw', 'p') }}\n",
            "models/sources.yml": SOURCES_RAW_P,
        },
        python_asset('def p():\n    raise ValueError("the upstream API said no")\n'),
        exit_code=1,
        fragments=("raw.p", "ingest/assets.py:6", "ValueError", "the upstream API said no"),
        then=failed_asset_skips_downstream_and_logs_its_traceback,
    ),
    Case(
        "python_asset_returning_an_unsupported_type",
        ONE_MODEL,
        python_asset("def p():\n    return 42\n"),
        exit_code=1,
        fragments=("raw.p", "int", "pyarrow", "ingest/assets.py"),
        then=other_assets_still_built,
    ),
    Case(
        "python_asset_returning_none_without_context",
        ONE_MODEL,
        python_asset("def p():\n    return None\n"),
        exit_code=1,
        fragments=("raw.p", "ingest/assets.py:4", "None", "context"),
    ),
    Case(
        "model_with_a_sql_error_at_run_time",
        SQL_ERROR_PROJECT,
        PY_AFTER_BAD,
        exit_code=1,
        fragments=("main.bad", "models/bad.sql", "no_such_column"),
        then=sql_error_fails_one_model_and_skips_its_downstream,
    ),
    Case(
        "skip_message_names_the_failed_upstream",
        SQL_ERROR_PROJECT,
        PY_AFTER_BAD,
        exit_code=1,
        expect=Expect.OUTPUT,
        then=skip_messages_name_the_failed_upstream,
    ),
    Case(
        "blocking_test_failure_skips_downstream",
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
        },
        exit_code=1,
        expect=Expect.NO_TRACEBACK,
        fragments=("unique_a_x",),
        then=failed_test_skips_only_downstream,
    ),
    Case(
        # dbt reads a seed's CSV when it runs the seed: a run-time failure of that seed
        "malformed_seed_csv",
        {
            **ONE_MODEL,
            "seeds/people.csv": "id,name\n1,ann\n2,bob,extra,fields\n3\n",
            "models/from_seed.sql": "select * from {{ ref('people') }}\n",
        },
        exit_code=1,
        fragments=("main.people", "seeds/people.csv"),
        then=bad_seed_fails_and_skips_its_downstream,
    ),
    # ----------------------------------------------------------------------- other commands
    Case(
        "logs_before_any_run", ONE_MODEL, args=("logs",), fragments=("No runs yet", "sqlorch build")
    ),
    Case(
        "runs_before_any_run",
        ONE_MODEL,
        args=("runs", "--json"),
        exit_code=0,
        expect=Expect.OUTPUT,
        then=no_runs_listed,
    ),
    Case(
        "debug_shows_the_traceback",
        ONE_MODEL,
        args=("build", "-s", "no_such_asset", "--debug"),
        expect=Expect.OUTPUT,
        fragments=(TRACEBACK, "no_such_asset"),
    ),
    Case(
        "unknown_option_is_a_usage_error",
        ONE_MODEL,
        args=("build", "--no-such-option"),
        expect=Expect.OUTPUT,
        fragments=("--no-such-option",),
    ),
    # ----------------------------------------------------------------------- real processes
    Case(
        "process_exit_code_for_a_bad_selection",
        ONE_MODEL,
        args=("build", "-s", "no_such_asset"),
        expect=Expect.PROCESS,
        fragments=("no_such_asset",),
        then=error_went_to_stderr,
    ),
    Case(
        "process_exit_code_for_a_missing_profile",
        ONE_MODEL,
        change=without_profiles,
        expect=Expect.PROCESS,
        fragments=("profiles.yml",),
    ),
    Case(
        "process_exit_code_for_a_failing_asset",
        SQL_ERROR_PROJECT,
        PY_AFTER_BAD,
        exit_code=1,
        expect=Expect.PROCESS,
        fragments=("main.bad", "models/bad.sql"),
    ),
    Case(
        "process_exit_code_for_success",
        ONE_MODEL,
        exit_code=0,
        expect=Expect.PROCESS,
        fragments=("main.a",),
        then=one_view_built,
    ),
]


def check_output(case: Case, result: CliResult) -> None:
    """Assert what `case.expect` says about the command's exit and output."""
    if case.expect is Expect.CLEAN:
        (exit_code,) = case.exit_codes
        assert_clean_error(result, exit_code, *case.fragments)
    elif case.expect is Expect.OUTPUT:
        assert result.exit_code in case.exit_codes, result.describe()
        for fragment in case.fragments:
            assert fragment in result.output, f"{fragment!r} not in\n{result.describe()}"
    else:  # NO_TRACEBACK, PROCESS
        assert result.exception is None, result.describe()
        assert result.exit_code in case.exit_codes, result.describe()
        assert TRACEBACK not in result.output, result.describe()
        for fragment in case.fragments:
            assert fragment in result.flat, f"{fragment!r} not in\n{result.describe()}"
    if case.one_of:
        assert any(f in result.flat for f in case.one_of), result.describe()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_broken_input_gets_a_clear_error(
    case: Case, make_dbt_project: Callable[..., TinyProject], tmp_path: Path
) -> None:
    project = None if case.files is None else make_dbt_project(case.files, case.python)
    env = case.change(project, tmp_path) if project is not None and case.change else None
    run = run_cli_subprocess if case.expect is Expect.PROCESS else run_cli
    result = run(project.path if project is not None else tmp_path, *case.args, env=env)
    check_output(case, result)
    if case.then is not None:
        assert project is not None
        case.then(project, result)
