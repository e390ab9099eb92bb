"""Impact of a change (pure): comparing lineages, walking downstream, filtering a plan."""

from __future__ import annotations

from sqlorch.core.graph import AssetGraph, AssetKind, AssetNode
from sqlorch.core.plan.builder import build_plan
from sqlorch.lineage.impact import (
    ChangeStatus,
    compare,
    downstream_columns,
    impact_of,
    skip_unaffected,
    with_affected,
)
from sqlorch.lineage.model import ColumnLineage, Edge, ModelLineage, Transform
from sqlorch.lineage.trace import downstream_tree, leaves, split_column, upstream_tree

COPY = Transform.COPY


def col(name: str, *refs: str, fp: str = "", kind: Transform = COPY) -> ColumnLineage:
    edges = tuple(Edge(r.rsplit(".", 1)[0], r.rsplit(".", 1)[1], kind) for r in refs)
    return ColumnLineage(name, edges, fingerprint=fp or name + ":" + ",".join(refs))


def model(*columns: ColumnLineage, keys: tuple[Edge, ...] = (), kfp: str = "") -> ModelLineage:
    return ModelLineage(columns=columns, keys=keys, keys_fingerprint=kfp)


def node(key: str, *deps: str, kind: AssetKind = AssetKind.MODEL) -> AssetNode:
    return AssetNode(key=key, kind=kind, name=key.split(".")[1], deps=deps)


# raw.src (python) -> m.a -> m.b -> m.c ; m.b also reads m.d (a seed)
GRAPH = AssetGraph(
    [
        node("raw.src", kind=AssetKind.PYTHON),
        node("m.d", kind=AssetKind.SEED),
        node("m.a", "raw.src"),
        node("m.b", "m.a", "m.d"),
        node("m.c", "m.b"),
    ]
)
ASSETS = {
    "raw.src": model(col("x"), col("y")),
    "m.d": model(col("k")),
    "m.a": model(col("x", "raw.src.x"), col("y2", "raw.src.y", kind=Transform.EXPRESSION)),
    "m.b": model(
        col("x", "m.a.x"),
        col("total", "m.a.y2", kind=Transform.AGGREGATION),
        keys=(Edge("m.d", "k", Transform.JOIN_KEY),),
    ),
    "m.c": model(col("x", "m.b.x")),
}


def test_compare_added_removed_modified_renamed() -> None:
    old = model(col("x", "raw.src.x"), col("y2", "raw.src.y"), col("gone", "raw.src.x", fp="g"))
    new = model(
        col("x", "raw.src.x"),
        col("y2", "raw.src.y", fp="changed"),
        col("extra", "raw.src.y", fp="e1"),
        col("gone_renamed", "raw.src.x", fp="g2"),
    )
    change = compare("m.a", old, new)
    assert change.added == ("extra",)
    assert change.renamed == (("gone", "gone_renamed"),)
    assert change.removed == ()
    assert change.modified == ("y2",)
    assert change.is_breaking


def test_only_added_columns_is_non_breaking() -> None:
    old = model(col("x", "raw.src.x"), kfp="k")
    new = model(col("x", "raw.src.x"), col("n"), kfp="k")
    change = compare("m.a", old, new)
    assert change.added == ("n",) and not change.is_breaking


def test_changed_keys_are_breaking_and_unknown_lineage_too() -> None:
    assert compare("m.a", model(col("x"), kfp="1"), model(col("x"), kfp="2")).is_breaking
    unknown = compare("m.a", None, model(col("x")), unknown="no SQL")
    assert unknown.is_breaking and unknown.unknown == "no SQL"
    new = compare("m.a", None, model(col("x")), status=ChangeStatus.NEW)
    assert new.added == ("x",) and not new.is_breaking


def test_downstream_columns_follow_keys_to_every_column() -> None:
    assert downstream_columns(ASSETS, [("raw.src", "y")]) == [("m.a", "y2"), ("m.b", "total")]
    # m.d.k is a join key of m.b: every column of m.b, and what derives from them
    assert set(downstream_columns(ASSETS, [("m.d", "k")])) == {
        ("m.b", "x"),
        ("m.b", "total"),
        ("m.c", "x"),
    }


def test_skip_unaffected_drops_only_what_nothing_else_feeds() -> None:
    plan = build_plan(GRAPH, ["m.a", "m.b", "m.c"])
    added = with_affected(
        compare("m.a", ASSETS["m.a"], model(*ASSETS["m.a"].columns, col("n"))),
        ASSETS["m.a"],
        ASSETS,
    )
    filtered, dropped = skip_unaffected(plan, GRAPH, impact_of([added], GRAPH))
    assert filtered.keys == ["m.a"]
    assert set(dropped) == {"m.b", "m.c"} and "m.a" in dropped["m.b"]

    # y2 changed: m.b.total is affected (rebuilt), m.c reads only m.b.x: skipped
    changed = with_affected(
        compare("m.a", ASSETS["m.a"], model(col("x", "raw.src.x"), col("y2", "raw.src.y", fp="2"))),
        ASSETS["m.a"],
        ASSETS,
    )
    assert changed.affected == ("m.b.total",)
    filtered, dropped = skip_unaffected(plan, GRAPH, impact_of([changed], GRAPH))
    assert filtered.keys == ["m.a", "m.b"] and set(dropped) == {"m.c"}

    # the seed is reloaded in this build: m.b and m.c are fed by it, so they stay
    with_seed = build_plan(GRAPH, ["m.a", "m.b", "m.c", "m.d"])
    filtered, dropped = skip_unaffected(with_seed, GRAPH, impact_of([added], GRAPH))
    assert dropped == {} and filtered is with_seed


def test_trees_and_references() -> None:
    up = upstream_tree(GRAPH, ASSETS, "m.c", "x")
    assert leaves(up) == ["raw.src.x"]
    assert up["upstream"][0]["column"] == "m.b.x" and up["upstream"][0]["transform"] == "copy"
    keyed = upstream_tree(GRAPH, ASSETS, "m.b", "total", with_keys=True)
    assert {c["column"] for c in keyed["upstream"]} == {"m.a.y2", "m.d.k"}
    shallow = upstream_tree(GRAPH, ASSETS, "m.c", "x", depth=1)
    assert shallow["upstream"][0]["upstream"] == []
    down = downstream_tree(GRAPH, ASSETS, "raw.src", "x")
    assert leaves(down, "downstream") == ["m.c.x"]
    assert split_column(GRAPH, "m.b.total") == ("m.b", "total")
    assert split_column(GRAPH, "b.total") == ("m.b", "total")
    assert split_column(GRAPH, "M.B") == ("m.b", None)
