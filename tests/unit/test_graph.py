"""The asset graph: order, cycles, duplicates, unknown dependencies."""

from __future__ import annotations

import pytest

from sqlorch.core.graph import AssetGraph, AssetKind, AssetNode, find_cycle
from sqlorch.errors import GraphError


def node(key: str, *deps: str, kind: AssetKind = AssetKind.MODEL, file: str | None = None):
    return AssetNode(key=key, kind=kind, name=key.split(".")[1], deps=deps, file=file)


def test_topological_order_is_deterministic_and_respects_dependencies() -> None:
    graph = AssetGraph(
        [node("m.d", "m.b", "m.c"), node("m.c", "m.a"), node("m.b", "m.a"), node("m.a")]
    )
    order = graph.topological()
    assert order == ["m.a", "m.b", "m.c", "m.d"]
    assert graph.topological({"m.d", "m.a"}) == ["m.a", "m.d"]


def test_ancestors_descendants_and_depth() -> None:
    graph = AssetGraph([node("m.a"), node("m.b", "m.a"), node("m.c", "m.b"), node("m.x")])
    assert graph.ancestors("m.c") == {"m.a", "m.b"}
    assert graph.ancestors("m.c", depth=1) == {"m.b"}
    assert graph.descendants("m.a") == {"m.b", "m.c"}
    assert graph.descendants("m.x") == set()


def test_cycle_is_reported_with_its_full_path() -> None:
    nodes = [
        node("raw.p", "marts.m", kind=AssetKind.PYTHON, file="ingest/p.py"),
        node("stg.s", "raw.p"),
        node("marts.m", "stg.s"),
        node("m.ok"),
    ]
    with pytest.raises(GraphError) as err:
        AssetGraph(nodes)
    message = str(err.value)
    path = message.split("cycle: ")[1].split(" (")[0].split(" -> ")
    # the path closes on the node it starts from and walks with the data
    assert path[0] == path[-1] and len(path) == 4
    assert " -> ".join(path) in (
        "raw.p -> stg.s -> marts.m -> raw.p",
        "stg.s -> marts.m -> raw.p -> stg.s",
        "marts.m -> raw.p -> stg.s -> marts.m",
    )
    assert "raw.p: ingest/p.py" in message  # where each member is, when known


def test_find_cycle_on_a_self_loop_and_on_a_dag() -> None:
    assert find_cycle({"a": ["a"]}) == ["a", "a"]
    assert find_cycle({"a": ["b"], "b": []}) == []


def test_duplicate_relation_names_both_producers() -> None:
    with pytest.raises(GraphError) as err:
        AssetGraph([node("m.a", file="models/a.sql"), node("m.a", file="models/other/a.sql")])
    assert "models/a.sql" in str(err.value) and "models/other/a.sql" in str(err.value)


def test_unknown_dependency_is_named() -> None:
    with pytest.raises(GraphError) as err:
        AssetGraph([node("m.a", "m.missing", file="models/a.sql")])
    assert "m.missing" in str(err.value) and "models/a.sql" in str(err.value)
