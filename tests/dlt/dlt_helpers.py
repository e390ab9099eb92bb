"""Fixtures of the dlt tests: a tiny dbt project whose raw tables a dlt source over local
JSON-lines files loads (no network), and helpers to add files and read tables."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from conftest import TinyProject, query, run_cli

#: the dlt source of the tests: one resource per folder of JSON-lines files, nested `tags`
#: (a child table), an incremental cursor on `updated_at`
SOURCE = """
import json
from pathlib import Path

import dlt

from sqlorch import dlt_assets

DATA = Path(__file__).resolve().parents[1] / "data"


@dlt.resource(primary_key="id", write_disposition="merge")
def events(
    updated=dlt.sources.incremental("updated_at", initial_value="2024-01-01T00:00:00+00:00"),
):
    for path in sorted(DATA.glob("events/*.jsonl")):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if row.get("boom"):
                raise ValueError(f"bad row {row['id']}")
            yield row


@dlt.resource(write_disposition="replace")
def users():
    for path in sorted(DATA.glob("users/*.jsonl")):
        yield from (json.loads(line) for line in path.read_text().splitlines())


@dlt.source
def files():
    return events, users


raw_files = dlt_assets(files(), dataset="raw")
"""

SOURCES_YML = """
version: 2
sources:
  - name: raw
    schema: raw
    tables:
      - name: events
      - name: events__tags
      - name: users
"""

MODEL = """
{{ config(materialized='table') }}
select e.id, e.kind, u.name, (select count(*) from {{ source('raw', 'events__tags') }} t
  where t._dlt_parent_id = e._dlt_id) as n_tags
from {{ source('raw', 'events') }} e left join {{ source('raw', 'users') }} u on u.id = e.user_id
"""


def event(i: int, day: int, **extra: Any) -> dict[str, Any]:
    """One event row: `day` of January 2024, two nested tags."""
    return {
        "id": i,
        "kind": "click" if i % 2 else "view",
        "user_id": i % 3,
        "updated_at": f"2024-01-{day:02d}T{i % 24:02d}:00:00+00:00",
        "tags": [{"t": f"a{i}"}, {"t": f"b{i}"}],
        **extra,
    }


def write_lines(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Write `rows` as a JSON-lines file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def dlt_project(make_dbt_project: Callable[..., TinyProject]) -> TinyProject:
    """A dbt project with the dlt source above, a model over its tables, and first files."""
    project = make_dbt_project(
        {"models/sources.yml": SOURCES_YML, "models/enriched.sql": MODEL},
        {"ingest/loads.py": SOURCE},
        name="dltp",
    )
    write_lines(project.path / "data/events/day01.jsonl", [event(i, 1) for i in range(1, 4)])
    write_lines(
        project.path / "data/users/all.jsonl",
        [{"id": u, "name": f"user{u}"} for u in range(3)],
    )
    return project


def ok(result: Any) -> Any:
    """Assert a CLI run succeeded; return it."""
    assert result.exit_code == 0 and result.exception is None, result.describe()
    return result


def content_hash(db: Path, table: str, exclude: Sequence[str] = ()) -> str:
    """A hash of a table's rows (order-free), leaving out dlt's per-load bookkeeping columns."""
    cols = [
        r[0]
        for r in query(
            db,
            "select column_name from information_schema.columns where table_schema || '.' || "
            "table_name = ? order by ordinal_position",
            [table],
        )
        if not r[0].startswith("_dlt_") and r[0] not in exclude
    ]
    rows = query(db, f"select {', '.join(cols)} from {table} order by all")
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def status(project: Path) -> dict[str, dict[str, Any]]:
    """`sqlorch status --json` by key."""
    return {s["key"]: s for s in ok(run_cli(project, "status", "--json")).json()}
