"""The state store a command opens, and the names callers import with it.

`StateStore(path)` opens the SQLite store read-write, `StateStore(path, readonly=True)`
read-only. Code that only reads should take a `StateReader`; code that records, a
`StateWriter` (`sqlorch.state.base`): a PostgreSQL store will implement both.
"""

from __future__ import annotations

from sqlorch.state.base import StateReader, StateWriter
from sqlorch.state.records import (
    AssetState,
    CheckResultRecord,
    EventRecord,
    LedgerRow,
    MaterializationRecord,
    RunRecord,
)
from sqlorch.state.rows import attempt_row, check_result_row, event_row, materialization_row
from sqlorch.state.sqlite import SqliteStateStore

#: the store sqlorch opens (`SQLORCH_STATE_URL` naming PostgreSQL will pick another)
StateStore = SqliteStateStore
#: mypy proves here that the SQLite store implements the read-write interface
_IMPLEMENTS: type[StateWriter] = SqliteStateStore

__all__ = [
    "AssetState",
    "CheckResultRecord",
    "EventRecord",
    "LedgerRow",
    "MaterializationRecord",
    "RunRecord",
    "SqliteStateStore",
    "StateReader",
    "StateStore",
    "StateWriter",
    "attempt_row",
    "check_result_row",
    "event_row",
    "materialization_row",
]
