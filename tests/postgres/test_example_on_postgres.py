"""The example project on PostgreSQL: warehouse AND state store in the session's cluster.

One build of the whole example with `-t postgres` and `SQLORCH_STATE_URL` (module fixture),
then: the same row counts per asset as the DuckDB build, a no-op second build, `status` from
the shared store, a second build refused while another run holds the lease, and the
password (a canary) nowhere: not in output, files, the warehouse's tables or the state store.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import PG_PASSWORD, PG_USER, BuiltExample, CliResult, copy_example, run_cli, scalar

pytestmark = pytest.mark.postgres


@dataclass(frozen=True)
class PgExample:
    """The example built on PostgreSQL: its folder, env, first build, and the database."""

    path: Path
    env: dict[str, str]
    build: CliResult
    conninfo: str
    outputs: list[str]

    def cli(self, *args: str, **kw: Any) -> CliResult:
        result = run_cli(self.path, *args, env=self.env, **kw)
        self.outputs.append(result.output)
        return result

    def sql(self, statement: str) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.conninfo, autocommit=True) as con:
            cur = con.execute(statement)
            return cur.fetchall() if cur.description else []


@pytest.fixture(scope="module")
def pg_example(pg_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgExample]:
    pg_cluster.sql(f"CREATE DATABASE nycflights OWNER {PG_USER}")
    path = copy_example(tmp_path_factory.mktemp("pg") / "nycflights")
    env = {
        "SQLORCH_PG_HOST": str(pg_cluster.socket_dir),
        "SQLORCH_PG_PORT": str(pg_cluster.port),
        "SQLORCH_PG_USER": PG_USER,
        "SQLORCH_PG_PASSWORD": PG_PASSWORD,
        "SQLORCH_PG_DBNAME": "nycflights",
        "SQLORCH_TARGET": "postgres",
        "SQLORCH_STATE_URL": pg_cluster.url("nycflights", PG_USER, PG_PASSWORD),
    }
    result = run_cli(path, "build", env=env)
    assert result.exit_code == 0, result.describe()
    yield PgExample(
        path,
        env,
        result,
        pg_cluster.conninfo("nycflights", PG_USER, PG_PASSWORD),
        [result.output],
    )


def test_the_whole_example_builds_on_postgres_with_duckdbs_row_counts(
    pg_example: PgExample, built_example: BuiltExample
) -> None:
    assets = [a for a in built_example.cli("ls", "--json").json() if a["kind"] != "source"]
    assert len(assets) >= 19
    counts_pg: dict[str, int] = {}
    counts_duck: dict[str, int] = {}
    for a in assets:
        schema, name = a["key"].split(".", 1)
        count = f'select count(*) from "{schema}"."{name}"'
        counts_duck[a["key"]] = scalar(built_example.db, count)
        counts_pg[a["key"]] = pg_example.sql(count)[0][0]
    assert counts_pg == counts_duck
    assert counts_pg["raw.flights"] == 336_776
    assert counts_pg["ops.ground_stops"] == 30  # loaded by dlt with the target's credentials
    # nothing was written to a DuckDB file, and the state lives in PostgreSQL only
    assert not list(pg_example.path.glob("*.duckdb"))
    assert not (pg_example.path / ".sqlorch" / "state.db").exists()
    assert pg_example.sql("select count(*) from sqlorch.materializations")[0][0] > 19
    # checks ran on PostgreSQL (built-in ones through the warehouse, dbt tests through dbt)
    assert "checks:" in pg_example.build.flat and " passed" in pg_example.build.flat
    assert "failed" not in pg_example.build.flat.split("Done in", 1)[1].split("\n", 1)[0]


def window_events(example: PgExample) -> list[dict[str, Any]]:
    """The `dbt_invocation_finished` events of the last run."""
    logs = example.cli("logs", "--json").json_lines()
    return [e["data"] for e in logs if e["kind"] == "dbt_invocation_finished"]


def test_sqlorch_writes_partition_windows_on_postgres_as_dbt_does(pg_example: PgExample) -> None:
    def content(table: str) -> str:  # the table's rows, hashed in a stable order
        return str(
            pg_example.sql(f"select md5(string_agg(t::text, '|' order by t::text)) from {table} t")[
                0
            ][0]
        )

    tables = ("marts.fct_delays", "marts.fct_flights", "marts.mart_carrier_ontime_monthly")
    built = {t: content(t) for t in tables}  # written by dbt's materializations (first build)
    # damage a day of each daily table: the backfill must put back exactly dbt's rows
    pg_example.sql("delete from marts.fct_delays where flight_date = date '2013-03-05'")
    pg_example.sql("update marts.fct_flights set dep_delay_min = -999 where flight_date = "
                   "date '2013-03-06'")  # fmt: skip
    for attempt in (1, 2):  # a window rewritten twice: the same content both times
        result = pg_example.cli("backfill", "fct_flights", "--from", "2013-03-01", "--to",
                                "2013-03-10")  # fmt: skip
        assert result.exit_code == 0, result.describe()
        assert {t: content(t) for t in tables} == built, attempt
        finished = window_events(pg_example)
        written = {k for d in finished for k in d.get("window_writes", ())}
        # sqlorch wrote the windows itself (no dbt start-up for them)
        assert {"marts.fct_flights", "marts.fct_delays"} <= written, finished
        assert any(d["args"][0].startswith("sqlorch: window writes") for d in finished)
        because = {k: v for d in finished for k, v in d.get("dbt_writes_because", {}).items()}
        assert "marts.fct_flights" not in because and "marts.fct_delays" not in because, because
    history = pg_example.cli("history", "marts.fct_delays", "--json").json()
    window = [m for m in history["materializations"] if m["partition"] == "2013-03-01..2013-03-10"]
    days = pg_example.sql("select count(*) from marts.fct_delays where flight_date between "
                          "date '2013-03-01' and date '2013-03-10'")[0][0]  # fmt: skip
    assert window and window[0]["rows"] == days, window  # the window's rows, exactly

    # a window write that fails (a constraint the new rows of one day break) leaves the old rows
    before = content("marts.fct_delays")
    pg_example.sql("alter table marts.fct_delays add constraint no_march_5 "
                   "check (flight_date <> date '2013-03-05') not valid")  # fmt: skip
    try:
        failed = pg_example.cli("backfill", "fct_delays", "--from", "2013-03-04", "--to",
                                "2013-03-06")  # fmt: skip
    finally:
        pg_example.sql("alter table marts.fct_delays drop constraint no_march_5")
    assert failed.exit_code == 1, failed.describe()
    assert "marts.fct_delays" in failed.flat and "no_march_5" in failed.flat, failed.describe()
    assert content("marts.fct_delays") == before
    assert any("marts.fct_delays" in d["args"] for d in window_events(pg_example))
    again = pg_example.cli("build")  # the failed window is stale: the next build writes it
    assert again.exit_code == 0, again.describe()
    assert content("marts.fct_delays") == built["marts.fct_delays"]


def test_a_second_build_is_a_no_op_and_status_reads_the_shared_store(
    pg_example: PgExample,
) -> None:
    again = pg_example.cli("build")
    assert again.exit_code == 0 and "nothing to do" in again.flat, again.describe()
    status = pg_example.cli("status", "--json")
    assert status.exit_code == 0, status.describe()
    docs = {d["key"]: d for d in status.json()}
    assert docs["raw.flights"]["rows"] == 336_776 and not docs["raw.flights"]["stale"]
    # a table dropped behind sqlorch's back is stale again (observing the warehouse)
    pg_example.sql("drop table marts.mart_route_scorecard")
    plan = pg_example.cli("build", "--dry-run", "--json")
    assert [s["key"] for s in plan.json()["steps"]] == ["marts.mart_route_scorecard"]
    rebuilt = pg_example.cli("build")
    assert rebuilt.exit_code == 0, rebuilt.describe()


def test_a_build_on_assets_another_run_holds_is_refused_naming_the_holder(
    pg_example: PgExample,
) -> None:
    from sqlorch.state.postgres import PostgresStateStore

    holder = PostgresStateStore(pg_example.env["SQLORCH_STATE_URL"])
    holder.acquire_lease(["raw.airlines"], "20260101T000000-holder")
    try:
        runs_before = len(holder.runs())
        second = pg_example.cli("build", "-s", "raw.airlines", "--full")
        assert second.exit_code == 2, second.describe()
        assert "raw.airlines" in second.flat and "20260101T000000-holder" in second.flat
        assert len(holder.runs()) == runs_before  # nothing of the refused run was written
        other = pg_example.cli("build", "-s", "raw.planes", "--full")  # other assets: fine
        assert other.exit_code == 0, other.describe()
    finally:
        holder.close()


def test_the_password_canary_appears_nowhere(pg_example: PgExample, pg_cluster: Any) -> None:
    # an error path too: a wrong password in the state URL is masked in the message
    bad = dict(pg_example.env, SQLORCH_STATE_URL=pg_example.env["SQLORCH_STATE_URL"] + "x")
    refused = run_cli(pg_example.path, "runs", env=bad)
    pg_example.outputs.append(refused.output)
    assert refused.exit_code == 2 and "****" in refused.output, refused.describe()
    logs = pg_example.cli("logs")
    assert logs.exit_code == 0
    for output in pg_example.outputs:
        assert PG_PASSWORD not in output
    leaked = [
        p
        for p in pg_example.path.rglob("*")
        if p.is_file() and PG_PASSWORD.encode() in p.read_bytes()
    ]
    assert leaked == []
    # the state store and the warehouse: every text column of every table
    rows = pg_example.sql(
        "select table_schema, table_name, column_name from information_schema.columns "
        "where table_schema not in ('pg_catalog', 'information_schema') "
        "and data_type in ('text', 'character varying')"
    )
    for schema, table, column in rows:
        hits = pg_example.sql(
            f'select count(*) from "{schema}"."{table}" where "{column}" like \'%{PG_PASSWORD}%\''
        )
        assert hits == [(0,)], f"{schema}.{table}.{column}"
    # and the server's own log
    assert PG_PASSWORD not in (pg_cluster.root / "server.log").read_text(errors="replace")


def test_dbt_flags_full_refresh_target_path_and_a_pr_style_deferred_build(
    pg_example: PgExample, tmp_path: Path
) -> None:
    artifacts = tmp_path / "prod-artifacts"
    full = pg_example.cli(
        "build", "-s", "mart_carrier_ontime_monthly", "us_federal_holidays_2013",
        "--full-refresh", "--target-path", str(artifacts),
    )  # fmt: skip
    # (sqlorch writes the monthly windows itself; the seed is dbt's, as the project redefines
    # how seeds load: its run_results.json. Views and tables run natively, issue 16)
    assert full.exit_code == 0, full.describe()
    assert "12 partitions" in full.flat  # every partition of the selection, not just stale ones
    assert (artifacts / "manifest.json").is_file() and (artifacts / "run_results.json").is_file()
    logs = pg_example.cli("logs", "--json").json_lines()
    invocations = [e for e in logs if e["kind"] == "dbt_invocation_finished"]
    assert invocations
    for e in invocations:  # a window's invocation never gets --full-refresh
        args = e["data"]["args"]
        assert not ("--vars" in args and "--full-refresh" in args), args
    # the monthly windows were written by sqlorch itself, not by dbt
    assert "marts.mart_carrier_ontime_monthly" in {
        k for e in invocations for k in e["data"].get("window_writes", ())
    }, invocations

    # a PR: one model edited; state:modified+ builds just it, reading upstream deferred
    model = pg_example.path / "models" / "marts" / "mart_route_scorecard.sql"
    model.write_text(model.read_text().replace("delay_score < 15 then", "delay_score < 14 then"))
    plan = pg_example.cli("build", "-s", "state:modified+", "--dry-run", "--json")
    assert [s["key"] for s in plan.json()["steps"]] == ["marts.mart_route_scorecard"]
    pr = pg_example.cli("build", "-s", "state:modified+", "--defer", "--state", str(artifacts))
    assert pr.exit_code == 0, pr.describe()
    assert "1 succeeded" in pr.flat
    # dbt's invocations got --defer (the model itself runs natively from SQL compiled with it)
    args = [
        e["data"]["args"]
        for e in pg_example.cli("logs", "--json").json_lines()
        if e["kind"] == "dbt_invocation_finished" and "args" in e["data"]
    ]
    args = [a for a in args if not str(a[0]).startswith("sqlorch: native")]
    assert all("--defer" in a and str(artifacts.resolve()) in a for a in args)
    status = {d["key"]: d for d in pg_example.cli("status", "--json").json()}
    run_id = pr.flat.split("run ", 1)[1].split()[0]
    assert status["marts.mart_route_scorecard"]["last_run_id"] == run_id
    assert status["marts.route_stats"]["last_run_id"] != run_id  # deferred, not rebuilt
    # --vars: part of the code version of the models that read them (as the project's vars)
    stats = pg_example.path / "models" / "marts" / "route_stats.sql"
    stats.write_text(
        stats.read_text().replace(
            "group by route, origin, dest",
            "group by route, origin, dest\nhaving count(*) >= {{ var('min_flights', 0) }}",
        )
    )
    assert pg_example.cli("build", "-s", "route_stats+").exit_code == 0
    same = pg_example.cli("build", "--dry-run", "--json")

    def code_changed(result: CliResult) -> set[str]:
        steps = result.json()["steps"]
        return {s["key"] for s in steps if "var min_flights changed" in " ".join(s["reasons"])}

    assert "marts.route_stats" not in code_changed(same)
    other = pg_example.cli("build", "--dry-run", "--json", "--vars", "{min_flights: 5}")
    assert other.exit_code == 0, other.describe()
    assert "marts.route_stats" in code_changed(other)
    assert "marts.fct_delays" not in code_changed(other)
    bad = pg_example.cli("build", "--full", "-s", "stg_airlines", "--defer", "--state", "no/dir")
    assert bad.exit_code == 2 and "no manifest.json there" in bad.flat, bad.describe()


def test_column_lineage_in_the_postgres_dialect(pg_example: PgExample) -> None:
    result = pg_example.cli("lineage", "marts.fct_delays.avg_dep_delay", "--json")
    assert result.exit_code == 0, result.describe()
    text = result.stdout
    for column in ("marts.fct_flights.dep_delay_min", "raw.flights.dep_delay"):
        assert column in text


def _pg_production(pg_example: PgExample) -> tuple[dict[str, str], dict[str, int]]:
    """Every production relation's content hash, and the row counts of production's state."""
    relations = pg_example.sql(
        "select table_schema, table_name from information_schema.tables "
        "where table_schema not in ('pg_catalog', 'information_schema', 'sqlorch') "
        "and table_schema not like '%\\_\\_%'"
    )
    content = {}
    for schema, name in relations:
        content[f"{schema}.{name}"] = pg_example.sql(
            f"select count(*) || ':' || coalesce(md5(string_agg(md5(t::text), '' "
            f'order by md5(t::text))), \'\') from "{schema}"."{name}" t'
        )[0][0]
    state = {
        t: pg_example.sql(f"select count(*) from sqlorch.{t}")[0][0]
        for t in ("runs", "events", "materializations", "partition_ledger", "check_results")
    }
    return content, state


def test_a_pr_build_in_an_environment_leaves_production_and_its_state_alone(
    pg_example: PgExample,
) -> None:
    stats = pg_example.path / "models" / "marts" / "route_stats.sql"
    stats.write_text(
        stats.read_text().replace(
            "    count(*) as flights,", "    count(*) as flights,\n    count(*) * 2 as twice,"
        )
    )
    before = _pg_production(pg_example)
    pr_env = dict(pg_example.env, SQLORCH_ENV="pr_9")
    pr = run_cli(
        pg_example.path, "build", "-s", "state:modified+", "--defer", "--state", "postgres",
        env=pr_env,
    )  # fmt: skip
    pg_example.outputs.append(pr.output)
    assert pr.exit_code == 0, pr.describe()
    assert "3 succeeded" in pr.flat, pr.describe()
    assert _pg_production(pg_example) == before  # production's tables and state unchanged
    kinds = dict(
        pg_example.sql(
            "select table_schema || '.' || table_name, table_type from information_schema.tables "
            "where table_schema like 'pr\\_9\\_\\_%'"
        )
    )
    built = ["marts.route_stats", "analytics.route_delay_score", "marts.mart_route_scorecard"]
    assert {k for k, v in kinds.items() if v == "BASE TABLE" and "sqlorch" not in k} == {
        f"pr_9__{k}" for k in built
    }
    assert kinds["pr_9__marts.fct_flights"] == "VIEW"  # production's upstream, read through
    assert pg_example.sql(
        "select count(*), sum(twice) = 2 * sum(flights) from pr_9__marts.route_stats"
    ) == [(pg_example.sql("select count(*) from marts.route_stats")[0][0], True)]
    # the environment's state is its own schema: one run, these three assets
    runs = run_cli(pg_example.path, "runs", "--json", env=pr_env).json()
    assert len(runs) == 1 and runs[0]["assets"]["succeeded"] == 3
    assert pg_example.sql("select count(*) from pr_9__sqlorch.runs") == [(1,)]
    # the cleanup job's command: every pr_9__ schema (state included) goes, nothing else
    dropped = run_cli(None, "env", "drop", "pr_9", "--project-dir", str(pg_example.path),
                      env=pr_env)  # fmt: skip
    pg_example.outputs.append(dropped.output)
    assert dropped.exit_code == 0, dropped.describe()
    assert pg_example.sql(
        "select count(*) from information_schema.schemata where schema_name like 'pr\\_9%'"
    ) == [(0,)]
    assert _pg_production(pg_example) == before
    stats.write_text(stats.read_text().replace("    count(*) * 2 as twice,\n", ""))


def test_a_window_whose_columns_changed_is_left_to_dbt_saying_why(pg_example: PgExample) -> None:
    table = "marts.mart_carrier_ontime_monthly"
    count = f"select count(*) from {table} where flight_month in ('2013-03-01', '2013-04-01')"
    before = pg_example.sql(count)[0][0]
    model = pg_example.path / "models" / "marts" / "mart_carrier_ontime_monthly.sql"
    text = model.read_text()
    assert "sum(flights) as flights" in text
    model.write_text(text.replace("sum(flights) as flights", "sum(flights)::bigint as flights"))
    result = pg_example.cli(
        "backfill", "mart_carrier_ontime_monthly", "--from", "2013-03-01", "--to", "2013-04-30"
    )
    assert result.exit_code == 0, result.describe()
    finished = window_events(pg_example)
    because = {k: v for d in finished for k, v in d.get("dbt_writes_because", {}).items()}
    # the table's column is numeric (a sum of bigint); the query now gives bigint:
    # the model's on_schema_change is dbt's to apply, so dbt writes the window
    assert because == {table: "its columns changed (flights numeric -> bigint)"}, because
    assert table not in {k for d in finished for k in d.get("window_writes", ())}
    assert pg_example.sql(count)[0][0] == before
    model.write_text(text)  # as it was: the example stays built for the tests after this one
    restored = pg_example.cli("build", "-s", "mart_carrier_ontime_monthly")
    assert restored.exit_code == 0, restored.describe()


def test_verify_on_postgres_finds_native_and_dbt_builds_the_same(
    pg_example: PgExample, pg_cluster: Any
) -> None:
    """`sqlorch verify` copies the database twice; the native copy equals dbt's (issue 16)."""
    # CREATE DATABASE ... TEMPLATE needs the database to itself: end the state-store session
    # the in-process builds above left open in this test process (a real `sqlorch verify` is
    # a process of its own)
    pg_cluster.sql(
        "select pg_terminate_backend(pid) from pg_stat_activity where datname = 'nycflights' "
        "and pid <> pg_backend_pid()"
    )
    # the unpartitioned models (the partitioned ones are window writes, tested above): the
    # copies keep their upstream tables, so dbt need not rebuild 365 windows (CI time)
    native = ["path:models/staging", "route_stats", "mart_delay_weather", "mart_route_scorecard"]
    result = pg_example.cli("verify", "--json", "-s", *native)
    assert result.output.lstrip().startswith("{"), result.describe()
    doc = result.json()
    assert doc["same"] is True and result.exit_code == 0, doc
    how = {m["key"]: m["execution"] for m in doc["models"]}
    assert set(how.values()) == {"native"} and len(how) == 9, how
    assert {"staging.stg_flights", "marts.route_stats", "marts.mart_delay_weather"} <= set(how)
    assert len(doc["tests"]) >= 30, doc["tests"]
    # the copies are databases of their own; the example's own relations are untouched
    names = {r[0] for r in pg_example.sql("select datname from pg_database")}
    assert {"nycflights__verify_dbt", "nycflights__verify_native"} <= names
