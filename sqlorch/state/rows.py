"""Row conversions of the state store: records from query rows, insert rows from values.

The `*_row` functions build the rows `write_batch` inserts; the `*_record` functions turn
the rows a query returns into the frozen records of `sqlorch.state.records`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from sqlorch.events import AttemptOutcome
from sqlorch.state.records import (
    AssetState,
    CheckResultRecord,
    EventRecord,
    MaterializationRecord,
    RunRecord,
)

EVENT_COLUMNS = "id, run_id, ts, kind, asset, partition, level, message, data"
LEDGER_COLUMNS = "prefix, lo, hi, status, run_id, at, code_version"
MAT_COLUMNS = (
    "id, asset, partition, run_id, materialized_at, rows, duration_s, code_version, metadata, "
    "columns"
)
CHECK_COLUMNS = (
    "id, run_id, check_id, name, kind, asset, partition, status, blocking, message, metadata, "
    "checked_at"
)


def materialization_record(r: Sequence[Any]) -> MaterializationRecord:
    """Build a MaterializationRecord from a `MAT_COLUMNS` row."""
    return MaterializationRecord(
        id=r[0],
        asset=r[1],
        partition=r[2],
        run_id=r[3],
        materialized_at=r[4],
        rows=r[5],
        duration_s=r[6],
        code_version=r[7],
        metadata=json.loads(r[8]) if r[8] else {},
        columns=[(str(n), str(t)) for n, t in json.loads(r[9])] if r[9] else None,
    )


def check_record(r: Sequence[Any]) -> CheckResultRecord:
    """Build a CheckResultRecord from a `CHECK_COLUMNS` row."""
    return CheckResultRecord(
        id=r[0],
        run_id=r[1],
        check_id=r[2],
        name=r[3],
        kind=r[4],
        asset=r[5],
        partition=r[6],
        status=r[7],
        blocking=bool(r[8]),
        message=r[9],
        metadata=json.loads(r[10]) if r[10] else {},
        checked_at=r[11],
    )


RUN_COLUMNS = (
    "run_id, command, selection, started_at, finished_at, status, succeeded, failed, skipped, pid"
)


def run_record(row: Sequence[Any]) -> RunRecord:
    """Build a RunRecord from a `RUN_COLUMNS` row.

    A 'running' run whose process is gone (killed) reads as failed.
    """
    status = row[5]
    if status == "running" and row[9] and not is_alive(int(row[9])):
        status = "failed"
    return RunRecord(
        run_id=row[0],
        command=row[1],
        selection=row[2],
        started_at=row[3],
        finished_at=row[4],
        status=status,
        succeeded=row[6],
        failed=row[7],
        skipped=row[8],
    )


def event_record(r: Sequence[Any]) -> EventRecord:
    """Build an EventRecord from an `EVENT_COLUMNS` row."""
    return EventRecord(
        id=r[0],
        run_id=r[1],
        ts=r[2],
        kind=r[3],
        asset=r[4],
        partition=r[5],
        level=r[6],
        message=r[7],
        data=json.loads(r[8]) if r[8] else {},
    )


def asset_state(key: str, mat: Sequence[Any] | None, attempt: Sequence[Any] | None) -> AssetState:
    """Build an AssetState from its last materialization row and last attempt row."""
    return AssetState(
        key=key,
        last_materialized_at=mat[1] if mat else None,
        rows=mat[2] if mat else None,
        duration_s=mat[3] if mat else None,
        code_version=mat[4] if mat else None,
        last_run_id=attempt[1] if attempt else None,
        last_status=AttemptOutcome(attempt[2]) if attempt else None,
        last_error=attempt[3] if attempt else None,
        materialized_run=mat[5] if mat else None,
        code_parts=json.loads(mat[6]) if mat and mat[6] else None,
    )


def _json(value: dict[str, Any] | None) -> str | None:
    return json.dumps(value, default=str) if value else None


def event_row(
    run_id: str,
    ts: str,
    kind: str,
    asset: str | None = None,
    message: str = "",
    level: str = "info",
    data: dict[str, Any] | None = None,
    partition: str | None = None,
) -> tuple[Any, ...]:
    """Return an `events` row for `StateStore.write_batch`."""
    return (run_id, ts, kind, asset, partition, level, message, _json(data))


def attempt_row(
    run_id: str,
    asset: str,
    status: AttemptOutcome,
    started_at: str | None,
    finished_at: str,
    error: str | None = None,
    partition: str | None = None,
) -> tuple[Any, ...]:
    """Return an `attempts` row for `StateStore.write_batch`."""
    return (run_id, asset, partition, str(status), started_at, finished_at, error)


def materialization_row(
    asset: str,
    run_id: str,
    materialized_at: str,
    rows: int | None,
    duration_s: float | None,
    code_version: str | None,
    metadata: dict[str, Any] | None = None,
    partition: str | None = None,
    columns: Sequence[Sequence[str]] | None = None,
) -> tuple[Any, ...]:
    """Return a `materializations` row for `StateStore.write_batch`.

    `columns` is the relation's `(name, type)` pairs in order (None when unknown).
    """
    return (
        asset,
        partition,
        run_id,
        materialized_at,
        rows,
        duration_s,
        code_version,
        _json(metadata),
        json.dumps([[str(n), str(t)] for n, t in columns]) if columns is not None else None,
    )


def check_result_row(
    run_id: str,
    check_id: str,
    name: str,
    kind: str,
    asset: str,
    status: str,
    blocking: bool,
    checked_at: str,
    message: str = "",
    metadata: dict[str, Any] | None = None,
    partition: str | None = None,
) -> tuple[Any, ...]:
    """Return a `check_results` row for `StateStore.write_batch`."""
    return (
        run_id,
        check_id,
        name,
        kind,
        asset,
        partition,
        status,
        1 if blocking else 0,
        message,
        _json(metadata),
        checked_at,
    )


def is_alive(pid: int) -> bool:
    """True when a process `pid` exists (this one included)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
