"""Staleness is pure: graph + state snapshot in, stale assets and reasons out."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sqlorch.core.codeversion import combine
from sqlorch.core.graph import AssetGraph, AssetKind, AssetNode, CheckNode
from sqlorch.core.plan.builder import build_plan
from sqlorch.core.plan.definition import ReasonKind
from sqlorch.core.plan.staleness import AssetRecord, StateSnapshot, modified, stale_reasons


def _node(key: str, kind: AssetKind = AssetKind.MODEL, deps: tuple[str, ...] = (), **parts: str):
    parts = parts or {"sql": f"v1-{key}"}
    return AssetNode(
        key,
        kind,
        key.split(".")[1],
        deps=deps,
        file=f"models/{key.split('.')[1]}.sql",
        code_parts=parts,
        code_version=combine(parts),
    )


def _graph(*nodes: AssetNode, checks: tuple[CheckNode, ...] = ()) -> AssetGraph:
    return AssetGraph(list(nodes), list(checks))


def _built(node: AssetNode, at: str, run: str = "r1", **kw: Any) -> AssetRecord:
    return AssetRecord(
        materialized_at=at,
        materialized_run=run,
        code_version=node.code_version,
        code_parts=dict(node.code_parts),
        rows=1,
        last_status="success",
        last_run_id=run,
        **kw,
    )


RAW = _node("raw.events", AssetKind.PYTHON, source="p1")
STG = _node("stg.events", deps=("raw.events", "src.ext"))
DAILY = _node("marts.daily", deps=("stg.events",), sql="d1", **{"macro:cents": "m1"})
EXT = AssetNode("src.ext", AssetKind.SOURCE, "ext")
CHECKS = (
    CheckNode("test.a", "not_null_stg", ("stg.events",)),
    CheckNode("test.src", "src_ok", ("src.ext",)),
)
GRAPH = _graph(RAW, EXT, STG, DAILY, checks=CHECKS)
TABLES = frozenset({"raw.events", "stg.events", "marts.daily"})


def _fresh() -> StateSnapshot:
    return StateSnapshot(
        {
            "raw.events": _built(RAW, "2026-01-01T00:00:01+00:00"),
            "stg.events": _built(STG, "2026-01-01T00:00:02+00:00"),
            "marts.daily": _built(DAILY, "2026-01-01T00:00:03+00:00"),
        },
        TABLES,
    )


def test_nothing_is_stale_after_a_build_and_the_plan_is_empty() -> None:
    assert stale_reasons(GRAPH, _fresh()) == {}
    plan = build_plan(GRAPH, set(GRAPH.assets), _fresh())
    assert plan.steps == () and plan.checks == ()


def test_never_materialized_assets_and_their_downstream() -> None:
    reasons = stale_reasons(GRAPH, StateSnapshot())
    assert reasons == {
        "raw.events": ["never materialized"],
        "stg.events": ["never materialized"],
        "marts.daily": ["never materialized"],
    }


def test_code_change_names_the_file_and_rebuilds_downstream_only() -> None:
    edited = dataclasses.replace(STG, code_parts={"sql": "v2"}, code_version=combine({"sql": "v2"}))
    graph = _graph(RAW, EXT, edited, DAILY)
    reasons = stale_reasons(graph, _fresh())
    assert reasons == {
        "stg.events": ["code changed (models/events.sql)"],
        "marts.daily": ["upstream stg.events is stale"],
    }


def test_macro_var_config_and_target_changes_are_named() -> None:
    parts = {"sql": "d1", "macro:cents": "m2", "var:start": "x", "config": "c2", "target": "t"}
    old = {"sql": "d1", "macro:cents": "m1", "var:start": "y", "config": "c1", "target": "u"}
    node = dataclasses.replace(DAILY, code_parts=parts, code_version=combine(parts))
    rec = dataclasses.replace(_built(DAILY, "2026-01-01T00:00:03+00:00"), code_parts=old)
    state = dataclasses.replace(_fresh(), assets={**_fresh().assets, "marts.daily": rec})
    reasons = stale_reasons(_graph(RAW, EXT, STG, node), state)["marts.daily"]
    assert reasons == [
        "config changed (models/daily.sql)",
        "macro cents changed",
        "var start changed",
        "target changed",
    ]


def test_a_new_macro_call_is_named() -> None:
    parts = {**DAILY.code_parts, "macro:fmt": "f1", "sql": "d2"}
    node = dataclasses.replace(DAILY, code_parts=parts, code_version=combine(parts))
    reasons = stale_reasons(_graph(RAW, EXT, STG, node), _fresh())["marts.daily"]
    assert reasons == ["code changed (models/daily.sql)", "now calls macro fmt"]


def test_code_change_without_recorded_parts_still_counts() -> None:
    rec = dataclasses.replace(
        _built(STG, "2026-01-01T00:00:02+00:00"), code_parts=None, code_version="old"
    )
    state = dataclasses.replace(_fresh(), assets={**_fresh().assets, "stg.events": rec})
    assert stale_reasons(GRAPH, state)["stg.events"] == ["code changed (models/events.sql)"]


def test_upstream_materialized_later_in_another_run() -> None:
    state = _fresh()
    newer = _built(RAW, "2026-01-02T00:00:00+00:00", run="r2")
    state = dataclasses.replace(state, assets={**state.assets, "raw.events": newer})
    reasons = stale_reasons(GRAPH, state)
    assert reasons["stg.events"] == [
        "upstream raw.events materialized 2026-01-02 00:00:00 after this"
    ]
    assert reasons["marts.daily"] == ["upstream stg.events is stale"]
    assert "raw.events" not in reasons


def _edited_stg() -> StateSnapshot:
    rec = dataclasses.replace(
        _built(STG, "2026-01-01T00:00:02+00:00"), code_parts=None, code_version="old"
    )
    return dataclasses.replace(_fresh(), assets={**_fresh().assets, "stg.events": rec})


def _failed_stg() -> StateSnapshot:
    rec = dataclasses.replace(_built(STG, "2026-01-01T00:00:02+00:00"), last_status="failed")
    return dataclasses.replace(_fresh(), assets={**_fresh().assets, "stg.events": rec})


def _newer_raw() -> StateSnapshot:
    newer = _built(RAW, "2026-01-02T00:00:00+00:00", run="r2")
    return dataclasses.replace(_fresh(), assets={**_fresh().assets, "raw.events": newer})


# state -> (asset, the kinds of its reasons, in order); code tests kinds, never the text
KIND_CASES = [
    (StateSnapshot, "stg.events", [ReasonKind.NEVER_MATERIALIZED]),
    (_edited_stg, "stg.events", [ReasonKind.CODE_CHANGED]),
    (_edited_stg, "marts.daily", [ReasonKind.UPSTREAM_STALE]),
    (_failed_stg, "stg.events", [ReasonKind.LAST_ATTEMPT_FAILED]),
    (_newer_raw, "stg.events", [ReasonKind.UPSTREAM_NEWER]),
    (
        lambda: dataclasses.replace(_fresh(), tables=frozenset()),
        "stg.events",
        [ReasonKind.TABLE_MISSING],
    ),
]


@pytest.mark.parametrize(("state", "key", "kinds"), KIND_CASES)
def test_each_reason_has_its_kind(state: Any, key: str, kinds: list[ReasonKind]) -> None:
    assert [r.kind for r in stale_reasons(GRAPH, state())[key]] == kinds


def test_full_reasons_are_of_kind_full() -> None:
    reasons = stale_reasons(GRAPH, _fresh(), full=True)
    assert [r.kind for r in reasons["raw.events"]] == [ReasonKind.FULL]
    assert [r.kind for r in reasons["stg.events"]] == [ReasonKind.UPSTREAM_STALE]


def test_upstream_recorded_later_in_the_same_run_is_not_newer() -> None:
    # row counts are recorded in batches: an upstream's record may carry a later time than
    # its downstream's within one run; the dependency order of the run is what counts
    state = _fresh()
    late = _built(RAW, "2026-01-01T00:00:09+00:00", run="r1")
    state = dataclasses.replace(state, assets={**state.assets, "raw.events": late})
    assert stale_reasons(GRAPH, state) == {}


def test_failed_attempt_check_and_missing_table() -> None:
    state = _fresh()
    failed = dataclasses.replace(
        _built(DAILY, "2026-01-01T00:00:03+00:00"), last_status="failed", last_run_id="r9"
    )
    checked = _built(STG, "2026-01-01T00:00:02+00:00", failed_checks=("not_null_stg",))
    state = StateSnapshot(
        {**state.assets, "marts.daily": failed, "stg.events": checked},
        frozenset({"stg.events", "marts.daily"}),
    )
    reasons = stale_reasons(GRAPH, state)
    assert reasons["raw.events"] == ["table missing"]
    assert reasons["stg.events"] == ["check not_null_stg failed"]
    assert reasons["marts.daily"] == ["last attempt failed (run r9)"]


def test_python_asset_that_wrote_no_table_is_not_missing() -> None:
    state = _fresh()
    rec = dataclasses.replace(state.assets["raw.events"], rows=None)
    state = StateSnapshot({**state.assets, "raw.events": rec}, frozenset())
    reasons = stale_reasons(GRAPH, state)
    assert "raw.events" not in reasons
    assert reasons["stg.events"] == ["table missing"]


def test_full_rebuilds_the_selection_and_says_so() -> None:
    plan = build_plan(GRAPH, {"stg.events"}, _fresh(), full=True)
    assert plan.keys == ["stg.events"]
    assert plan.steps[0].reasons[0].startswith("--full (last built 2026-01-01")
    # like dbt's eager selection: a source's checks run when the source is selected
    assert plan.checks == ("test.a",)
    plan = build_plan(GRAPH, {"stg.events", "src.ext"}, _fresh(), full=True)
    assert plan.checks == ("test.a", "test.src")


def test_unselected_stale_upstream_does_not_drag_downstream_in() -> None:
    edited = dataclasses.replace(RAW, code_parts={"source": "p2"}, code_version="p2")
    plan = build_plan(_graph(edited, EXT, STG, DAILY), {"marts.daily"}, _fresh())
    assert plan.keys == []


def test_modified_is_new_or_code_changed() -> None:
    edited = dataclasses.replace(DAILY, code_parts={"sql": "x"}, code_version="x")
    state = dataclasses.replace(
        _fresh(), assets={k: v for k, v in _fresh().assets.items() if k != "raw.events"}
    )
    assert modified(_graph(RAW, EXT, STG, edited), state) == {"raw.events", "marts.daily"}


# -- property: random DAGs, random edits; after a build nothing is stale ----------------------


@st.composite
def _dags(draw: st.DrawFn) -> list[AssetNode]:
    n = draw(st.integers(min_value=1, max_value=12))
    nodes = []
    for i in range(n):
        deps = draw(st.sets(st.integers(min_value=0, max_value=i - 1), max_size=3)) if i else set()
        kind = draw(st.sampled_from([AssetKind.MODEL, AssetKind.PYTHON, AssetKind.SEED]))
        nodes.append(_node(f"s.n{i}", kind, tuple(f"s.n{d}" for d in sorted(deps)), sql="0"))
    return nodes


_EDITS = st.lists(
    st.tuples(st.sampled_from(["edit", "drop", "fail", "build"]), st.integers(0, 11)),
    max_size=12,
)


class _World:
    """A fake store + warehouse driven by plans, with a fake clock."""

    def __init__(self, nodes: list[AssetNode]) -> None:
        self.nodes = {n.key: n for n in nodes}
        self.records: dict[str, AssetRecord] = {}
        self.tables: set[str] = set()
        self.clock = 0
        self.runs = 0
        self.failing: set[str] = set()

    @property
    def graph(self) -> AssetGraph:
        return AssetGraph(list(self.nodes.values()), [])

    def snapshot(self) -> StateSnapshot:
        return StateSnapshot(dict(self.records), frozenset(self.tables))

    def build(self) -> list[str]:
        graph = self.graph
        plan = build_plan(graph, set(graph.assets), self.snapshot())
        self.runs += 1
        run = f"r{self.runs}"
        failed: set[str] = set()
        for step in plan.steps:
            self.clock += 1
            ts = f"2026-01-01T00:{self.clock // 60:02d}:{self.clock % 60:02d}+00:00"
            node = graph.assets[step.key]
            if step.key in self.failing or any(a in failed for a in graph.ancestors(step.key)):
                failed.add(step.key)
                prev = self.records.get(step.key, AssetRecord())
                status = "failed" if step.key in self.failing else "skipped"
                self.records[step.key] = dataclasses.replace(
                    prev, last_status=status, last_run_id=run
                )
                continue
            self.records[step.key] = _built(node, ts, run)
            self.tables.add(step.key)
        self.failing.clear()
        return plan.keys


@settings(max_examples=150, deadline=None)
@given(_dags(), _EDITS)
def test_after_build_nothing_is_stale_and_edits_rebuild_exactly_their_downstream(
    nodes: list[AssetNode], edits: list[tuple[str, int]]
) -> None:
    world = _World(nodes)
    world.build()
    for op, i in edits:
        key = f"s.n{i % len(nodes)}"
        graph = world.graph
        if op == "edit":
            node = world.nodes[key]
            parts = {"sql": str(int(node.code_parts["sql"]) + 1)}
            world.nodes[key] = dataclasses.replace(
                node, code_parts=parts, code_version=combine(parts)
            )
            assert set(world.build()) == {key} | graph.descendants(key)
        elif op == "drop":
            world.tables.discard(key)
            assert set(world.build()) == {key} | graph.descendants(key)
        elif op == "fail":
            world.failing.add(key)
            node = world.nodes[key]
            parts = {"sql": str(int(node.code_parts["sql"]) + 1)}
            world.nodes[key] = dataclasses.replace(
                node, code_parts=parts, code_version=combine(parts)
            )
            world.build()  # fails: key stays stale, its downstream too
            stale = stale_reasons(world.graph, world.snapshot())
            assert key in stale and (graph.descendants(key) <= set(stale))
        world.build()
        assert stale_reasons(world.graph, world.snapshot()) == {}
        assert world.build() == [], "a second build must plan nothing"
