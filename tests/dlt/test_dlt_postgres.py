"""dlt assets on a PostgreSQL target (the session's real cluster): dlt loads with the target's
credentials, partition windows land atomically there too, and the password is never shown."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import PG_PASSWORD, PG_USER, TinyProject, run_cli
from dlt_helpers import MODEL, SOURCE, SOURCES_YML, event, ok, write_lines
from test_dlt_partitions import PARTITIONED

pytestmark = pytest.mark.postgres

PROFILES = """
{name}:
  target: pg
  outputs:
    pg:
      type: postgres
      host: "{host}"
      port: {port}
      user: {user}
      password: "{{{{ env_var('SQLORCH_PG_PASSWORD') }}}}"
      dbname: {dbname}
      schema: main
      threads: 2
"""


def _project(
    make: Callable[..., TinyProject], cluster: Any, name: str, files: dict[str, str], code: str
) -> tuple[TinyProject, str]:
    cluster.sql(f'CREATE DATABASE "{name}" OWNER {PG_USER}')
    profiles = PROFILES.format(
        name=name, host=cluster.socket_dir, port=cluster.port, user=PG_USER, dbname=name
    )
    made = make({**files, "profiles.yml": profiles}, {"ingest/loads.py": code}, name=name)
    return made, str(cluster.conninfo(name, PG_USER, PG_PASSWORD))


def _sql(conninfo: str, statement: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as con:
        cur = con.execute(statement)
        return cur.fetchall() if cur.description else []


def _hash(conninfo: str, table: str) -> str:
    schema, name = table.split(".")
    cols = [
        c
        for (c,) in _sql(
            conninfo,
            "select column_name from information_schema.columns where table_schema = "
            f"'{schema}' and table_name = '{name}' order by ordinal_position",
        )
        if not c.startswith("_dlt_")
    ]
    rows = _sql(conninfo, f"select {', '.join(cols)} from {table}")
    return hashlib.sha256(repr(sorted(map(repr, rows))).encode()).hexdigest()


def _no_password(project: Path, outputs: list[str]) -> None:
    for text in outputs:
        assert PG_PASSWORD not in text
    for path in project.rglob("*"):
        if path.is_file():
            assert PG_PASSWORD.encode() not in path.read_bytes(), path


def test_dlt_loads_into_postgres_with_the_targets_credentials(
    make_dbt_project: Callable[..., TinyProject], pg_cluster: Any
) -> None:
    p, conninfo = _project(
        make_dbt_project,
        pg_cluster,
        "dltpg",
        {"models/sources.yml": SOURCES_YML, "models/enriched.sql": MODEL},
        SOURCE,
    )
    write_lines(p.path / "data/events/day01.jsonl", [event(i, 1) for i in range(1, 4)])
    write_lines(p.path / "data/users/all.jsonl", [{"id": u, "name": f"user{u}"} for u in range(3)])
    env = {"SQLORCH_PG_PASSWORD": PG_PASSWORD}
    outputs = [ok(run_cli(p.path, "build", env=env)).output]
    assert _sql(conninfo, "select count(*) from raw.events") == [(3,)]
    assert _sql(conninfo, "select count(*) from raw.events__tags") == [(6,)]
    assert _sql(conninfo, "select count(*) from main.enriched") == [(3,)]
    # incremental: a second file adds only its rows
    write_lines(p.path / "data/events/day02.jsonl", [event(i, 2) for i in range(4, 6)])
    outputs.append(ok(run_cli(p.path, "build", env=env)).output)
    assert _sql(conninfo, "select count(*) from raw.events") == [(5,)]
    doc = ok(run_cli(p.path, "status", "--json", env=env)).json()
    states = {s["key"]: s for s in doc}
    assert states["raw.events"]["rows"] == 5
    assert not any(s.get("stale") for s in doc), doc
    outputs.append(ok(run_cli(p.path, "logs", env=env)).output)
    # a wrong password: a clear failure that does not print what was given
    wrong = run_cli(
        p.path, "build", "-s", "raw.events", "--full", env={"SQLORCH_PG_PASSWORD": "nope-x9"}
    )
    assert wrong.exit_code != 0 and "nope-x9" not in wrong.output, wrong.describe()
    assert "password" in wrong.output, wrong.describe()
    _no_password(p.path, outputs)


def test_a_partition_window_on_postgres_is_replaced_atomically(
    make_dbt_project: Callable[..., TinyProject], pg_cluster: Any
) -> None:
    code = PARTITIONED.replace("{disposition}", "merge").replace(
        "            yield json.loads(line)",
        "            row = json.loads(line)\n"
        "            if row.get('boom'):\n"
        "                raise ValueError(f\"bad row {row['id']}\")\n"
        "            yield row",
    )
    p, conninfo = _project(
        make_dbt_project,
        pg_cluster,
        "dltpgpart",
        {"models/sources.yml": SOURCES_YML.replace("      - name: users\n", "")},
        code,
    )
    for day in (1, 2, 3):
        rows = [event(10 * day + i, day) for i in range(day + 1)]
        write_lines(p.path / f"data/events/day{day:02d}.jsonl", rows)
    env = {"SQLORCH_PG_PASSWORD": PG_PASSWORD}
    outputs = [ok(run_cli(p.path, "build", env=env)).output]
    assert _sql(conninfo, "select count(*) from raw.events") == [(9,)]
    tables = ("raw.events", "raw.events__tags")
    before = {t: _hash(conninfo, t) for t in tables}
    backfill = ("backfill", "raw.events", "--from", "2024-01-02", "--to", "2024-01-02")
    write_lines(
        p.path / "data/events/day02.jsonl",
        [event(20, 2, kind="changed"), event(21, 2, boom=True), event(22, 2)],
    )
    failed = run_cli(p.path, *backfill, env=env)
    outputs.append(failed.output)
    assert failed.exit_code != 0 and "bad row 21" in failed.output, failed.describe()
    assert {t: _hash(conninfo, t) for t in tables} == before
    write_lines(
        p.path / "data/events/day02.jsonl",
        [event(20, 2, kind="changed"), event(21, 2), event(22, 2)],
    )
    hashes = []
    for _ in range(2):
        outputs.append(ok(run_cli(p.path, *backfill, env=env)).output)
        hashes.append({t: _hash(conninfo, t) for t in tables})
    assert _sql(conninfo, "select kind from raw.events where id = 20") == [("changed",)]
    assert _sql(conninfo, "select count(*) from raw.events__tags") == [(18,)]
    assert hashes[0] == hashes[1] and hashes[0]["raw.events"] != before["raw.events"]
    _no_password(p.path, outputs)
