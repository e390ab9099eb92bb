"""Partitioned dlt assets: each daily partition hands its window to the resource's
incremental, and a backfill of a range reloads exactly that range, idempotently."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import TinyProject, query, run_cli, scalar
from dlt_helpers import SOURCES_YML, content_hash, event, ok, write_lines

pytestmark = pytest.mark.dbt

PARTITIONED = """
import json
from pathlib import Path

import dlt

from sqlorch import daily, dlt_assets

DATA = Path(__file__).resolve().parents[1] / "data"


@dlt.resource(primary_key="id", write_disposition="{disposition}")
def events(
    updated=dlt.sources.incremental("updated_at", initial_value="2024-01-01T00:00:00+00:00"),
):
    for path in sorted(DATA.glob("events/*.jsonl")):
        for line in path.read_text().splitlines():
            yield json.loads(line)


raw_events = dlt_assets(
    events, dataset="raw", partitions=daily("2024-01-01", end="2024-01-04")
)
"""


def project(make: Callable[..., TinyProject], disposition: str) -> TinyProject:
    made = make(
        {
            "models/sources.yml": SOURCES_YML.replace("      - name: users\n", ""),
            "models/per_day.sql": "{{ config(materialized='table') }}\n"
            "select cast(updated_at as date) as day, count(*) as n "
            "from {{ source('raw', 'events') }} group by 1",
        },
        {"ingest/loads.py": PARTITIONED.replace("{disposition}", disposition)},
        name=f"dltpart_{disposition}",
    )
    for day in (1, 2, 3):
        rows = [event(10 * day + i, day) for i in range(day + 1)]
        write_lines(made.path / f"data/events/day{day:02d}.jsonl", rows)
    return made


@pytest.mark.parametrize("disposition", ["merge", "replace"])
def test_a_partition_loads_its_window_and_a_backfill_reloads_exactly_it(
    make_dbt_project: Callable[..., TinyProject], disposition: str
) -> None:
    p = project(make_dbt_project, disposition)
    ok(run_cli(p.path, "build"))
    per_day = query(p.db, "select day::varchar, n from main.per_day order by 1")
    assert per_day == [("2024-01-01", 2), ("2024-01-02", 3), ("2024-01-03", 4)]
    events = ok(run_cli(p.path, "logs", "--json")).json_lines()
    windows = sorted(
        tuple(e["data"]["metadata"]["dlt_window"])
        for e in events
        if e.get("kind") == "partitions_materialized" and e.get("asset") == "raw.events"
    )
    assert [w[0][:10] for w in windows] == ["2024-01-01", "2024-01-02", "2024-01-03"]
    ok(run_cli(p.path, "ls", "--json"))  # the child table is an asset now
    before = {t: content_hash(p.db, t) for t in ("raw.events", "raw.events__tags")}
    load_ids = dict(query(p.db, "select id, _dlt_load_id from raw.events"))
    # the source changed a row of day 2 and of day 3: a backfill of day 2 takes only day 2's
    write_lines(
        p.path / "data/events/day02.jsonl",
        [event(20, 2, kind="changed"), event(21, 2), event(22, 2)],
    )
    write_lines(p.path / "data/events/day03.jsonl", [event(30 + i, 3, kind="x") for i in range(4)])
    for _ in range(2):
        ok(run_cli(p.path, "backfill", "raw.events", "--from", "2024-01-02", "--to", "2024-01-02"))
        assert scalar(p.db, "select kind from raw.events where id = 20") == "changed"
        assert scalar(p.db, "select count(*) from raw.events where kind = 'x'") == 0
        assert scalar(p.db, "select count(*) from raw.events") == 9
        assert scalar(p.db, "select count(*) from raw.events__tags") == 18
        after = dict(query(p.db, "select id, _dlt_load_id from raw.events"))
        assert all(after[i] == load_ids[i] for i in after if not 20 <= i < 30)
        assert all(after[i] != load_ids[i] for i in (20, 21, 22))
    hashes = [content_hash(p.db, "raw.events")]
    ok(run_cli(p.path, "backfill", "raw.events", "--from", "2024-01-02", "--to", "2024-01-02"))
    hashes.append(content_hash(p.db, "raw.events"))
    assert hashes[0] == hashes[1] != before["raw.events"]
    assert content_hash(p.db, "raw.events__tags") == before["raw.events__tags"]


def _partitions(path: Path, key: str) -> dict[str, Any]:
    doc: dict[str, Any] = ok(run_cli(path, "partitions", key, "--json")).json()["partitions"]
    return doc


def test_a_failed_partition_load_leaves_the_window_as_it_was(
    make_dbt_project: Callable[..., TinyProject], monkeypatch: pytest.MonkeyPatch
) -> None:
    p = project(make_dbt_project, "merge")
    p.path.joinpath("ingest/loads.py").write_text(
        PARTITIONED.replace("{disposition}", "merge").replace(
            "            yield json.loads(line)",
            "            row = json.loads(line)\n"
            "            if row.get('boom'):\n"
            "                raise ValueError(f\"bad row {row['id']}\")\n"
            "            yield row",
        )
    )
    ok(run_cli(p.path, "build"))
    ok(run_cli(p.path, "ls", "--json"))  # the child table is an asset now
    tables = ("raw.events", "raw.events__tags")
    before = {t: content_hash(p.db, t) for t in tables}
    day2 = sorted(query(p.db, "select id, kind, _dlt_load_id from raw.events where id < 30"))
    assert [r[0] for r in day2] == [10, 11, 20, 21, 22]

    # 1. the source raises in the middle of day 2's window (after yielding a changed row)
    write_lines(
        p.path / "data/events/day02.jsonl",
        [event(20, 2, kind="changed"), event(21, 2, boom=True), event(22, 2)],
    )
    failed = run_cli(p.path, "backfill", "raw.events", "--from", "2024-01-02", "--to", "2024-01-02")
    assert failed.exit_code != 0
    assert "bad row 21" in failed.output, failed.describe()
    assert {t: content_hash(p.db, t) for t in tables} == before
    assert sorted(query(p.db, "select id, kind, _dlt_load_id from raw.events where id < 30")) == (
        day2
    )
    assert _partitions(p.path, "raw.events")["failed"] == [["2024-01-02", "2024-01-02"]]

    # 2. dlt loaded the window, then the swap fails after replacing the root table's rows
    from sqlorch.execute import dlt_windows

    real = dlt_windows.insert_from

    def broken(session: Any, source: str, target: str, columns: list[str]) -> None:
        if target.endswith('"events__tags"'):
            raise RuntimeError("disk full (injected)")
        real(session, source, target, columns)

    write_lines(
        p.path / "data/events/day02.jsonl",
        [event(20, 2, kind="changed"), event(21, 2), event(22, 2)],
    )
    monkeypatch.setattr(dlt_windows, "insert_from", broken)
    failed = run_cli(p.path, "backfill", "raw.events", "--from", "2024-01-02", "--to", "2024-01-02")
    assert failed.exit_code != 0
    assert "disk full (injected)" in failed.output and "previous rows" in failed.output
    assert {t: content_hash(p.db, t) for t in tables} == before
    assert _partitions(p.path, "raw.events")["failed"] == [["2024-01-02", "2024-01-02"]]

    # 3. without the fault, the backfill lands the new window (twice: the same content)
    monkeypatch.undo()
    hashes = []
    for _ in range(2):
        ok(run_cli(p.path, "backfill", "raw.events", "--from", "2024-01-02", "--to", "2024-01-02"))
        hashes.append({t: content_hash(p.db, t) for t in tables})
        assert scalar(p.db, "select kind from raw.events where id = 20") == "changed"
        assert scalar(p.db, "select count(*) from raw.events__tags") == 18
    assert hashes[0] == hashes[1] and hashes[0]["raw.events"] != before["raw.events"]
    assert _partitions(p.path, "raw.events")["failed"] == []
    assert not any(
        s.startswith("raw_sqlorch_window")
        for (s,) in query(p.db, "select schema_name from information_schema.schemata")
    )
