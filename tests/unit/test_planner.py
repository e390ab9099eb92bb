"""The planner is pure: graph + selection + state in, ordered steps out."""

from __future__ import annotations

from sqlorch.core.graph import AssetGraph, AssetKind, AssetNode, CheckNode
from sqlorch.core.plan.builder import build_plan
from sqlorch.core.plan.staleness import AssetRecord, StateSnapshot


def _graph() -> AssetGraph:
    return AssetGraph(
        [
            AssetNode("raw.events", AssetKind.PYTHON, "events"),
            AssetNode("raw.ext", AssetKind.SOURCE, "ext"),
            AssetNode("stg.events", AssetKind.MODEL, "events", deps=("raw.events", "raw.ext")),
            AssetNode("marts.daily", AssetKind.MODEL, "daily", deps=("stg.events",)),
            AssetNode("ml.score", AssetKind.PYTHON, "score", deps=("marts.daily",)),
        ],
        [
            CheckNode("test.a", "not_null_stg", ("stg.events",)),
            CheckNode("test.b", "rel", ("stg.events", "marts.daily")),
            CheckNode("test.c", "src", ("raw.ext",)),
        ],
    )


def test_plan_orders_steps_and_leaves_out_observed_sources() -> None:
    graph = _graph()
    plan = build_plan(graph, set(graph.assets))
    assert plan.keys == ["raw.events", "stg.events", "marts.daily", "ml.score"]
    assert [s.kind for s in plan.steps] == [
        AssetKind.PYTHON,
        AssetKind.MODEL,
        AssetKind.MODEL,
        AssetKind.PYTHON,
    ]
    assert plan.checks == ("test.a", "test.b", "test.c")


def test_checks_follow_their_assets_like_dbt_eager_selection() -> None:
    plan = build_plan(_graph(), {"marts.daily"})
    assert plan.keys == ["marts.daily"]
    assert plan.checks == ("test.b",)


def test_reasons_say_whether_an_asset_was_ever_built() -> None:
    built = AssetRecord(materialized_at="2026-01-01T00:00:00Z", materialized_run="r1")
    state = StateSnapshot({"ml.score": built})
    plan = build_plan(_graph(), {"raw.events", "ml.score"}, state, full=True)
    reasons = {s.key: s.reasons for s in plan.steps}
    assert reasons["raw.events"] == ("never materialized",)
    assert reasons["ml.score"] == ("--full (last built 2026-01-01 00:00:00)",)


def test_a_stale_loads_siblings_and_their_downstream_are_planned_in_the_same_plan() -> None:
    group = {"load_group": "dlt:files"}
    graph = AssetGraph(
        [
            AssetNode("raw.events", AssetKind.PYTHON, "events", metadata=group),
            AssetNode("raw.users", AssetKind.PYTHON, "users", metadata=group),
            AssetNode("stg.users", AssetKind.MODEL, "users", deps=("raw.users",)),
            AssetNode("marts.names", AssetKind.MODEL, "names", deps=("stg.users",)),
            AssetNode("stg.other", AssetKind.MODEL, "other"),
        ],
        [],
    )
    built = AssetRecord(materialized_at="2026-01-01T00:00:00Z", materialized_run="r1")
    state = StateSnapshot({k: built for k in graph.assets if k != "raw.events"})
    plan = build_plan(graph, set(graph.assets), state)
    reasons = {s.key: s.reasons for s in plan.steps}
    assert reasons == {
        "raw.events": ("never materialized",),
        "raw.users": ("loaded together with raw.events",),
        "stg.users": ("upstream raw.users is stale",),
        "marts.names": ("upstream stg.users is stale",),
    }
    # nothing stale in the group: nothing planned
    state = StateSnapshot(dict.fromkeys(graph.assets, built))
    assert build_plan(graph, set(graph.assets), state).keys == []
