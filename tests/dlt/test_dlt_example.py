"""The example project's dlt asset: ground stops loaded from JSON-lines files in the repo."""

from __future__ import annotations

import pytest
from conftest import BuiltExample, scalar
from dlt_helpers import ok

pytestmark = pytest.mark.dbt


def test_the_example_loads_ground_stops_with_dlt(built_example: BuiltExample) -> None:
    listed = {a["key"]: a for a in ok(built_example.cli("ls", "--json")).json()}
    for key in ("ops.ground_stops", "ops.ground_stops__reasons"):
        assert listed[key]["kind"] == "python" and listed[key]["file"] == "ingest/ground_stops.py"
    # the dbt model reads both tables as sources: they bind to the dlt assets
    assert set(listed["staging.stg_ground_stops"]["deps"]) == {
        "ops.ground_stops",
        "ops.ground_stops__reasons",
    }
    status = {s["key"]: s for s in ok(built_example.cli("status", "--json")).json()}
    assert status["ops.ground_stops"]["rows"] == 30
    assert status["ops.ground_stops__reasons"]["rows"] == scalar(
        built_example.db, "select count(*) from ops.ground_stops__reasons"
    )
    assert scalar(built_example.db, "select count(*) from staging.stg_ground_stops") == 30
    assert not status["staging.stg_ground_stops"]["stale"]
    events = ok(built_example.cli("logs", "--json")).json_lines()
    done = {e["asset"]: e for e in events if e.get("kind") == "asset_materialized"}
    meta = done["ops.ground_stops"]["data"]["metadata"]
    assert meta["rows_loaded"] == 30 and meta["dlt_load_id"]
