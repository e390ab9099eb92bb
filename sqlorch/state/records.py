"""What the state store returns: one frozen record per row kind (runs, events, ledger, ...)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlorch.events import AttemptOutcome


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One row of `runs`."""

    run_id: str
    command: str
    selection: str
    started_at: str
    finished_at: str | None
    status: str
    succeeded: int
    failed: int
    skipped: int


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One row of `events`."""

    id: int
    run_id: str
    ts: str
    kind: str
    asset: str | None
    partition: str | None
    level: str
    message: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AssetState:
    """The last materialization and the last attempt of one asset."""

    key: str
    last_materialized_at: str | None
    rows: int | None
    duration_s: float | None
    code_version: str | None
    last_run_id: str | None
    last_status: AttemptOutcome | None
    last_error: str | None
    materialized_run: str | None = None
    code_parts: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """One row of `partition_ledger`: a range of partitions of one asset, by key."""

    prefix: str
    lo: str
    hi: str
    status: str
    run_id: str
    at: str
    code_version: str | None = None


@dataclass(frozen=True, slots=True)
class MaterializationRecord:
    """One row of `materializations`."""

    id: int
    asset: str
    partition: str | None
    run_id: str
    materialized_at: str
    rows: int | None
    duration_s: float | None
    code_version: str | None
    metadata: dict[str, Any]
    columns: list[tuple[str, str]] | None


@dataclass(frozen=True, slots=True)
class CheckResultRecord:
    """One row of `check_results`: one check's outcome for one asset (and partition)."""

    id: int
    run_id: str
    check_id: str
    name: str
    kind: str
    asset: str
    partition: str | None
    status: str
    blocking: bool
    message: str
    metadata: dict[str, Any]
    checked_at: str

    @property
    def is_failure(self) -> bool:
        """True when the check failed or errored."""
        return self.status in ("fail", "error")
