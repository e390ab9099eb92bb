"""Which materializations native execution runs, per warehouse: DuckDB's or PostgreSQL's.

Native steps (sqlorch.execute.native_steps) decide, compile, order and report; an engine
writes: its catalog of relations, its materializations (dbt-duckdb's or dbt-postgres's
statements), its test runner and the errors its driver raises.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlorch.dbt.datatests import DataTest
    from sqlorch.execute.native_writes import Write


@dataclass(frozen=True, slots=True)
class Engine:
    """The warehouse-specific half of native execution."""

    name: str  # "duckdb" | "postgres"
    catalog: Callable[[Any], Any]
    materialize_many: Callable[[Any, Sequence[Write], Any], list[tuple[int | None, float]]]
    run_test: Callable[[Any, DataTest], tuple[str, str, int, float]]
    errors: tuple[type[BaseException], ...]


def engine_for(warehouse: Any) -> Engine | None:
    """The engine of a warehouse (None: native execution does not run on it)."""
    from sqlorch.execute.native_incremental import NativeWriteError
    from sqlorch.warehouse.duckdb import DuckDBWarehouse
    from sqlorch.warehouse.postgres import PostgresWarehouse

    if isinstance(warehouse, DuckDBWarehouse):
        import duckdb

        from sqlorch.execute import native_writes as dw

        return Engine(
            "duckdb", dw.Catalog, dw.materialize_many, dw.run_test, (duckdb.Error, NativeWriteError)
        )
    if isinstance(warehouse, PostgresWarehouse):
        import psycopg

        from sqlorch.execute import native_pg as pg

        return Engine(
            "postgres",
            pg.PgCatalog,
            pg.materialize_many,
            pg.run_test,
            (psycopg.Error, NativeWriteError),
        )
    return None
