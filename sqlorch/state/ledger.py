"""The partition ledger: compacted ranges of done/failed partitions per asset, in the state store.

The arithmetic lives in `sqlorch.core.partitions.segments` (pure); this module reads and writes the
store. A range is recorded as done only after its data committed, so a killed run can never
leave the ledger claiming partitions it did not write.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from sqlorch.core.partitions.definitions import PartitionsDefinition
from sqlorch.core.partitions.ranges import PartitionSet
from sqlorch.core.partitions.segments import (
    Segment,
    SegmentStatus,
    erase,
    record,
    status_set,
    to_segments,
    to_stored,
)
from sqlorch.state.records import LedgerRow

if TYPE_CHECKING:
    from datetime import datetime

    from sqlorch.state.base import StateReader, StateWriter


def segments(store: StateReader, key: str, definition: PartitionsDefinition) -> list[Segment]:
    """Return the ledger of one asset as segments of `definition`."""
    return to_segments(definition, store.ledger(key))


def all_segments(
    store: StateReader, definitions: Mapping[str, PartitionsDefinition]
) -> dict[str, list[Segment]]:
    """Return the ledger of every partitioned asset in `definitions` (one query)."""
    rows = store.ledgers()
    return {k: to_segments(d, rows.get(k, ())) for k, d in definitions.items()}


def write(
    store: StateWriter,
    key: str,
    definition: PartitionsDefinition,
    parts: PartitionSet,
    status: SegmentStatus,
    run_id: str,
    at: str,
    code_version: str | None,
) -> None:
    """Record `parts` of `key` as done or failed by `run_id` at `at`."""

    def change(rows: list[LedgerRow]) -> list[LedgerRow]:
        segs = to_segments(definition, rows)
        for prefix, lo, hi in parts.ranges():
            segs = record(segs, Segment(prefix, lo, hi, status, run_id, at, code_version))
        return _rows(definition, segs)

    store.update_ledger(key, change)


def wipe(
    store: StateWriter, key: str, definition: PartitionsDefinition, parts: PartitionSet
) -> None:
    """Forget `parts` of `key`: they read as missing and the next build rebuilds them."""

    def change(rows: list[LedgerRow]) -> list[LedgerRow]:
        return _rows(definition, erase(to_segments(definition, rows), parts))

    store.update_ledger(key, change)


def summary(
    definition: PartitionsDefinition,
    segs: list[Segment],
    now: datetime,
    stale: PartitionSet | None = None,
) -> dict[str, list[list[str]]]:
    """The §10 `partitions` object: done / missing / failed (and stale) key ranges."""
    exist = definition.expected(now)
    done = status_set(segs, SegmentStatus.DONE) & exist
    failed = status_set(segs, SegmentStatus.FAILED) & exist
    doc = {
        "done": definition.key_ranges(done),
        "missing": definition.key_ranges(exist - done - failed),
        "failed": definition.key_ranges(failed),
    }
    if stale is not None:
        doc["stale"] = definition.key_ranges(stale)
    return doc


def _rows(definition: PartitionsDefinition, segs: list[Segment]) -> list[LedgerRow]:
    return [
        LedgerRow(r.prefix, r.lo, r.hi, r.status, r.run_id, r.at, r.code_version)
        for r in to_stored(definition, segs)
    ]
