"""The --dry-run explainer: pure, a plan in, the §10 document and the terminal lines out."""

from __future__ import annotations

from sqlorch.core.graph import AssetKind
from sqlorch.core.plan.definition import Plan, Step
from sqlorch.core.plan.explainer import explain_plan, plan_document, plan_headline, ranges_text

PLAN = Plan(
    steps=(
        Step("raw.flights", AssetKind.PYTHON, ("never materialized",)),
        Step(
            "marts.fct_delays",
            AssetKind.MODEL,
            ("upstream raw.flights changed", "code changed"),
            (("2013-01-01", "2013-01-31"), ("2013-03-05", "2013-03-05")),
        ),
    ),
    checks=("test.not_null", "test.unique"),
    selected=frozenset({"raw.flights", "marts.fct_delays"}),
)


def test_plan_document_is_the_dry_run_json() -> None:
    assert plan_document(PLAN) == {
        "steps": [
            {
                "key": "raw.flights",
                "kind": "python",
                "partitions": None,
                "reasons": ["never materialized"],
            },
            {
                "key": "marts.fct_delays",
                "kind": "model",
                "partitions": [["2013-01-01", "2013-01-31"], ["2013-03-05", "2013-03-05"]],
                "reasons": ["upstream raw.flights changed", "code changed"],
            },
        ],
        "checks": 2,
    }


def test_explanation_lines() -> None:
    assert plan_headline(PLAN) == "Plan: 2 assets, 2 checks"
    lines = [(line.text, line.why) for line in explain_plan(PLAN)]
    assert lines == [
        (f"  {'python':<8} {'raw.flights':<44} ", "never materialized"),
        (f"  {'model':<8} {'marts.fct_delays':<44} ", "upstream raw.flights changed; code changed"),
        (f"  {'':<8} ", "partitions: 2013-01-01..2013-01-31, 2013-03-05"),
    ]


def test_ranges_text_shows_the_first_ranges() -> None:
    assert ranges_text(None) == "-" and ranges_text([]) == "-"
    many = [(f"k{i}", f"k{i}") for i in range(10)]
    assert ranges_text(many, limit=2) == "k0, k1, ... (10 ranges)"
    assert ranges_text([("a", "b")]) == "a..b"
