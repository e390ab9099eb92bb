"""The state store a command opens, and the names callers import with it.

`open_store(settings)` opens the store the settings name read-write (`readonly=True`:
read-only): PostgreSQL when `SQLORCH_STATE_URL` / `state_url` is a postgresql:// URL, else
the SQLite file. `StateStore(path)` opens a SQLite file directly. Code that only reads should
take a `StateReader`; code that records, a `StateWriter` (`sqlorch.state.base`).
"""

from __future__ import annotations

from sqlorch.settings import Settings
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

#: the SQLite store (the PostgreSQL store is a subclass: the same queries, translated)
StateStore = SqliteStateStore
#: mypy proves here that the SQLite store implements the read-write interface
_IMPLEMENTS: type[StateWriter] = SqliteStateStore


def open_store(settings: Settings, *, readonly: bool = False) -> SqliteStateStore:
    """Open the state store `settings` name (PostgreSQL for a postgresql:// state URL).

    Raises:
        StateError: it cannot be opened (the message masks the URL's password).
    """
    if settings.state_url:
        from sqlorch.state.postgres import PostgresStateStore

        return PostgresStateStore(settings.state_url, readonly=readonly, path=settings.state_path)
    return SqliteStateStore(settings.state_path, readonly=readonly)


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
    "open_store",
]
