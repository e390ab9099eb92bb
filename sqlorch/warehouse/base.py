"""The `Warehouse` interface: what the executor needs from a database.

One implementation per dbt adapter type, each in its own module of `sqlorch.warehouse`
(`duckdb`, `postgres`, `spark`, ...). Such a module provides:

- a class implementing `Warehouse` below;
- `open_target(target) -> Warehouse`: open it from a resolved dbt target (`type`, `path`,
  `config`, `options`: the target's whole profiles.yml entry, secrets included, never printed);
  raise `WarehouseError` when it cannot connect (the caller turns it into a `ConfigError`).

`sqlorch.warehouse.observe.WAREHOUSE_MODULES` maps the adapter type to the module (one line
per warehouse). SQL given to `execute`/`arrow`/`delete_where`/`write_partition` uses `?`
placeholders (as `sqlorch.warehouse.sql.filter_sql` writes them) and double-quoted
identifiers; an implementation translates them to its driver's style. Keys are
`schema.name`, compared case-insensitively. `relations()` answers "which tables exist" for
the planner (a missing table is stale). The direct window writes of dbt models
(`sqlorch.dbt.windows.WindowStore`) are optional: a warehouse without them leaves every
window to dbt.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any, Protocol

from sqlorch.core.graph import Column


class WriteMode(StrEnum):
    """How a Python asset's output replaces what is in its table."""

    REPLACE = "replace"
    APPEND = "append"


class SchemaDrift(Exception):  # noqa: N818 - a signal to fall back to dbt, not a user error
    """A window's query has other columns than its table (dbt's on_schema_change decides)."""


#: Called inside a write's transaction with a session that sees the new data; raises to roll back.
Audit = Callable[["Warehouse"], None]


class Warehouse(Protocol):
    """A database that Python assets are written to and read from.

    Implementations hand each worker its own session (`session()`), write Arrow data in one
    transaction, and answer catalog questions. Keys are `schema.name`.
    """

    #: the sqlglot dialect of its SQL (`duckdb`, `postgres`, `spark`)
    dialect: str

    @property
    def connection(self) -> Any:
        """The native connection of this session, for assets that write SQL themselves."""
        ...

    def session(self) -> Warehouse:
        """Return a handle with its own connection, safe to use from another thread."""
        ...

    def execute(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Run `sql` (`?` placeholders) and return all rows."""
        ...

    def arrow(self, sql: str, params: Any = None) -> Any:
        """Run a query (`?` placeholders) and return its rows as a pyarrow Table."""
        ...

    def write(
        self,
        key: str,
        data: Any,
        mode: WriteMode = WriteMode.REPLACE,
        audit: Audit | None = None,
    ) -> int:
        """Write Arrow-compatible `data` to table `key` in one transaction; return its rows.

        `audit` is called inside the transaction, before it commits, with a session that sees
        the new data; when it raises, the write is rolled back and the error propagates.
        """
        ...

    def write_partition(
        self,
        key: str,
        data: Any,
        where: str,
        params: list[Any],
        columns: tuple[str, ...],
        audit: Audit | None = None,
        on_schema_change: str = "fail",
    ) -> int:
        """Replace the rows of `key` matching `where` with `data` in one transaction.

        `audit` as in `write`; `on_schema_change` (`fail`, `append_new_columns`,
        `sync_all_columns`) says what a difference between the data's columns and the table's
        does.
        """
        ...

    def delete_where(self, key: str, where: str, params: list[Any]) -> int:
        """Delete the rows of `key` matching `where`; return how many."""
        ...

    def ensure_schema(self, schema: str) -> None:
        """Create `schema` if it does not exist."""
        ...

    def table_exists(self, key: str) -> bool:
        """Return True when a table or view `key` exists."""
        ...

    def relations(self) -> frozenset[str]:
        """Return every table and view of the target database as lower-case `schema.name`."""
        ...

    def row_counts(self, keys: list[str]) -> dict[str, int]:
        """Return the row count of each of `keys` that exists (missing ones are left out)."""
        ...

    def columns(self, key: str) -> list[Column]:
        """Return the columns of `key` (empty when it does not exist)."""
        ...

    def table_columns(self, keys: list[str]) -> dict[str, list[Column]]:
        """Return the columns of each existing relation among `keys` (one round trip)."""
        ...

    def interrupt(self) -> None:
        """Cancel the query this session is running (from another thread); never raises."""
        ...

    def close(self) -> None:
        """Release this session's connection."""
        ...
