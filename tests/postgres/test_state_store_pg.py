"""The PostgreSQL state store: migrations, ledgers, leases, copy, and every refusal (exit 2).

All run against the session's throwaway PostgreSQL 15 cluster (tests/conftest.py `pg_cluster`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import PG_PASSWORD, PG_USER, run_cli

from sqlorch.errors import StateError
from sqlorch.state.migrations import MIGRATIONS, statements
from sqlorch.state.postgres import PostgresStateStore
from sqlorch.state.records import LedgerRow
from sqlorch.state.store import StateStore, attempt_row, event_row, materialization_row

pytestmark = pytest.mark.postgres


def _fill(store: Any) -> None:
    store.start_run("r1", "build", "-s raw.a", "2026-01-01T00:00:00Z")
    store.write_batch(
        [event_row("r1", "2026-01-01T00:00:01Z", "asset_started", "raw.a")],
        [attempt_row("r1", "raw.a", "success", None, "2026-01-01T00:00:02Z")],
        [
            materialization_row(
                "raw.a", "r1", "2026-01-01T00:00:02Z", 10, 0.5, "v1", columns=[("x", "BIGINT")]
            )
        ],
    )
    store.save_code_parts([("raw.a", "v1", {"sql": "select 1"})])
    store.save_code_parts([("raw.a", "v1", {"sql": "select 1"})])  # INSERT OR IGNORE
    store.update_ledger(
        "raw.a", lambda rows: [*rows, LedgerRow("", "2013-01-01", "2013-01-31", "done", "r1", "t")]
    )
    store.finish_run("r1", "success", "2026-01-01T00:00:03Z", 1, 0, 0)


def test_the_same_migrations_build_the_same_tables(pg_url: str, tmp_path: Path) -> None:
    store = PostgresStateStore(pg_url)
    assert store.schema_version() == len(MIGRATIONS)
    pg = {
        r[0]
        for r in store._rows(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'sqlorch'"
        )
    }
    lite = StateStore(tmp_path / "s.db")
    sqlite_tables = {
        r[0]
        for r in lite._rows("SELECT name FROM sqlite_master WHERE type = 'table'")
        if not r[0].startswith("sqlite_")
    }
    assert pg == sqlite_tables
    # every translated statement is PostgreSQL (no SQLite type left)
    for migration in MIGRATIONS:
        for statement in statements(migration, "postgres"):
            assert "AUTOINCREMENT" not in statement and " REAL" not in statement
    store.close()
    PostgresStateStore(pg_url).close()  # reopening migrates nothing and fails nothing


def test_records_and_reads_back_like_sqlite(pg_url: str, tmp_path: Path) -> None:
    pg = PostgresStateStore(pg_url)
    lite = StateStore(tmp_path / "s.db")
    for store in (pg, lite):
        _fill(store)
    for method in ("runs", "asset_states", "latest_columns", "ledgers", "known_assets"):
        assert getattr(pg, method)() == getattr(lite, method)(), method
    assert pg.last_materializations() == lite.last_materializations()
    assert [e.kind for e in pg.events("r1")] == ["asset_started"]
    assert pg.run("r")  # a unique prefix
    assert pg.asset_states()["raw.a"].code_parts == {"sql": "select 1"}


def test_a_readonly_store_on_an_empty_database_reads_empty_and_creates_nothing(
    pg_url: str, pg_cluster: Any
) -> None:
    store = PostgresStateStore(pg_url, readonly=True)
    assert store.runs() == [] and store.asset_states() == {}
    dbname = pg_url.split("/")[3].split("?")[0]
    assert (
        pg_cluster.sql("SELECT count(*) FROM pg_namespace WHERE nspname = 'sqlorch'", dbname)[0][0]
        == 0
    )


def test_a_lease_refuses_a_second_build_on_the_same_assets_naming_the_holder(
    pg_url: str,
) -> None:
    first = PostgresStateStore(pg_url)
    second = PostgresStateStore(pg_url)
    first.acquire_lease(["raw.a", "raw.b"], "20260101T000000-aaaaaa")
    second.acquire_lease(["raw.c"], "20260101T000000-bbbbbb")  # other assets: fine
    with pytest.raises(StateError) as err:
        second.acquire_lease(["raw.b", "raw.d"], "20260101T000000-cccccc")
    assert "raw.b" in str(err.value) and "20260101T000000-aaaaaa" in str(err.value)
    assert PG_PASSWORD not in str(err.value)
    # a run that is not holding its connection any more is abandoned; a live one is not
    first.start_run("20260101T000000-aaaaaa", "build", "", "t0")
    first.start_run("20260101T000000-dead00", "build", "", "t0")
    assert first.mark_abandoned_runs("t1") == 1
    assert {r.run_id: r.status for r in first.runs()} == {
        "20260101T000000-aaaaaa": "running",
        "20260101T000000-dead00": "failed",
    }
    first.release_lease()  # and now the second build may go
    second.release_lease()
    second.acquire_lease(["raw.b"], "20260101T000000-cccccc")
    second.close()
    first.close()


def _database(url: str) -> str:
    return url.split("/")[3].split("?")[0]


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda u: u.replace(PG_PASSWORD, "wrong-password"), "user or password is wrong"),
        (lambda u: u.replace("/" + _database(u) + "?", "/no_such_db?"), "database does not exist"),
        (lambda u: u.replace("port=", "port=1"), "server runs"),
        (lambda u: u.replace("?", "?bogus_param=1&"), "malformed"),
    ],
    ids=["wrong-password", "missing-database", "no-server", "bad-url"],
)
def test_bad_state_urls_are_one_clear_paragraph_exit_2_with_the_password_masked(
    pg_url: str, example_project: Path, change: Any, needle: str
) -> None:
    url = change(pg_url)
    result = run_cli(example_project, "status", env={"SQLORCH_STATE_URL": url})
    assert result.exit_code == 2, result.describe()
    assert needle in result.flat, result.describe()
    assert PG_PASSWORD not in result.output and "wrong-password" not in result.output
    assert "****" in result.output
    assert "Traceback" not in result.output
    assert not (example_project / ".sqlorch" / "state.db").exists()


def test_a_schema_that_is_not_ours_is_refused_and_left_alone(pg_url: str, pg_cluster: Any) -> None:
    db = _database(pg_url)
    pg_cluster.sql("CREATE SCHEMA sqlorch AUTHORIZATION " + PG_USER, db)
    pg_cluster.sql("CREATE TABLE sqlorch.customers (id int)", db)
    with pytest.raises(StateError) as err:
        PostgresStateStore(pg_url)
    assert "not a sqlorch state store" in str(err.value) and err.value.exit_code == 2
    assert PG_PASSWORD not in str(err.value)
    tables = pg_cluster.sql(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'sqlorch'", db
    )
    assert tables == [("customers",)]
    # another schema of the same database is fine
    PostgresStateStore(pg_url + "&schema=sqlorch_state").close()


def test_a_server_older_than_needed_is_refused_before_writing(
    pg_url: str, pg_cluster: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlorch.state.postgres as pg

    monkeypatch.setattr(pg, "MIN_SERVER_VERSION", 990000)  # injected: this server is "too old"
    with pytest.raises(StateError) as err:
        PostgresStateStore(pg_url)
    assert "needs 99 or newer" in str(err.value) and "15." in str(err.value)
    db = _database(pg_url)
    assert pg_cluster.sql("SELECT count(*) FROM pg_namespace WHERE nspname = 'sqlorch'", db) == [
        (0,)
    ]


def test_state_copy_moves_a_sqlite_store_and_migrate_reports_the_version(
    pg_url: str, example_project: Path
) -> None:
    lite = StateStore(example_project / ".sqlorch" / "state.db")
    _fill(lite)
    lite.start_run("r2", "build", "", "2026-01-02T00:00:00Z")
    lite.finish_run("r2", "failed", "2026-01-02T00:00:01Z", 0, 1, 0)
    lite.close()
    here = ("--project-dir", str(example_project))
    result = run_cli(None, "state", "copy", *here, "--from", "sqlite", "--to", pg_url)
    assert result.exit_code == 0, result.describe()
    assert PG_PASSWORD not in result.output
    pg = PostgresStateStore(pg_url)
    lite = StateStore(example_project / ".sqlorch" / "state.db")
    assert pg.runs() == lite.runs() and pg.ledgers() == lite.ledgers()
    assert pg.last_materializations() == lite.last_materializations()
    # new rows continue after the copied ids
    pg.write_batch([event_row("r3", "t", "asset_started", "raw.a")], [], [])
    assert max(e.id for e in pg.events("r3")) > max(e.id for e in pg.events("r1"))
    again = run_cli(None, "state", "copy", *here, "--to", pg_url)
    assert again.exit_code == 2 and "already holds runs" in again.flat, again.describe()
    migrate = run_cli(None, "state", "migrate", *here, env={"SQLORCH_STATE_URL": pg_url})
    assert migrate.exit_code == 0, migrate.describe()
    assert f"schema version {len(MIGRATIONS)}" in migrate.flat
    assert PG_PASSWORD not in migrate.output and "****" in migrate.output


def test_opening_an_up_to_date_store_takes_one_query(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    first = PostgresStateStore(pg_url)  # creates the schema (the full check, then migrations)
    _fill(first)
    first.close()
    sent: list[str] = []
    execute = psycopg.Cursor.execute

    def counting(self: Any, query: Any, params: Any = None, **kw: Any) -> Any:
        sent.append(str(query))
        return execute(self, query, params, **kw)

    monkeypatch.setattr(psycopg.Cursor, "execute", counting)
    for readonly in (True, False):
        sent.clear()
        store = PostgresStateStore(pg_url, readonly=readonly)
        try:
            assert len(sent) == 1, sent  # version, tables and search path in one round trip
            assert [r.run_id for r in store.runs()] == ["r1"]  # unqualified names resolve
        finally:
            store.close()
