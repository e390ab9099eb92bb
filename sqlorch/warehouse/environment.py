"""A warehouse seen through an environment: asset keys in, the environment's relations out.

`EnvironmentWarehouse(inner, environment)` is what the executor, the checks and the planner
get when a build runs in an environment (`SQLORCH_ENV=pr_123`): `write("raw.flights", ...)`
writes `pr_123__raw.flights`, `row_counts`/`columns`/`table_exists` read there, and
`relations()` lists only the environment's relations, under their asset keys (production's
tables are not "present" for the environment). SQL text a caller writes itself names
relations through `physical(warehouse, key)`. Everything else (the native connection, the
direct window writes, which name dbt's relations as dbt compiled them) goes to the inner
warehouse unchanged.
"""

from __future__ import annotations

from typing import Any

from sqlorch.core.environment import Environment
from sqlorch.core.graph import Column
from sqlorch.warehouse.base import Audit, Warehouse, WriteMode


class EnvironmentWarehouse:
    """`inner` with every asset key mapped to `environment`'s relation."""

    def __init__(self, inner: Warehouse, environment: Environment) -> None:
        self.inner = inner
        self.environment = environment
        self.dialect = inner.dialect

    def __getattr__(self, name: str) -> Any:
        # window writes, `path`, `keeps_absent_partitions`, ...: dbt's relations, unchanged
        return getattr(self.inner, name)

    def _rel(self, key: str) -> str:
        return self.environment.relation(key)

    def _audit(self, audit: Audit | None) -> Audit | None:
        if audit is None:
            return None
        env = self.environment
        return lambda session: audit(EnvironmentWarehouse(session, env))

    @property
    def connection(self) -> Any:
        """The inner session's native connection."""
        return self.inner.connection

    def session(self) -> EnvironmentWarehouse:
        """Return a session of the inner warehouse, seen through the same environment."""
        return EnvironmentWarehouse(self.inner.session(), self.environment)

    def execute(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Run `sql` as written (name relations with `physical`)."""
        return self.inner.execute(sql, params)

    def arrow(self, sql: str, params: Any = None) -> Any:
        """Run a query as written and return a pyarrow Table."""
        return self.inner.arrow(sql, params)

    def write(
        self, key: str, data: Any, mode: WriteMode = WriteMode.REPLACE, audit: Audit | None = None
    ) -> int:
        """Write `key`'s data into the environment's relation."""
        self.inner.ensure_schema(self.environment.schema(key.split(".", 1)[0]))
        if audit is None:
            return self.inner.write(self._rel(key), data, mode)
        return self.inner.write(self._rel(key), data, mode, self._audit(audit))

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
        """Replace a partition of `key`'s relation in the environment."""
        self.inner.ensure_schema(self.environment.schema(key.split(".", 1)[0]))
        return self.inner.write_partition(
            self._rel(key),
            data,
            where,
            params,
            columns,
            audit=self._audit(audit),
            on_schema_change=on_schema_change,
        )

    def replace_window_sql(
        self, relation: Any, queries: list[str], where: str, params: list[Any], audit: Any = None
    ) -> int:
        """A direct window write of dbt's (already the environment's) relation."""
        fn = self.inner.replace_window_sql  # type: ignore[attr-defined]
        return int(fn(relation, queries, where, params, audit=self._audit(audit)))

    def delete_where(self, key: str, where: str, params: list[Any]) -> int:
        """Delete rows of `key`'s relation in the environment."""
        return self.inner.delete_where(self._rel(key), where, params)

    def ensure_schema(self, schema: str) -> None:
        """Create the environment's `schema`."""
        self.inner.ensure_schema(self.environment.schema(schema))

    def table_exists(self, key: str) -> bool:
        """Whether `key`'s relation exists in the environment."""
        return self.inner.table_exists(self._rel(key))

    def relations(self) -> frozenset[str]:
        """The environment's relations, as asset keys."""
        env = self.environment
        return frozenset(k for r in self.inner.relations() if (k := env.key(r)) is not None)

    def row_counts(self, keys: list[str]) -> dict[str, int]:
        """Row counts of the environment's relations, by asset key."""
        by_rel = {self._rel(k): k for k in keys}
        counts = self.inner.row_counts(list(by_rel))
        return {by_rel[r]: n for r, n in counts.items() if r in by_rel}

    def columns(self, key: str) -> list[Column]:
        """Columns of `key`'s relation in the environment."""
        return self.inner.columns(self._rel(key))

    def table_columns(self, keys: list[str]) -> dict[str, list[Column]]:
        """Columns of the environment's relations, by asset key."""
        by_rel = {self._rel(k).lower(): k for k in keys}
        found = self.inner.table_columns(list(self._rel(k) for k in keys))
        return {by_rel.get(r.lower(), r): cols for r, cols in found.items()}

    def interrupt(self) -> None:
        """Interrupt the inner session."""
        self.inner.interrupt()

    def close(self) -> None:
        """Close the inner session."""
        self.inner.close()


def physical(warehouse: Any, key: str) -> str:
    """The relation (`schema.name`) asset `key` is in, for SQL text written by hand."""
    if isinstance(warehouse, EnvironmentWarehouse):
        return warehouse.environment.relation(key)
    return key


def readable(warehouse: Any, key: str) -> str:
    """Where to read asset `key`: the environment's relation when it exists, else production's."""
    if isinstance(warehouse, EnvironmentWarehouse) and not warehouse.table_exists(key):
        return key
    return physical(warehouse, key)


def physical_schema(warehouse: Any, schema: str) -> str:
    """The schema production's `schema` is in for `warehouse`'s environment."""
    if isinstance(warehouse, EnvironmentWarehouse):
        return warehouse.environment.schema(schema)
    return schema


def unwrap(warehouse: Any) -> Any:
    """The warehouse behind an environment's view of it (itself when there is none)."""
    while isinstance(warehouse, EnvironmentWarehouse):
        warehouse = warehouse.inner
    return warehouse


def in_environment(warehouse: Warehouse | None, name: str | None) -> Warehouse | None:
    """`warehouse` seen through environment `name` (as it is when `name` is None)."""
    if warehouse is None or not name:
        return warehouse
    return EnvironmentWarehouse(warehouse, Environment(name))
