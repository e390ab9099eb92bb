"""The partitions use case's document, computed directly from a graph and ledgers (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlorch import daily
from sqlorch.app.partitions import partition_doc
from sqlorch.core.graph import AssetGraph, AssetKind, AssetNode
from sqlorch.core.partitions.segments import Segment, SegmentStatus

NOW = datetime(2026, 1, 5, 12, tzinfo=UTC)  # days 01..04 exist, 05 is not over yet


def graph(code_version: str = "v1") -> AssetGraph:
    return AssetGraph(
        [
            AssetNode(
                key="raw.events",
                kind=AssetKind.PYTHON,
                name="events",
                partitions=daily("2026-01-01"),
                code_version=code_version,
            )
        ]
    )


def segments(start: str, end: str, status: SegmentStatus) -> list[Segment]:
    """The ledger segments of days `start`..`end` (inclusive) written by run r1 at v1."""
    definition = graph().assets["raw.events"].partitions
    assert definition is not None
    return [
        Segment(prefix, lo, hi, status, "r1", "2026-01-05T00:00:00Z", "v1")
        for prefix, lo, hi in definition.select(NOW, start, end).ranges()
    ]


def test_nothing_written_is_all_missing() -> None:
    doc = partition_doc(graph(), "raw.events", {}, NOW)
    assert doc["done"] == [] and doc["failed"] == [] and doc["stale"] == []
    assert doc["missing"] == [["2026-01-01", "2026-01-04"]]
    assert doc["counts"] == {"expected": 4, "done": 0, "missing": 4, "failed": 0, "stale": 0}


def test_done_failed_and_missing_ranges_from_the_ledger() -> None:
    ledgers = {
        "raw.events": [
            *segments("2026-01-01", "2026-01-02", SegmentStatus.DONE),
            *segments("2026-01-03", "2026-01-03", SegmentStatus.FAILED),
        ]
    }
    doc = partition_doc(graph(), "raw.events", ledgers, NOW)
    assert doc["done"] == [["2026-01-01", "2026-01-02"]]
    assert doc["failed"] == [["2026-01-03", "2026-01-03"]]
    assert doc["missing"] == [["2026-01-04", "2026-01-04"]]
    assert doc["counts"]["done"] == 2


def test_a_new_code_version_makes_done_partitions_stale() -> None:
    ledgers = {"raw.events": segments("2026-01-01", "2026-01-04", SegmentStatus.DONE)}
    doc = partition_doc(graph("v2"), "raw.events", ledgers, NOW)
    assert doc["stale"] == [["2026-01-01", "2026-01-04"]]
    assert doc["counts"]["stale"] == 4
