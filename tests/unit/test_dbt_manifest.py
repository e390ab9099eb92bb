"""Translating manifest.json into assets, and compressing dbt selections."""

from __future__ import annotations

from typing import Any

from sqlorch.core.graph import AssetKind
from sqlorch.dbt.manifest import compress_selection, read_manifest


def _node(uid: str, rtype: str, name: str, fqn: list[str], deps: list[str], **config: Any):
    return {
        "resource_type": rtype,
        "name": name,
        "alias": name,
        "schema": config.pop("schema", "main"),
        "fqn": fqn,
        "original_file_path": f"models/{name}.sql",
        "depends_on": {"nodes": deps},
        "config": {"materialized": "table", **config},
        "checksum": {"checksum": "abc"},
    }


MANIFEST = {
    "metadata": {"project_name": "p", "adapter_type": "duckdb"},
    "nodes": {
        "seed.p.s": _node("seed.p.s", "seed", "s", ["p", "s"], [], materialized="seed"),
        "model.p.eph": _node(
            "model.p.eph",
            "model",
            "eph",
            ["p", "stg", "eph"],
            ["source.p.raw.ev"],
            materialized="ephemeral",
        ),
        "model.p.a": _node("model.p.a", "model", "a", ["p", "stg", "a"], ["model.p.eph"]),
        "model.p.b": _node(
            "model.p.b",
            "model",
            "b",
            ["p", "marts", "b"],
            ["model.p.a", "seed.p.s"],
            schema="marts",
        ),
        "test.p.t": {
            "resource_type": "test",
            "name": "t",
            "fqn": ["p", "marts", "t"],
            "depends_on": {"nodes": ["model.p.b"]},
            "config": {"severity": "warn"},
        },
        "operation.p.p-on-run-start-0": {
            "resource_type": "operation",
            "name": "h",
            "fqn": ["p", "hooks", "h"],
        },
    },
    "sources": {
        "source.p.raw.ev": {
            "source_name": "raw",
            "name": "ev",
            "identifier": "events",
            "schema": "raw",
            "fqn": ["p", "raw", "ev"],
            "original_file_path": "models/src.yml",
        }
    },
    "unit_tests": {},
}


def test_manifest_nodes_become_assets_with_ephemeral_models_passed_through() -> None:
    project = read_manifest(MANIFEST)
    assets = {a.key: a for a in project.assets}
    assert set(assets) == {"main.s", "main.a", "marts.b"}
    assert assets["main.a"].deps == ("raw.events",)  # through the ephemeral model
    assert assets["marts.b"].deps == ("main.a", "main.s")
    assert assets["main.s"].kind is AssetKind.SEED
    assert [s.key for s in project.sources] == ["raw.events"]
    (check,) = project.checks
    assert check.asset_keys == ("marts.b",) and not check.is_blocking
    assert project.hook_count == 1
    assert "model.p.eph" in project.ephemeral


def test_compress_selection_collapses_fully_chosen_subtrees() -> None:
    fqns = {
        "m1": ("p", "stg", "a"),
        "m2": ("p", "stg", "b"),
        "m3": ("p", "marts", "c"),
        "m4": ("p", "marts", "d"),
        "e": ("p", "marts", "eph"),
    }
    assert compress_selection(set(fqns) - {"e"}, fqns, frozenset({"e"})) == ["fqn:p"]
    assert compress_selection({"m1", "m2", "m3"}, fqns, frozenset({"e"})) == [
        "fqn:p.marts.c",
        "fqn:p.stg",
    ]
    assert compress_selection({"m4"}, fqns, frozenset()) == ["fqn:p.marts.d"]
    assert compress_selection(set(), fqns, frozenset()) == []
