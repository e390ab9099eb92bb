"""The state store's interfaces: what read commands need, and what a build writes.

`StateReader` is what `status`, `history`, `runs`, `logs`, lineage and the coming web UI
read; `StateWriter` adds what a build records. The SQLite store
(`sqlorch.state.sqlite.SqliteStateStore`) implements both, and so does the PostgreSQL store
(`sqlorch.state.postgres.PostgresStateStore`); `sqlorch.state.store.open_store` picks one.
The rows `write_batch` takes are built by `sqlorch.state.rows`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from sqlorch.events import AttemptOutcome
from sqlorch.state.records import (
    AssetState,
    CheckResultRecord,
    EventRecord,
    LedgerRow,
    MaterializationRecord,
    RunRecord,
)


class StateReader(Protocol):
    """Read access to the recorded runs, events, materializations, checks and ledgers."""

    @property
    def path(self) -> Path:
        """Where the store lives (for messages)."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...

    def runs(self, limit: int | None = None) -> list[RunRecord]:
        """Return runs, newest first."""
        ...

    def run(self, run_id: str) -> RunRecord | None:
        """Return one run by id, or by a unique prefix of its id."""
        ...

    def events(self, run_id: str) -> Iterator[EventRecord]:
        """Yield a run's events in order."""
        ...

    def events_page(
        self,
        run_id: str,
        *,
        after: int = 0,
        limit: int = 500,
        kinds: Sequence[str] = (),
        levels: Sequence[str] = (),
        asset: str | None = None,
    ) -> list[EventRecord]:
        """Return up to `limit` of a run's events with id > `after`, in order, filtered.

        `kinds`, `levels`: only these (none: all); `asset`: only this asset's events.
        """
        ...

    def event_count(self, run_id: str) -> int:
        """Return how many events a run has."""
        ...

    def asset_states(self) -> dict[str, AssetState]:
        """Return the last materialization and last attempt of every asset with history."""
        ...

    def run_attempts(self, run_id: str) -> dict[str, AttemptOutcome]:
        """Return asset -> outcome (success, failed, skipped) of every attempt in `run_id`."""
        ...

    def latest_columns(self) -> dict[str, list[tuple[str, str]]]:
        """Return, per asset, the `(name, type)` columns of its latest materialization."""
        ...

    def last_materializations(
        self, before_run: str | None = None
    ) -> dict[tuple[str, str | None], MaterializationRecord]:
        """Return the latest materialization of each (asset, partition)."""
        ...

    def materializations(self, asset: str, limit: int | None = None) -> list[MaterializationRecord]:
        """Return an asset's materializations, newest first."""
        ...

    def known_assets(self) -> set[str]:
        """Return every asset key with a materialization, attempt or check result."""
        ...

    def failed_attempts(self, asset: str, limit: int | None = None) -> list[tuple[Any, ...]]:
        """Return an asset's failed and skipped attempts, newest first."""
        ...

    def check_results(
        self, *, asset: str | None = None, run_id: str | None = None, limit: int | None = None
    ) -> list[CheckResultRecord]:
        """Return recorded check results, newest first, filtered by asset and/or run."""
        ...

    def failing_blocking_checks(self) -> dict[str, list[CheckResultRecord]]:
        """Return, per asset, its blocking checks whose latest result did not pass."""
        ...

    def ledger(self, asset: str) -> list[LedgerRow]:
        """Return the ledger rows of one asset."""
        ...

    def ledgers(self) -> dict[str, list[LedgerRow]]:
        """Return the ledger rows of every asset that has any."""
        ...


class StateWriter(StateReader, Protocol):
    """Read-write access: what a build (and `wipe`) records."""

    def start_run(self, run_id: str, command: str, selection: str, started_at: str) -> None:
        """Record a new run as running."""
        ...

    def finish_run(
        self, run_id: str, status: str, finished_at: str, succeeded: int, failed: int, skipped: int
    ) -> None:
        """Record a run's outcome."""
        ...

    def write_batch(
        self,
        events: Sequence[tuple[Any, ...]],
        attempts: Sequence[tuple[Any, ...]],
        materializations: Sequence[tuple[Any, ...]],
        check_results: Sequence[tuple[Any, ...]] = (),
    ) -> None:
        """Append many rows in one transaction (rows from `sqlorch.state.rows`)."""
        ...

    def update_ledger(
        self, asset: str, change: Callable[[list[LedgerRow]], list[LedgerRow]]
    ) -> None:
        """Replace `asset`'s ledger rows with `change(rows)` in one write transaction."""
        ...

    def acquire_lease(self, keys: Iterable[str], run_id: str) -> None:
        """Hold the assets `keys` for run `run_id` until `release_lease` (shared stores).

        Raises:
            StateError: another run holds one of them (named in the message).
        """
        ...

    def release_lease(self) -> None:
        """Release what `acquire_lease` took."""
        ...

    def mark_abandoned_runs(self, now: str) -> int:
        """Mark runs left 'running' by a process that no longer exists as failed."""
        ...

    def save_code_parts(self, items: Iterable[tuple[str, str | None, Mapping[str, str]]]) -> None:
        """Remember the named parts of (asset, code version) pairs, for "what changed"."""
        ...
