"""The UI's pages and their JSON twins on the example project after a real build.

Read-only: the shared `built_example` is not changed (a dry-run plan writes nothing).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import BuiltExample
from webclient import csrf_token, web_client

pytestmark = pytest.mark.dbt


@pytest.fixture(scope="module")
def client(built_example: BuiltExample) -> Iterator[Any]:
    with web_client(built_example.path) as c:
        yield c


def test_graph_page_draws_every_asset_with_its_state(client: Any) -> None:
    doc = client.get("/api/graph").json()
    keys = {a["key"] for a in doc["assets"]}
    assert {"raw.flights", "marts.fct_delays", "analytics.route_delay_score"} <= keys
    assert doc["selected"] is None
    fct = next(a for a in doc["assets"] if a["key"] == "marts.fct_delays")
    assert fct["deps"] == ["marts.fct_flights"] and fct["stale"] is False
    assert fct["kind"] == "model" and fct["last_outcome"] == "success"
    assert fct["partitions"]["done"] == [["2013-01-01", "2013-12-31"]]
    page = client.get("/")
    assert page.status_code == 200
    drawn = set(re.findall(r'data-key="([^"]+)"', page.text))
    assert drawn == keys
    assert 'href="/assets/marts.fct_delays"' in page.text
    # hover: a title with the state (sources are observed, everything else fresh)
    assert "state: fresh" in page.text and "<svg" in page.text


def test_graph_selection_takes_dbt_syntax_and_shows_the_neighbourhood(client: Any) -> None:
    doc = client.get("/api/graph", params={"select": "+fct_delays"}).json()
    assert "marts.fct_delays" in doc["selected"] and "raw.flights" in doc["selected"]
    assert "marts.route_stats" not in doc["selected"]
    page = client.get("/", params={"select": "fct_delays"}).text
    drawn = set(re.findall(r'data-key="([^"]+)"', page))
    # the asset and one step out, both ways
    assert drawn == {"marts.fct_delays", "marts.fct_flights", "marts.mart_carrier_ontime_monthly"}
    bad = client.get("/", params={"select": "nothing_like_this"})
    assert bad.status_code == 400 and "nothing_like_this" in bad.text
    assert client.get("/api/graph", params={"select": "("}).status_code == 400


def test_graph_groups_collapse(client: Any) -> None:
    page = client.get("/", params={"collapse": "raw"}).text
    drawn = set(re.findall(r'data-key="([^"]+)"', page))
    assert "group:raw" in drawn and "raw.flights" not in drawn
    svg = client.get("/graph.svg", params={"group": "folder", "collapse": "models/staging"})
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert 'data-key="group:models/staging"' in svg.text


def test_asset_page_shows_file_columns_checks_and_history(client: Any) -> None:
    doc = client.get("/api/assets/marts.fct_delays").json()
    assert doc["asset"]["file"] == "models/marts/fct_delays.sql"
    columns = {c["name"]: c["type"] for c in doc["asset"]["columns"]}
    assert columns["flight_date"] == "DATE"  # as materialized, recorded in the state store
    assert doc["upstream"] == ["marts.fct_flights"]
    assert "marts.mart_carrier_ontime_monthly" in doc["downstream"]
    assert doc["history"]["materializations"]
    assert doc["series"]["rows"] and len(doc["series"]["rows"]) == len(
        doc["series"]["materialized_at"]
    )
    assert doc["check_strips"] and all(
        r["status"] == "pass" for s in doc["check_strips"] for r in s["results"]
    )
    page = client.get("/assets/marts.fct_delays").text
    assert "models/marts/fct_delays.sql" in page and doc["code_version"] in page
    assert 'id="series"' in page and 'data-testid="check-strip"' in page
    assert client.get("/assets/raw.no_such").status_code == 404
    assert client.get("/api/assets/raw.no_such").json()["error"]


def test_python_asset_metadata_becomes_a_plot(client: Any) -> None:
    doc = client.get("/api/assets/analytics.route_delay_score").json()
    assert doc["asset"]["kind"] == "python" and doc["line"]
    assert doc["series"]["metadata"], "the asset emits numeric metadata (routes)"
    page = client.get("/assets/analytics.route_delay_score").text
    assert 'data-plot="metadata"' in page


def test_partitions_page_draws_ranges_not_partitions(client: Any) -> None:
    doc = client.get("/api/partitions/marts.fct_delays").json()
    assert doc["counts"]["expected"] == 365 and doc["counts"]["done"] == 365
    (row,) = doc["rows"]
    runs = [r["run_id"] for s in row["segments"] for r in s.pop("runs")]
    assert runs == [doc["ledger"][0]["run_id"]]  # hover: which run wrote the range
    assert row["segments"] == [
        {
            "status": "done",
            "first": "2013-01-01",
            "last": "2013-12-31",
            "lo": 0,
            "hi": 364,
            "count": 365,
        }
    ]
    assert doc["ledger"] and doc["ledger"][0]["run_id"]
    page = client.get("/partitions/marts.fct_delays").text
    assert page.count('class="seg ') == 1
    assert "2013-01-01 .. 2013-12-31 (365 partitions)" in page
    assert f"by run {runs[0]}" in page
    unpartitioned = client.get("/partitions/marts.route_stats")
    assert unpartitioned.status_code == 404 and "has no partitions" in unpartitioned.text


def test_runs_list_and_run_page_with_timeline_and_log(
    client: Any, built_example: BuiltExample
) -> None:
    runs = client.get("/api/runs").json()
    cli_runs = built_example.cli("runs", "--json").json()
    assert [r["run_id"] for r in runs] == [r["run_id"] for r in cli_runs]
    run_id = runs[0]["run_id"]
    assert runs[0]["status"] == "success" and runs[0]["duration_s"] > 0
    assert client.get("/api/runs", params={"status": "failed"}).json() == []
    by_asset = client.get("/api/runs", params={"asset": "marts.fct_delays"}).json()
    assert [r["run_id"] for r in by_asset] == [run_id]
    page = client.get(f"/runs/{run_id}")
    assert page.status_code == 200 and 'data-testid="timeline"' in page.text
    doc = client.get(f"/api/runs/{run_id}").json()
    lanes = {b["lane"] for b in doc["timeline"]}
    assert lanes == {"asset", "dbt", "partitions"}
    assert all(b["end"] and b["status"] == "success" for b in doc["timeline"])
    # the log is the same as `sqlorch logs --json`, paged
    cli_log = built_example.cli("logs", run_id, "--json").json_lines()
    first = client.get(f"/api/runs/{run_id}/events", params={"limit": 5}).json()
    rest = client.get(
        f"/api/runs/{run_id}/events", params={"after": first["next"], "limit": 5000}
    ).json()
    events = first["events"] + rest["events"]
    assert first["more"] and not rest["more"]
    assert [{k: v for k, v in e.items() if k != "id"} for e in events] == cli_log
    warnings = client.get(f"/api/runs/{run_id}/events", params={"level": "warning"}).json()
    assert all(e["level"] in ("warning", "error") for e in warnings["events"])
    one = client.get(f"/api/runs/{run_id}/events", params={"asset": "raw.flights"}).json()
    assert one["events"] and {e["asset"] for e in one["events"]} == {"raw.flights"}
    assert client.get("/runs/nope").status_code == 404


def test_event_stream_of_a_finished_run_ends_with_done(client: Any) -> None:
    run_id = client.get("/api/runs").json()[0]["run_id"]
    total = client.get(f"/api/runs/{run_id}").json()["events"]
    with client.stream("GET", f"/runs/{run_id}/stream") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        body = "".join(response.iter_text())
    assert body.count("event: log\n") == total
    assert body.rstrip().endswith('data: {"status": "success"}')


def test_state_changing_requests_need_the_csrf_token(client: Any) -> None:
    form = {"command": "build", "select": "raw.airlines"}
    assert client.post("/launch/plan", data=form).status_code == 403
    assert client.post("/launch/plan", data={**form, "csrf": "wrong"}).status_code == 403
    assert client.post("/launch/start", data=form).status_code == 403
    assert client.post("/api/launch/start", data=form).status_code == 403
    token = csrf_token(client.get("/launch").text)
    other = client.post(
        "/launch/plan", data={**form, "csrf": token}, headers={"Origin": "http://evil.example"}
    )
    assert other.status_code == 403
    assert client.get("/launch/start").status_code == 405  # never a GET
    ok = client.post("/launch/plan", data={**form, "csrf": token})
    assert ok.status_code == 200, ok.text
    # the plan is the dry run's: everything is built, so nothing to do
    assert "Plan: 0 assets" in ok.text
    api = client.post(
        "/api/launch/plan", data={**form, "full": "1"}, headers={"X-CSRF-Token": token}
    ).json()
    assert api["plan"]["steps"][0]["key"] == "raw.airlines"
    assert api["args"] == ["sqlorch", "build", "-s", "raw.airlines", "--full"]


def test_the_ui_never_opens_the_warehouse_file(
    built_example: BuiltExample, monkeypatch: pytest.MonkeyPatch
) -> None:
    import duckdb

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"the UI opened DuckDB: {args}")

    # forget the last observation, so reading the file would be the only way to know
    (built_example.path / ".sqlorch" / "relations.json").unlink(missing_ok=True)
    monkeypatch.setattr(duckdb, "connect", refuse)
    with web_client(built_example.path) as c:
        token = csrf_token(c.get("/launch").text)
        run_id = c.get("/api/runs").json()[0]["run_id"]
        for url in ("/", "/assets/marts.fct_delays", "/partitions/raw.flights", f"/runs/{run_id}"):
            assert c.get(url).status_code == 200, url
        plan = c.post("/launch/plan", data={"command": "build", "csrf": token})
        assert plan.status_code == 200, plan.text


def test_column_lineage_is_the_lineage_commands(
    client: Any, built_example: BuiltExample, monkeypatch: pytest.MonkeyPatch
) -> None:
    from webclient import this_tree_on_path

    this_tree_on_path(monkeypatch)
    ref = "marts.route_stats.avg_arr_delay"
    doc = client.get(f"/api/lineage/{ref}").json()
    cli = built_example.cli("lineage", ref, "--json").json()
    assert {k: v for k, v in doc.items() if k not in ("warnings", "direction")} == cli
    assert doc["upstream"][0]["column"] == "marts.fct_flights.arr_delay_min"
    down = client.get(f"/api/lineage/{ref}", params={"direction": "downstream"}).json()
    assert "downstream" in down
    fragment = client.get(f"/lineage/{ref}", params={"fragment": "1"}).text
    assert "<html" not in fragment and "staging.stg_flights.arr_delay_min" in fragment
    assert (
        'hx-get="/lineage/marts.route_stats.avg_arr_delay?fragment=1"'
        in client.get("/assets/marts.route_stats").text
    )
    bad = client.get("/lineage/marts.route_stats.no_such_column")
    assert bad.status_code == 400 and "no_such_column" in bad.text
