"""Record a run: every event into the state store, materializations and ledger after commit."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlorch.events import AttemptOutcome, Event, EventKind
from sqlorch.state.store import (
    StateStore,
    attempt_row,
    check_result_row,
    event_row,
    materialization_row,
)

if TYPE_CHECKING:
    from sqlorch.core.partitions.definitions import PartitionsDefinition

log = logging.getLogger(__name__)


_CHECK_EVENTS = (EventKind.CHECK_PASSED, EventKind.CHECK_WARNED, EventKind.CHECK_FAILED)


class StateRecorder:
    """Write every event of a run to the state store, and materializations after commit.

    Rows are written in small transactions (at most every `interval` seconds, and at the end
    of the run): one SQLite write per event would make the scheduling thread fight dbt's
    threads for the GIL. A process killed outright loses at most that interval of history;
    the tables themselves are never ahead of a lost record by more than a rebuild.
    """

    def __init__(
        self,
        store: StateStore,
        run_id: str,
        interval: float = 0.2,
        definitions: Mapping[str, PartitionsDefinition] | None = None,
    ) -> None:
        self.store = store
        self.definitions = dict(definitions or {})
        self._ledger: list[tuple[str, list[list[str]], str, str, str | None]] = []
        self.run_id = run_id
        self.interval = interval
        self._events: list[tuple[Any, ...]] = []
        self._attempts: list[tuple[Any, ...]] = []
        self._mats: list[tuple[Any, ...]] = []
        self._checks: list[tuple[Any, ...]] = []
        self._started: dict[str, str] = {}
        self._last = time.monotonic()

    def __call__(self, event: Event) -> None:
        data = event.data
        key = event.asset
        self._events.append(
            event_row(
                event.run_id, event.ts, event.kind.value, key, event.message, event.level, data
            )
        )
        if key is not None and event.kind in (
            EventKind.PARTITIONS_MATERIALIZED,
            EventKind.PARTITIONS_FAILED,
        ):
            self._partitions(event, key)
        elif key is not None and event.kind is EventKind.ASSET_MATERIALIZED:
            self._mats.append(
                materialization_row(
                    key,
                    event.run_id,
                    event.ts,
                    data.get("rows"),
                    data.get("duration_s"),
                    data.get("code_version"),
                    data.get("metadata") or None,
                    columns=data.get("columns"),
                )
            )
            self._attempts.append(
                attempt_row(
                    event.run_id,
                    key,
                    AttemptOutcome.SUCCESS,
                    self._started.pop(key, None),
                    event.ts,
                )
            )
        elif key is not None and event.kind in (EventKind.ASSET_FAILED, EventKind.ASSET_SKIPPED):
            failed = event.kind is EventKind.ASSET_FAILED
            status = AttemptOutcome.FAILED if failed else AttemptOutcome.SKIPPED
            self._attempts.append(
                attempt_row(
                    event.run_id, key, status, self._started.pop(key, None), event.ts, event.message
                )
            )
        elif key is not None and event.kind is EventKind.ASSET_STARTED:
            self._started[key] = event.ts
        elif event.kind in _CHECK_EVENTS and data.get("status") != "skipped":
            self._check(event)
        if event.kind is EventKind.RUN_FINISHED or time.monotonic() - self._last >= self.interval:
            self.flush()

    def _partitions(self, event: Event, key: str) -> None:
        """Buffer a partition run: the ledger, and a materialization or a failed attempt."""
        data = event.data
        done = event.kind is EventKind.PARTITIONS_MATERIALIZED
        ranges = data.get("partitions") or []
        text = ", ".join(a if a == b else f"{a}..{b}" for a, b in ranges)
        self._ledger.append(
            (key, ranges, "done" if done else "failed", event.ts, data.get("code_version"))
        )
        if done:
            self._mats.append(
                materialization_row(
                    key,
                    event.run_id,
                    event.ts,
                    data.get("rows"),
                    data.get("duration_s"),
                    data.get("code_version"),
                    None,
                    partition=text,
                )
            )
        else:
            self._attempts.append(
                attempt_row(
                    event.run_id,
                    key,
                    AttemptOutcome.FAILED,
                    None,
                    event.ts,
                    event.message,
                    partition=text,
                )
            )

    def _check(self, event: Event) -> None:
        """Buffer a check result, one row per asset it tests."""
        data = event.data
        key = event.asset
        for asset in data.get("assets") or ([key] if key else []):
            self._checks.append(
                check_result_row(
                    event.run_id,
                    str(data.get("unique_id") or data.get("check")),
                    str(data.get("check")),
                    str(data.get("check_kind") or "dbt_test"),
                    asset,
                    str(data.get("status")),
                    bool(data.get("blocking")),
                    event.ts,
                    event.message,
                    data.get("metadata") or None,
                    data.get("partition"),
                )
            )

    def flush(self) -> None:
        """Write what is buffered."""
        if self._events or self._attempts or self._mats or self._checks:
            self.store.write_batch(self._events, self._attempts, self._mats, self._checks)
            self._events, self._attempts, self._mats, self._checks = [], [], [], []
        if self._ledger:
            from sqlorch.core.partitions.definitions import parse_ranges
            from sqlorch.core.partitions.segments import SegmentStatus
            from sqlorch.errors import PartitionError
            from sqlorch.state import ledger

            pending, self._ledger = self._ledger, []
            for key, ranges, status, ts, code_version in pending:
                definition = self.definitions.get(key)
                if definition is None:
                    continue
                try:
                    parts = parse_ranges(definition, ranges)
                except PartitionError:
                    log.warning("ledger: unreadable ranges %r of %s", ranges, key)
                    continue
                ledger.write(
                    self.store,
                    key,
                    definition,
                    parts,
                    SegmentStatus(status),
                    self.run_id,
                    ts,
                    code_version,
                )
        self._last = time.monotonic()
