"""Running partitions: cut a step's ranges into runs (chunks) and follow them to the end.

Each run (a chunk of contiguous partitions) of a partitioned step is one Python call or one
dbt invocation, written in one transaction, and reported as a `partitions_materialized`
event after commit, which the state recorder turns into ledger ranges. The step ends when
its last chunk (and the Python checks of each chunk) did.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC
from typing import TYPE_CHECKING, Any

from sqlorch.api.asset import PartitionContext
from sqlorch.core.checks import CheckStatus
from sqlorch.core.graph import CheckKind
from sqlorch.core.partitions.definitions import PartitionsDefinition, TimeWindows, parse_ranges
from sqlorch.core.partitions.ranges import PartitionSet, Prefix
from sqlorch.errors import PartitionError
from sqlorch.events import EventKind
from sqlorch.execute.status import Status

if TYPE_CHECKING:
    from collections.abc import Iterable

    from sqlorch.core.graph import AssetGraph, AssetNode
    from sqlorch.core.plan.definition import Step
    from sqlorch.execute.cancellation import Cancellation
    from sqlorch.execute.progress import Progress
    from sqlorch.warehouse.base import Warehouse

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Chunk:
    """Contiguous partitions lo..hi (axis indices) of one prefix, run as one unit."""

    prefix: Prefix
    lo: int
    hi: int

    def keys(self, definition: PartitionsDefinition) -> tuple[str, ...]:
        """The keys of every partition of the chunk."""
        return tuple(definition.key(self.prefix, i) for i in range(self.lo, self.hi + 1))

    def span(self, definition: PartitionsDefinition) -> list[str]:
        """[first key, last key]."""
        return [definition.key(self.prefix, self.lo), definition.key(self.prefix, self.hi)]

    def as_set(self) -> PartitionSet:
        """The chunk as a partition set."""
        return PartitionSet({self.prefix: ((self.lo, self.hi),)})


def chunks(node: AssetNode, ranges: tuple[tuple[str, str], ...]) -> list[Chunk]:
    """Cut a step's ranges into chunks of at most the asset's `max_partitions_per_run`."""
    assert node.partitions is not None
    parts = parse_ranges(node.partitions, ranges)
    return [Chunk(p, lo, hi) for p, lo, hi in parts.chunks(node.max_partitions_per_run)]


def context_of(definition: PartitionsDefinition, chunk: Chunk) -> PartitionContext:
    """The `context.partition` of one chunk."""
    keys = chunk.keys(definition)
    window = definition.window(chunk.lo, chunk.hi)
    values = {
        d.column or f"dim{i}": k
        for i, (d, k) in enumerate(zip(definition.others, chunk.prefix, strict=True))
    }
    axis = definition.axis_dim
    if not isinstance(axis, TimeWindows) and axis.column and chunk.lo == chunk.hi:
        values[axis.column] = axis.key(chunk.lo)
    return PartitionContext(
        key=keys[0],
        keys=keys,
        start=window[0] if window else None,
        end=window[1] if window else None,
        values=values,
    )


def dbt_window_args(node: AssetNode, chunk: Chunk) -> list[str]:
    """The dbt flags that hand `chunk` to a partitioned model.

    A microbatch model gets `--event-time-start/--event-time-end` (dbt runs its batches);
    any other model the vars `start_date` and `end_date` (the window [start, end): dates for
    daily and coarser, timestamps for hourly) and, for static dimensions,
    `partition_<column>` (the key, or the list of keys of the chunk).
    """
    definition = node.partitions
    assert definition is not None
    window = definition.window(chunk.lo, chunk.hi)
    microbatch = node.metadata.get("sqlorch_microbatch") is True
    if microbatch and window is not None:
        fmt = "%Y-%m-%dT%H:%M:%S"
        return [
            "--event-time-start",
            window[0].astimezone(UTC).strftime(fmt),
            "--event-time-end",
            window[1].astimezone(UTC).strftime(fmt),
        ]
    values: dict[str, Any] = {}
    time = definition.time
    if window is not None and time is not None:
        fmt = "%Y-%m-%d %H:%M:%S" if time.grain.value == "hourly" else "%Y-%m-%d"
        values["start_date"] = window[0].strftime(fmt)
        values["end_date"] = window[1].strftime(fmt)
    for d, k in zip(definition.others, chunk.prefix, strict=True):
        if d.column:
            values[f"partition_{d.column}"] = k
    axis = definition.axis_dim
    if not isinstance(axis, TimeWindows) and axis.column:
        values[f"partition_{axis.column}"] = list(axis.keys[chunk.lo : chunk.hi + 1])
    return ["--vars", json.dumps(values)]


def check_partition_columns(graph: AssetGraph, steps: Iterable[Step], warehouse: Warehouse) -> None:
    """Refuse to run partitions of a table that exists without its partition columns.

    Raises:
        PartitionError: a planned partitioned asset's table lacks a partition column.
    """
    for step in steps:
        node = graph.assets[step.key]
        if not step.partitions or node.partitions is None:
            continue
        wanted = node.partitions.columns
        if not wanted:
            continue
        have = {c.name.lower() for c in warehouse.columns(step.key)}
        if not have:
            continue  # not built yet: the first write checks the output itself
        missing = [c for c in wanted if c.lower() not in have]
        if missing:
            where = f"{node.file}:{node.line}" if node.line else (node.file or node.key)
            raise PartitionError(
                f"Asset {node.key} ({where}) is partitioned on {', '.join(wanted)} but its "
                f"table has no column {', '.join(missing)} (it has: "
                f"{', '.join(sorted(have))}). Fix `column=` in the partition definition, or "
                "add the column to the asset's output; nothing ran.",
                asset=node.key,
                file=node.file,
                line=node.line,
            )


class PartitionRuns:
    """The chunks of a run's partitioned steps: those to run, running, and how they ended."""

    def __init__(
        self, progress: Progress, warehouse: Warehouse | None, cancellation: Cancellation
    ) -> None:
        self.progress = progress
        self.warehouse = warehouse
        self.cancellation = cancellation
        graph = progress.graph
        # chunks not started yet, and chunks (and their checks) running, by step
        self.pending: dict[str, list[Chunk]] = {}
        self.inflight: dict[str, int] = {}
        self._rows: dict[str, int | None] = {}
        self._errors: dict[str, list[str]] = {}
        for s in progress.plan.steps:
            if s.partitions:
                self.pending[s.key] = chunks(graph.assets[s.key], s.partitions)
                self.inflight[s.key] = 0
        # the Python checks of a partitioned asset run on each chunk's rows
        self.per_partition = {
            uid
            for uid, c in progress.checks.items()
            if not c.runs_in_dbt and c.kind == CheckKind.PYTHON and c.asset_keys[0] in self.pending
        }
        self.queued_checks: list[tuple[str, str, Chunk]] = []
        self._worst: dict[str, CheckStatus] = {}

    def __contains__(self, key: object) -> bool:
        return key in self.pending

    def has_pending(self) -> bool:
        """True while any partitioned step has chunks to start."""
        return any(self.pending.values())

    def checks_of(self, key: str) -> list[str]:
        """The planned Python checks of partitioned `key` (they run per partition run)."""
        return [
            u
            for u, c in self.progress.checks.items()
            if u in self.per_partition and key in c.asset_keys
        ]

    def chunk_done(
        self,
        key: str,
        chunk: Chunk,
        rows: int | None,
        seconds: float,
        metadata: dict[str, Any] | None = None,
        audited: tuple[str, ...] = (),
    ) -> None:
        """Record a written chunk (with the metadata its asset reported); queue the checks of
        its rows not `audited` in its write."""
        node = self.progress.graph.assets[key]
        assert node.partitions is not None
        self.inflight[key] -= 1
        # the asset's other Python checks run on each partition run's rows, after it committed
        for uid in self.checks_of(key):
            if uid in audited:
                continue
            self.inflight[key] += 1
            self.queued_checks.append((uid, key, chunk))
        if rows is not None:
            self._rows[key] = (self._rows.get(key) or 0) + rows
        self.progress.emit(
            EventKind.PARTITIONS_MATERIALIZED,
            key,
            data={
                "partitions": [chunk.span(node.partitions)],
                "rows": rows,
                "duration_s": round(seconds, 4),
                "code_version": node.code_version,
                **({"metadata": metadata} if metadata else {}),
            },
        )
        self.maybe_finish(key)

    def restart_rows(self, key: str) -> None:
        """Count `key`'s rows afresh (dbt reports each chunk's rows alone)."""
        self._rows[key] = 0

    def chunk_failed(self, key: str, chunk: Chunk, error: str, tb: str | None) -> None:
        """Record a chunk that failed for good."""
        node = self.progress.graph.assets[key]
        assert node.partitions is not None
        self.inflight[key] -= 1
        self._errors.setdefault(key, []).append(error)
        self.progress.emit(
            EventKind.PARTITIONS_FAILED,
            key,
            error,
            level="error",
            data={"partitions": [chunk.span(node.partitions)], "traceback": tb},
        )
        self.maybe_finish(key)

    def check_ended(self, uid: str, key: str, status: CheckStatus, chunk_error: str | None) -> None:
        """Record how one chunk's check ended; `chunk_error` fails the step at its end."""
        self.inflight[key] -= 1
        if status is CheckStatus.WARN:
            self._worst[uid] = self._worst.get(uid) or CheckStatus.WARN
        elif status is not CheckStatus.PASS:
            self._worst[uid] = CheckStatus.FAIL
        if chunk_error is not None:
            self._errors.setdefault(key, []).append(chunk_error)
        self.maybe_finish(key)

    def drop_queued_checks(self) -> None:
        """Partition checks that never started (a cancelled run) no longer hold their asset."""
        dropped, self.queued_checks = self.queued_checks, []
        for _uid, key, _chunk in dropped:
            self.inflight[key] -= 1
        for key in {k for _u, k, _c in dropped}:
            self.maybe_finish(key)

    def maybe_finish(self, key: str) -> None:
        """End step `key` once nothing of it runs and nothing is left to start."""
        progress = self.progress
        if self.inflight[key] or (self.pending[key] and not self.cancellation.cancelled):
            return
        if progress.status[key] is not Status.RUNNING:
            return
        for uid in self.checks_of(key):
            if progress.check_status[uid] is CheckStatus.PENDING:
                progress.check_status[uid] = self._worst.get(uid, CheckStatus.PASS)
        errors = self._errors.get(key)
        if errors:
            more = f" (and {len(errors) - 1} more failed partition runs)" if len(errors) > 1 else ""
            progress.fail(key, errors[0] + more, None)
        elif self.pending[key]:
            progress.skip(key, "run cancelled before every partition ran")
        else:
            self._succeed(key)

    def _succeed(self, key: str) -> None:
        definition = self.progress.graph.assets[key].partitions
        assert definition is not None
        count = len(parse_ranges(definition, self.progress.step_ranges(key)))
        # the asset-level record: the whole table's rows and columns, as for any asset
        rows = self._rows.get(key)
        columns = None
        if self.warehouse is not None:
            try:
                rows = self.warehouse.row_counts([key]).get(key, rows)
                columns = self.warehouse.columns(key) or None
            except Exception:  # noqa: BLE001 - a row count must never fail a run
                log.debug("row count failed", exc_info=True)
        self.progress.succeed(key, rows, None, {"partitions": count}, columns)
