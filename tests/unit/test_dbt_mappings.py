"""Partition mappings of dbt models: `meta.sqlorch.deps` parsed and resolved to parent keys."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from sqlorch.core.partitions.mappings import (
    MappingKind,
    PartitionMapping,
    all_partitions,
    describe_mapping,
    mapping_from_config,
    same,
    window,
)
from sqlorch.dbt.manifest import read_manifest
from sqlorch.errors import PartitionError, ProjectError

# config value -> the Python API's mapping
GOOD: list[tuple[Any, PartitionMapping]] = [
    (None, same()),
    ("same", same()),
    ("SAME", same()),
    ({"same": None}, same()),
    ({"same": {}}, same()),
    ({"same": {"keys": {"JFK": "jfk", "LGA": "lga"}}}, same({"JFK": "jfk", "LGA": "lga"})),
    ("all", all_partitions()),
    ("all_partitions", all_partitions()),
    ({"all": {}}, all_partitions()),
    ({"all": None}, all_partitions()),
    ({"window": {"offset": -1}}, window(offset=-1)),
    ({"window": {"lookback": 6}}, window(lookback=6)),
    ({"window": {"offset": -2, "lookback": 3}}, window(offset=-2, lookback=3)),
    ({"window": {}}, window()),
]

# config value -> a piece of the error message
BAD: list[tuple[Any, str]] = [
    ("previous", "unknown mapping 'previous'"),
    (3, "a mapping is one of"),
    ([{"window": {"offset": -1}}], "a mapping is one of"),
    ({"window": {"offset": -1}, "all": {}}, "one kind per upstream"),
    ({}, "a mapping is one of"),
    ({"shift": {"offset": 1}}, "unknown mapping kind 'shift'"),
    ({"window": -1}, "takes a mapping of arguments"),
    ({"window": {"offset": "-1"}}, "must be a whole number of windows; got '-1'"),
    ({"window": {"offset": 1.5}}, "must be a whole number"),
    ({"window": {"offset": True}}, "must be a whole number"),
    ({"window": {"lookback": -2}}, "must be 0 or more"),
    ({"window": {"ofset": -1}}, "`window` does not take ofset"),
    ({"same": {"keys": ["JFK"]}}, "maps downstream partition keys to upstream"),
    ({"same": {"key": {"a": "b"}}}, "`same` does not take key"),
    ({"all": {"offset": 1}}, "`all` takes no arguments"),
]


@pytest.mark.parametrize(("raw", "expected"), GOOD)
def test_mapping_config_reads_like_the_python_api(raw: Any, expected: PartitionMapping) -> None:
    got = mapping_from_config(raw)
    assert got == expected
    assert mapping_from_config(describe_mapping(got)) == got  # round trip (ls --json)


@pytest.mark.parametrize(("raw", "needle"), BAD)
def test_malformed_mapping_config_is_a_clear_error(raw: Any, needle: str) -> None:
    with pytest.raises(PartitionError) as info:
        mapping_from_config(raw)
    assert needle in info.value.message


DAILY = {"type": "daily", "start": "2024-01-01", "column": "d"}
STATIC = {"type": "static", "keys": ["JFK", "LGA"], "column": "origin"}


def _model(
    name: str, deps: list[str], meta: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "resource_type": "model",
        "name": name,
        "alias": extra.pop("alias", name),
        "schema": extra.pop("schema", "main"),
        "package_name": "p",
        "fqn": ["p", name],
        "original_file_path": f"models/{name}.sql",
        "depends_on": {"nodes": deps},
        "config": {"materialized": extra.pop("materialized", "incremental"), "meta": meta or {}},
        **extra,
    }


def _source(source_name: str, name: str, schema: str, identifier: str | None = None) -> Any:
    return {
        "source_name": source_name,
        "name": name,
        "identifier": identifier or name,
        "schema": schema,
        "fqn": ["p", source_name, name],
        "original_file_path": "models/sources.yml",
    }


BASE: dict[str, Any] = {
    "metadata": {"project_name": "p"},
    "nodes": {
        "model.p.up": _model("up", [], {"sqlorch": {"partitions": DAILY}}, schema="marts"),
        "model.p.dim": _model("dim", [], materialized="table", alias="dim_airports"),
        "model.p.eph": _model("eph", ["source.p.raw.weather"], materialized="ephemeral"),
        "model.p.other": _model("other", [], schema="staging"),
    },
    "sources": {
        "source.p.raw.events": _source("raw", "events", "landing", "events_v2"),
        "source.p.raw.weather": _source("raw", "weather", "raw"),
        "source.p.ext.other": _source("ext", "other", "ext"),
    },
}


def _read(deps: Any, parents: list[str], partitions: Any = DAILY, **extra: Any) -> dict[str, Any]:
    manifest = copy.deepcopy(BASE)
    sqlorch: dict[str, Any] = {"deps": deps}
    if partitions is not None:
        sqlorch["partitions"] = partitions
    manifest["nodes"]["model.p.down"] = _model(
        "down", parents, {"sqlorch": sqlorch}, patch_path="p://models/schema.yml", **extra
    )
    project = read_manifest(manifest)
    (down,) = [a for a in project.assets if a.key == "main.down"]
    return dict(down.partition_mappings)


def test_upstream_names_resolve_to_the_parents_asset_keys() -> None:
    parents = ["model.p.up", "model.p.dim", "source.p.raw.events", "model.p.eph"]
    got = _read(
        {
            "up": {"window": {"offset": -1}},  # a ref name
            "dim_airports": "all",  # a relation name (alias)
            "raw.events": {"window": {"lookback": 2}},  # source_name.table
            "eph": "all",  # an ephemeral model: the assets behind it
        },
        parents,
    )
    assert got == {
        "marts.up": window(offset=-1),
        "main.dim_airports": all_partitions(),
        "landing.events_v2": window(lookback=2),
        "raw.weather": all_partitions(),
    }
    # asset keys, package-qualified names and case do as well
    assert _read({"MARTS.UP": "all", "landing.events_v2": "same"}, parents) == {
        "marts.up": all_partitions(),
        "landing.events_v2": same(),
    }
    assert _read({"p.up": "all"}, parents) == {"marts.up": all_partitions()}


def test_a_microbatch_model_takes_mappings_too() -> None:
    manifest = copy.deepcopy(BASE)
    node = _model("mb", ["model.p.up"], {"sqlorch": {"deps": {"up": {"window": {"offset": -1}}}}})
    node["config"].update(
        incremental_strategy="microbatch", event_time="ts", batch_size="day", begin="2024-01-01"
    )
    manifest["nodes"]["model.p.mb"] = node
    (mb,) = [a for a in read_manifest(manifest).assets if a.key == "main.mb"]
    assert mb.partitions is not None
    assert mb.partition_mappings == {"marts.up": window(offset=-1)}


@pytest.mark.parametrize(
    ("deps", "parents", "partitions", "needles"),
    [
        (
            {"fct_nope": "all"},
            ["model.p.up", "source.p.raw.events"],
            DAILY,
            [
                "dbt model 'down' (models/down.sql, models/schema.yml)",
                "names 'fct_nope', which is not one of its parents",
                "it reads raw.events, up",
            ],
        ),
        (
            {"dim": "all"},  # a model of the project, but not a parent of this one
            ["model.p.up"],
            DAILY,
            ["names 'dim', which is not one of its parents", "it reads up"],
        ),
        (
            {"other": "all"},
            ["model.p.other", "source.p.ext.other"],
            DAILY,
            ["names several of its parents (other, ext.other)", "schema.name"],
        ),
        (
            {"up": {"window": {"ofset": -1}}},
            ["model.p.up"],
            DAILY,
            ["meta.sqlorch.deps['up'] is malformed", "does not take ofset"],
        ),
        (["up"], ["model.p.up"], DAILY, ["meta.sqlorch.deps must map upstream names"]),
        (
            {"up": "all"},
            ["model.p.up"],
            None,
            ["declares partition mappings in meta.sqlorch.deps but has no partitions"],
        ),
        (
            {"up": {"window": {"offset": -1}}},
            ["model.p.up"],
            {"type": "static", "keys": ["a", "b"], "column": "k"},
            ["is a `window` mapping", "no time dimension"],
        ),
        (
            {"up": {"same": {"keys": {"origin": "airport"}}}},
            ["model.p.up"],
            [DAILY, STATIC],
            ["renames partition keys origin", "(it has: JFK, LGA)"],
        ),
        (
            {"up": "all", "marts.up": "same"},
            ["model.p.up"],
            DAILY,
            ["gives 'marts.up' two different mappings (as 'up' and 'marts.up')"],
        ),
    ],
)
def test_bad_dbt_mappings_name_the_model_its_files_and_what_to_do(
    deps: Any, parents: list[str], partitions: Any, needles: list[str]
) -> None:
    with pytest.raises(ProjectError) as info:
        _read(deps, parents, partitions)
    err = info.value
    for needle in needles:
        assert needle in err.message, err.message
    assert err.file == "models/down.sql" and err.asset == "main.down"


def test_mappings_keep_their_kind_in_the_graph_node() -> None:
    got = _read({"up": {"same": {"keys": {"JFK": "jfk"}}}}, ["model.p.up"], [DAILY, STATIC])
    assert got["marts.up"].kind is MappingKind.SAME and dict(got["marts.up"].keys) == {"JFK": "jfk"}


def _graph(down_parts: Any, mapping: PartitionMapping, up_parts: Any, view: bool = False) -> Any:
    from sqlorch.core.graph import AssetGraph, AssetKind, AssetNode
    from sqlorch.core.partitions.definitions import from_config

    up = AssetNode(
        "raw.up",
        AssetKind.PYTHON,
        "up",
        file="ingest/up.py",
        line=3,
        partitions=from_config(up_parts, "up") if up_parts else None,
    )
    nodes = [up]
    dep = "raw.up"
    if view:
        nodes.append(
            AssetNode("main.v", AssetKind.MODEL, "v", deps=("raw.up",), materialized="view")
        )
        dep = "main.v"
    down = AssetNode(
        "raw.down",
        AssetKind.PYTHON,
        "down",
        deps=(dep,),
        file="ingest/down.py",
        line=12,
        partitions=from_config(down_parts, "down"),
        partition_mappings={dep: mapping},
    )
    return AssetGraph([*nodes, down])


UP_STATIC = {"type": "static", "keys": ["jfk", "lga"], "column": "airport"}


@pytest.mark.parametrize(
    ("down", "mapping", "up", "view"),
    [
        (DAILY, window(offset=-1), DAILY, False),
        (DAILY, window(offset=-1), DAILY, True),  # through a view
        ([DAILY, STATIC], same({"JFK": "jfk", "LGA": "lga"}), [DAILY, UP_STATIC], False),
        (DAILY, all_partitions(), None, False),  # harmless on an unpartitioned upstream
        (DAILY, same(), None, False),
    ],
)
def test_sound_mappings_pass_the_graph_check(
    down: Any, mapping: PartitionMapping, up: Any, view: bool
) -> None:
    from sqlorch.core.plan.partitions import check_mappings

    check_mappings(_graph(down, mapping, up, view))


@pytest.mark.parametrize(
    ("down", "mapping", "up", "needles"),
    [
        (
            DAILY,
            window(offset=-1),
            None,
            [
                "python asset raw.down (ingest/down.py:12) maps upstream raw.up with "
                "window(offset=-1, lookback=0)",
                "raw.up has no partitions",
                "would be ignored",
            ],
        ),
        (
            DAILY,
            window(lookback=2),
            UP_STATIC,
            ["a window offsets time partitions, and raw.up has none"],
        ),
        (
            [DAILY, STATIC],
            same({"JFK": "JFK"}),
            [DAILY, UP_STATIC],
            ["JFK is not a key of raw.up (it has: jfk, lga)"],
        ),
        (
            [DAILY, STATIC],
            same({"EWR": "jfk"}),
            [DAILY, UP_STATIC],
            ["EWR is not a key of raw.down (it has: JFK, LGA)"],
        ),
    ],
)
def test_mappings_that_cannot_mean_what_they_say_are_errors(
    down: Any, mapping: PartitionMapping, up: Any, needles: list[str]
) -> None:
    from sqlorch.core.plan.partitions import check_mappings

    with pytest.raises(PartitionError) as info:
        check_mappings(_graph(down, mapping, up))
    for needle in needles:
        assert needle in info.value.message, info.value.message
    assert (info.value.asset, info.value.file, info.value.line) == (
        "raw.down",
        "ingest/down.py",
        12,
    )


@pytest.mark.parametrize(
    ("mapping", "chunk_day", "waits"),
    [
        (same(), 3, False),  # reads day 3, written by this invocation's upstream chunk
        (window(offset=-1), 3, False),  # day 2: written before
        (window(offset=1), 3, True),  # day 4: a later upstream chunk
        (window(offset=1), 9, False),  # day 10: not pending (outside the run)
        (window(lookback=2), 3, False),
        (all_partitions(), 3, True),
    ],
)
def test_a_chunk_waits_only_for_pending_upstream_partitions_it_reads(
    mapping: PartitionMapping, chunk_day: int, waits: bool
) -> None:
    from datetime import UTC, datetime

    from sqlorch.core.partitions.ranges import PartitionSet
    from sqlorch.core.plan.partitions import reads_pending

    graph = _graph(DAILY, mapping, DAILY)
    pending = {"raw.up": PartitionSet({(): ((3, 7),)})}  # days 4..8 still to write
    chunk = PartitionSet({(): ((chunk_day - 1, chunk_day - 1),)})
    now = datetime(2024, 2, 1, tzinfo=UTC)
    assert reads_pending(graph, "raw.down", chunk, pending, now) is waits
