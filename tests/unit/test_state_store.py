"""The state stores: migrations, runs, events, materializations, concurrent readers.

Tests taking `new_store` run on SQLite and on PostgreSQL (the `postgres` param starts the
session's throwaway cluster: not in the fast lane).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from sqlorch.errors import StateError
from sqlorch.state.migrations import MIGRATIONS
from sqlorch.state.store import StateStore, attempt_row, event_row, materialization_row


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """Open (and reopen) one store: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return lambda: StateStore(tmp_path / "state.db")
    from sqlorch.state.postgres import PostgresStateStore

    url = request.getfixturevalue("pg_url")
    return lambda: PostgresStateStore(url)


def test_records_runs_events_and_latest_asset_state(new_store: Any) -> None:
    store = new_store()
    store.start_run("r1", "build", "", "2026-01-01T00:00:00Z")
    store.write_batch(
        [event_row("r1", "2026-01-01T00:00:01Z", "asset_started", "raw.a")],
        [attempt_row("r1", "raw.a", "success", None, "2026-01-01T00:00:02Z")],
        [materialization_row("raw.a", "r1", "2026-01-01T00:00:02Z", 10, 0.5, "v1")],
    )
    store.finish_run("r1", "success", "2026-01-01T00:00:03Z", 1, 0, 0)
    store.start_run("r2", "build", "-s raw.a", "2026-01-02T00:00:00Z")
    store.write_batch(
        [], [attempt_row("r2", "raw.a", "failed", None, "2026-01-02T00:00:01Z", "boom")], []
    )
    store.finish_run("r2", "failed", "2026-01-02T00:00:02Z", 0, 1, 0)

    assert [r.run_id for r in store.runs()] == ["r2", "r1"]
    assert store.run("r1") is not None and store.run("r") is None  # ambiguous prefix
    state = store.asset_states()["raw.a"]
    assert (state.rows, state.code_version, state.last_materialized_at) == (
        10,
        "v1",
        "2026-01-01T00:00:02Z",
    )
    assert (state.last_run_id, state.last_status, state.last_error) == ("r2", "failed", "boom")
    assert [e.kind for e in store.events("r1")] == ["asset_started"]


def test_a_second_process_reads_while_a_build_writes(tmp_path: Path) -> None:
    writer = StateStore(tmp_path / "state.db")
    writer.start_run("r1", "build", "", "2026-01-01T00:00:00Z")
    reader = StateStore(tmp_path / "state.db", readonly=True)
    assert reader.runs()[0].status == "running"
    raw = sqlite3.connect(tmp_path / "state.db")
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_abandoned_runs_are_marked_failed(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    store.start_run("r1", "build", "", "2026-01-01T00:00:00Z")
    con = sqlite3.connect(tmp_path / "state.db")
    con.execute("UPDATE runs SET pid = 999999999")
    con.commit()
    assert store.mark_abandoned_runs("2026-01-01T01:00:00Z") == 1
    assert store.runs()[0].status == "failed"


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    StateStore(tmp_path / "state.db").close()
    con = sqlite3.connect(tmp_path / "state.db")
    con.execute("INSERT INTO schema_version VALUES (?)", (len(MIGRATIONS) + 1,))
    con.commit()
    with pytest.raises(StateError, match="Upgrade sqlorch"):
        StateStore(tmp_path / "state.db")


def test_readonly_store_without_a_file_is_empty(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "nothing.db", readonly=True)
    assert store.runs() == [] and store.asset_states() == {}
    assert not (tmp_path / "nothing.db").exists()


def test_a_run_whose_process_died_reads_as_failed(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    store.start_run("r1", "build", "", "2026-01-01T00:00:00Z")
    assert store.runs()[0].status == "running"  # this process is alive
    con = sqlite3.connect(tmp_path / "state.db")
    con.execute("UPDATE runs SET pid = 999999999")
    con.commit()
    reader = StateStore(tmp_path / "state.db", readonly=True)
    assert reader.runs()[0].status == "failed"
    run = reader.run("r1")
    assert run is not None and run.status == "failed"


def test_failing_blocking_checks_per_asset_partition_and_check(new_store: Any) -> None:
    from sqlorch.state.store import check_result_row

    store = new_store()

    def result(
        run: str,
        check: str,
        asset: str,
        status: str,
        part: str | None = None,
        *,
        blocking: bool = True,
    ) -> tuple[Any, ...]:
        return check_result_row(
            run, check, check, "python", asset, status, blocking, f"{run}Z", partition=part
        )

    store.write_batch(
        [],
        [],
        [],
        [
            result("r1", "c1", "a", "fail"),
            result("r1", "c2", "a", "fail", blocking=False),  # warn-only: never blocks
            result("r1", "c1", "b", "fail", "2013-01-01"),
            result("r1", "c1", "b", "pass", "2013-01-02"),
            result("r2", "c1", "b", "skipped", "2013-01-01"),  # a skip changes nothing
            result("r2", "c1", "c", "error"),
            result("r3", "c1", "c", "pass"),  # passed later: cleared
        ],
    )
    failing = store.failing_blocking_checks()
    assert {k: [(r.check_id, r.partition, r.status) for r in v] for k, v in failing.items()} == {
        "a": [("c1", None, "fail")],
        "b": [("c1", "2013-01-01", "fail")],
    }
    assert [r.run_id for r in store.check_results(asset="c")] == ["r3", "r2"]
    assert [r.status for r in store.check_results(run_id="r2")] == ["error", "skipped"]
