"""Environments and leases, without dbt: names, settings, the warehouse view, waiting.

Real DuckDB files and real SQLite stores (their lock files); only the clock of the waiting
loop is a fake.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from sqlorch.app.leases import acquire_waiting
from sqlorch.core.environment import Environment
from sqlorch.errors import ConfigError, LeaseHeldError
from sqlorch.settings import load_settings, with_environment
from sqlorch.state.store import SqliteStateStore
from sqlorch.warehouse.duckdb import DuckDBWarehouse
from sqlorch.warehouse.environment import EnvironmentWarehouse, physical, readable, unwrap


def test_an_environment_maps_keys_to_its_relations_and_back() -> None:
    env = Environment("pr_12")
    assert env.relation("marts.fct_delays") == "pr_12__marts.fct_delays"
    assert env.key("pr_12__marts.fct_delays") == "marts.fct_delays"
    assert env.key("marts.fct_delays") is None
    assert env.key("pr_123__marts.x") is None  # another environment's (pr_123)
    assert env.production_schema("pr_12__raw") == "raw"


@pytest.mark.parametrize("name", ["PR-1", "pr__1", "1pr", "pr_", "a" * 41, "pr 1", ""])
def test_a_bad_environment_name_is_refused_in_one_paragraph(tmp_path: Path, name: str) -> None:
    (tmp_path / "dbt_project.yml").write_text("name: x\n")
    with pytest.raises(ConfigError, match="cannot name an environment") as caught:
        load_settings(project_dir=tmp_path, env={"SQLORCH_ENV": name or " "})
    assert "SQLORCH_ENV" in caught.value.message


def test_an_environment_has_its_own_state_and_production_stays_where_it_was(
    tmp_path: Path,
) -> None:
    (tmp_path / "dbt_project.yml").write_text("name: x\n")
    url = "postgresql://u:secret@h/db?schema=st"
    prod = load_settings(project_dir=tmp_path, env={})
    pr = load_settings(project_dir=tmp_path, env={"SQLORCH_ENV": "pr_3"})
    assert pr.environment == "pr_3" and prod.environment is None
    assert pr.state_path == tmp_path / ".sqlorch" / "envs" / "pr_3" / "state.db"
    assert pr.state_dir == tmp_path / ".sqlorch" / "envs" / "pr_3"
    assert pr.production().state_path == prod.state_path == tmp_path / ".sqlorch" / "state.db"
    pg = load_settings(project_dir=tmp_path, env={"SQLORCH_ENV": "pr_3", "SQLORCH_STATE_URL": url})
    assert pg.state_url is not None and pg.state_url.endswith("schema=pr_3__st")
    assert pg.production().state_url == url
    assert with_environment(pg.production(), "pr_4").state_url.endswith("schema=pr_4__st")  # type: ignore[union-attr]


def test_the_warehouse_of_an_environment_writes_and_reads_only_its_relations(
    tmp_path: Path,
) -> None:
    inner = DuckDBWarehouse(str(tmp_path / "w.duckdb"))
    inner.ensure_schema("raw")
    inner.write("raw.t", pa.table({"n": [1, 2]}))  # production's
    env = EnvironmentWarehouse(inner, Environment("pr_1"))
    try:
        assert env.relations() == frozenset()  # production's tables are not the environment's
        assert readable(env, "raw.t") == "raw.t"  # not there yet: production's is read
        assert env.write("raw.t", pa.table({"n": [1, 2, 3]})) == 3
        assert env.relations() == {"raw.t"}
        assert env.row_counts(["raw.t"]) == {"raw.t": 3}
        assert [c.name for c in env.table_columns(["raw.t"])["raw.t"]] == ["n"]
        assert readable(env, "raw.t") == physical(env, "raw.t") == "pr_1__raw.t"
        assert inner.row_counts(["raw.t"]) == {"raw.t": 2}  # production's is as it was
        assert unwrap(env) is inner and physical(inner, "raw.t") == "raw.t"
    finally:
        env.close()


def test_waiting_for_a_lease_says_once_whom_it_waits_for_and_then_takes_it(
    tmp_path: Path,
) -> None:
    holder = SqliteStateStore(tmp_path / "state.db")
    waiter = SqliteStateStore(tmp_path / "state.db")
    holder.acquire_lease(["raw.a", "raw.b"], "run-holder")
    said: list[str] = []
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds
        if now[0] >= 2:
            holder.release_lease()

    try:
        with pytest.raises(LeaseHeldError, match="run-holder") as refused:
            waiter.acquire_lease(["raw.b"], "run-waiter")  # without waiting: refused
        assert refused.value.asset == "raw.b" and refused.value.exit_code == 2
        waited = acquire_waiting(
            waiter, ["raw.b"], "run-waiter", 10, said.append, clock=lambda: now[0], sleep=sleep
        )
        assert waited and len(said) == 1 and "run-holder" in said[0] and "raw.b" in said[0]
        with pytest.raises(LeaseHeldError, match="run-waiter"):
            holder.acquire_lease(["raw.b"], "run-again")  # the waiter holds it now
        assert not acquire_waiting(holder, ["raw.c"], "run-c", 0, said.append)  # free: no wait
        with pytest.raises(LeaseHeldError, match="Waited 0 s"):
            acquire_waiting(holder, ["raw.b"], "run-d", 0, said.append, sleep=sleep)
    finally:
        waiter.release_lease()
        holder.release_lease()
        waiter.close()
        holder.close()
