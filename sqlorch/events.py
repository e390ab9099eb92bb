"""Run events: the one stream every renderer (terminal, JSON, state store, UI) consumes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class EventKind(StrEnum):
    """What happened."""

    RUN_STARTED = "run_started"
    RUN_FINISHED = "run_finished"
    ASSET_STARTED = "asset_started"
    ASSET_LOG = "asset_log"
    ASSET_MATERIALIZED = "asset_materialized"
    ASSET_FAILED = "asset_failed"
    ASSET_SKIPPED = "asset_skipped"
    ASSET_RETRY = "asset_retry"
    CHECK_PASSED = "check_passed"
    CHECK_WARNED = "check_warned"
    CHECK_FAILED = "check_failed"
    DBT_INVOCATION_STARTED = "dbt_invocation_started"
    DBT_INVOCATION_FINISHED = "dbt_invocation_finished"
    PARTITIONS_MATERIALIZED = "partitions_materialized"
    PARTITIONS_FAILED = "partitions_failed"
    HIDDEN_DEPENDENCY = "hidden_dependency"


class AttemptOutcome(StrEnum):
    """How one attempt at an asset (or a partition run) ended, as the state store records it."""

    SUCCESS = "success"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class Event:
    """One event of one run."""

    kind: EventKind
    run_id: str
    ts: str
    asset: str | None = None
    message: str = ""
    level: str = "info"
    data: dict[str, Any] = field(default_factory=dict)


Listener = Callable[[Event], None]


@dataclass(frozen=True, slots=True)
class HiddenDependencyFound:
    """A model of the run reads relations without a ref() or source(): a warning.

    Found after the run's dbt invocations, from their compiled SQL; recorded before the
    run finishes.
    """

    asset: str
    message: str

    def event(self, run_id: str, ts: str) -> Event:
        """Return the `hidden_dependency` event of `run_id` at `ts`."""
        return Event(EventKind.HIDDEN_DEPENDENCY, run_id, ts, self.asset, self.message, "warning")


def utcnow() -> str:
    """Return the current UTC time as ISO-8601 with microseconds and a Z suffix."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
