"""A run's progress: where each step and check is, and the events that say so.

Only the scheduling thread touches a `Progress`; every transition (materialized, failed,
skipped) is emitted as an event to the run's listeners (the state recorder, renderers).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from sqlorch.core.checks import CheckStatus, Observed
from sqlorch.core.graph import AssetGraph, AssetKind, CheckNode, Column
from sqlorch.core.plan.definition import Plan
from sqlorch.events import Event, EventKind, Listener, utcnow
from sqlorch.execute.status import Status


class Progress:
    """The statuses of one run's steps and checks, and the events of their transitions."""

    def __init__(
        self,
        graph: AssetGraph,
        plan: Plan,
        run_id: str,
        listeners: Iterable[Listener],
        target: str | None = None,
    ) -> None:
        self.graph = graph
        # the dbt target written to (`type:name`), kept in each materialization's metadata
        self.target = target
        self.plan = plan
        self.run_id = run_id
        self.listeners = list(listeners)
        self.status: dict[str, Status] = {s.key: Status.PENDING for s in plan.steps}
        self.kind: dict[str, AssetKind] = {s.key: s.kind for s in plan.steps}
        self.checks: dict[str, CheckNode] = {c: graph.checks[c] for c in plan.checks}
        self.check_status: dict[str, CheckStatus] = {c: CheckStatus.PENDING for c in plan.checks}
        self.errors: dict[str, str] = {}
        self.started_at: dict[str, float] = {}
        # what each asset materialized in this run (the built-in checks compare)
        self.observed: dict[str, Observed] = {}
        # blocking checks of each asset that this run executes
        self.blocking: dict[str, list[str]] = {}
        for uid, check in self.checks.items():
            if check.is_blocking and not check.is_unit_test:
                for k in check.asset_keys:
                    self.blocking.setdefault(k, []).append(uid)
        self.check_blocked: set[str] = set()
        # dbt nodes: the attempt each is on, and those waiting out a back-off
        self.attempts: dict[str, int] = {}
        self.retry_wait: set[str] = set()

    def step_ranges(self, key: str) -> list[list[str]]:
        """The partition ranges the plan runs of `key`."""
        step = next(s for s in self.plan.steps if s.key == key)
        return [list(r) for r in step.partitions or ()]

    def start(self, key: str, data: dict[str, Any]) -> None:
        """Mark `key` running and say so."""
        self.status[key] = Status.RUNNING
        self.started_at[key] = time.perf_counter()
        self.emit(EventKind.ASSET_STARTED, key, data=data)

    def count(self, status: Status) -> int:
        """How many steps are `status` now."""
        return sum(1 for s in self.status.values() if s is status)

    def is_retrying(self, key: str) -> bool:
        """True when `key` or an upstream dbt node failed and waits for another attempt."""
        if not self.attempts:
            return False
        return any(
            self.status.get(k) in (Status.PENDING, Status.RUNNING) and self.attempts.get(k, 1) > 1
            for k in (key, *self.graph.ancestors(key))
        )

    def succeed(
        self,
        key: str,
        rows: int | None,
        seconds: float | None,
        metadata: dict[str, Any],
        columns: list[Column] | None = None,
    ) -> None:
        """Mark `key` succeeded and record its materialization."""
        self.status[key] = Status.SUCCEEDED
        self.materialized(key, rows, seconds, metadata, columns)

    def materialized(
        self,
        key: str,
        rows: int | None,
        seconds: float | None,
        metadata: dict[str, Any],
        columns: list[Column] | None = None,
    ) -> None:
        """Record `key`'s materialization (its status is set by the caller)."""
        if seconds is None and key in self.started_at:
            seconds = time.perf_counter() - self.started_at[key]
        node = self.graph.assets[key]
        if self.target is not None:
            metadata = {**metadata, "target": self.target}
        self.observed[key] = Observed(
            rows, [(c.name, c.type) for c in columns] if columns is not None else None, utcnow()
        )
        self.emit(
            EventKind.ASSET_MATERIALIZED,
            key,
            data={
                "kind": node.kind.value,
                "rows": rows,
                "duration_s": round(seconds, 4) if seconds is not None else None,
                "code_version": node.code_version,
                "metadata": metadata,
                "columns": ([[c.name, c.type] for c in columns] if columns is not None else None),
            },
        )

    def fail(self, key: str, error: str, tb: str | None) -> None:
        """Mark `key` failed and skip what is pending downstream."""
        self.status[key] = Status.FAILED
        self.errors[key] = error
        node = self.graph.assets[key]
        seconds = None
        if key in self.started_at:
            seconds = round(time.perf_counter() - self.started_at[key], 4)
        self.emit(
            EventKind.ASSET_FAILED,
            key,
            error,
            level="error",
            data={
                "kind": node.kind.value,
                "file": node.file,
                "line": node.line,
                "traceback": tb,
                "duration_s": seconds,
            },
        )
        for d in self.graph.topological(self.graph.descendants(key)):
            if self.status.get(d) is Status.PENDING:
                self.skip(d, f"upstream {key} failed")

    def skip(self, key: str, reason: str) -> None:
        """Mark `key` skipped; its pending blocking checks can no longer run."""
        self.status[key] = Status.SKIPPED
        self.emit(
            EventKind.ASSET_SKIPPED,
            key,
            reason,
            level="warning",
            data={"kind": self.kind[key].value},
        )
        for uid in self.blocking.get(key, ()):
            if self.check_status.get(uid) is CheckStatus.PENDING:
                self.check_blocked.add(uid)

    def emit(
        self,
        kind: EventKind,
        asset: str | None = None,
        message: str = "",
        level: str = "info",
        data: dict[str, Any] | None = None,
    ) -> None:
        """Send one event of this run to every listener."""
        event = Event(
            kind=kind,
            run_id=self.run_id,
            ts=utcnow(),
            asset=asset,
            message=message,
            level=level,
            data=data or {},
        )
        for listener in self.listeners:
            listener(event)
