"""Checks beyond dbt's tests: `@check` functions in Python and the built-in checks.

A `@check(asset=...)` function receives what it asks for by parameter name -- `context` (a
`CheckContext`), `connection` (the warehouse connection), `rows` (the asset's rows as a
pyarrow Table; for a partitioned asset, the partition's rows) -- and returns a bool or a
`CheckResult` with metadata. The built-in checks' logic is in `sqlorch.core.checks`, attaching
checks to the graph in `sqlorch.load.checks`, running them in `sqlorch.execute.check_steps`.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, overload

from sqlorch.core.checks import CheckResult

if TYPE_CHECKING:
    # the Warehouse protocol reaches the user API through AssetContext's module only
    from sqlorch.api.asset import Warehouse

__all__ = ["CHECK_PARAMS", "CheckContext", "CheckDefinition", "CheckResult", "check"]

CHECK_PARAMS = frozenset({"context", "connection", "rows"})


@dataclass(frozen=True, slots=True)
class CheckDefinition:
    """A Python check as declared by `@check`."""

    fn: Callable[..., Any]
    asset: str
    name: str
    blocking: bool = True
    description: str = ""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    @property
    def params(self) -> tuple[str, ...]:
        """The names of the function's parameters."""
        return tuple(inspect.signature(self.fn).parameters)


@overload
def check(fn: Callable[..., Any], /) -> CheckDefinition: ...


@overload
def check(
    *,
    asset: str,
    name: str | None = None,
    blocking: bool = True,
    description: str | None = None,
) -> Callable[[Callable[..., Any]], CheckDefinition]: ...


def check(
    fn: Callable[..., Any] | None = None,
    *,
    asset: str | None = None,
    name: str | None = None,
    blocking: bool = True,
    description: str | None = None,
) -> CheckDefinition | Callable[[Callable[..., Any]], CheckDefinition]:
    """Declare a Python check of one asset.

    Args:
        asset: the asset it checks: a key (`marts.fct_delays`), a dbt node name, or
            `source_name.table`.
        name: the check's name; default the function's name.
        blocking: a failure stops the asset's downstream in the run and keeps the asset
            stale until the check passes (default True); False only records and reports.
        description: default the docstring's first paragraph.

    The function may take `context` (a `CheckContext`), `connection` and `rows`; it returns
    True/False or a `CheckResult`. An exception counts as an error (a failure).
    """

    def wrap(f: Callable[..., Any]) -> CheckDefinition:
        if asset is None:
            raise TypeError("@check needs asset=: the key or name of the asset it checks")
        doc = inspect.getdoc(f) or ""
        return CheckDefinition(
            fn=f,
            asset=asset,
            name=name or f.__name__,
            blocking=blocking,
            description=description if description is not None else doc.split("\n\n")[0],
        )

    if fn is not None:
        if asset is None:
            raise TypeError("@check needs asset=: write @check(asset='schema.name')")
        return wrap(fn)
    return wrap


@dataclass(slots=True)
class CheckContext:
    """What a Python check receives as `context`."""

    asset: str
    run_id: str
    warehouse: Warehouse
    log: logging.Logger
    table: str  # the asset's relation, quoted for SQL
    partition: Any = None
    partition_filter: str | None = None
    partition_params: Sequence[Any] = ()

    @property
    def connection(self) -> Any:
        """The warehouse's native connection (DuckDB: a cursor; PostgreSQL: a psycopg one)."""
        return self.warehouse.connection

    def rows(self) -> Any:
        """Return the asset's rows (the partition's, when partitioned) as a pyarrow Table."""
        where = f" WHERE {self.partition_filter}" if self.partition_filter else ""
        sql = f"SELECT * FROM {self.table}{where}"
        params = list(self.partition_params) or None
        return self.warehouse.arrow(sql, params)
