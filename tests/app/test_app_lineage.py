"""The lineage use case's documents, computed directly from a lineage index (no dbt)."""

from __future__ import annotations

from sqlorch.app.lineage import impact_document, table_document
from sqlorch.lineage.impact import compare, impact_of, with_affected
from sqlorch.lineage.model import Transform
from sqlorch.lineage.service import LineageIndex
from sqlorch.state.hidden import HiddenDependency
from tests.unit.test_lineage_impact import ASSETS, GRAPH, col, model


def test_table_document_lists_columns_keys_reads_and_hidden_dependencies() -> None:
    index = LineageIndex(
        graph=GRAPH,
        assets=ASSETS,
        columns={"m.b": [("x", "INTEGER"), ("total", "")]},
        hidden={"m.b": HiddenDependency("m.b", "v1", "models/b.sql", ("raw.other",))},
    )
    assert table_document(index, "m.b") == {
        "asset": "m.b",
        "kind": "model",
        "file": None,
        "columns": [
            {
                "name": "x",
                "type": "INTEGER",
                "upstream": [{"column": "m.a.x", "transform": "copy"}],
                "error": None,
            },
            {
                "name": "total",
                "type": None,
                "upstream": [{"column": "m.a.y2", "transform": "aggregation"}],
                "error": None,
            },
        ],
        "keys": [{"column": "m.d.k", "transform": Transform.JOIN_KEY.value}],
        "reads": [],
        "hidden_dependencies": ["raw.other"],
        "notes": [],
        "error": None,
    }


def test_an_asset_without_lineage_has_an_empty_document() -> None:
    index = LineageIndex(graph=GRAPH, assets={}, columns={})
    doc = table_document(index, "m.c")
    assert (doc["columns"], doc["keys"], doc["hidden_dependencies"]) == ([], [], [])


def test_impact_document_of_a_breaking_change() -> None:
    old = ASSETS["m.a"]
    new = model(
        col("x", "raw.src.x", fp="changed"), col("y2", "raw.src.y", kind=Transform.EXPRESSION)
    )
    change = with_affected(compare("m.a", old, new, file="models/a.sql"), new, ASSETS)
    doc = impact_document(impact_of([change], GRAPH))
    (only,) = doc["changes"]
    assert (only["key"], only["file"], only["breaking"]) == ("m.a", "models/a.sql", True)
    assert only["modified"] == ["x"] and only["added"] == only["removed"] == []
    assert "m.b" in doc["affected_assets"] and doc["breaking"] is True
