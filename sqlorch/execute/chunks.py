"""Running partitions: cut a step's ranges into runs, call Python assets, pass windows to dbt.

The executor hands a partitioned step to these helpers; each run (a chunk of contiguous
partitions) is one Python call or one dbt invocation, written in one transaction, and
reported as a `partitions_materialized` event after commit, which the state recorder turns
into ledger ranges.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlorch.api.asset import AssetContext, MaterializeResult, PartitionContext
from sqlorch.core.partitions import (
    PartitionError,
    PartitionsDefinition,
    PartitionSet,
    Prefix,
    TimeWindows,
    parse_ranges,
)
from sqlorch.errors import AssetError
from sqlorch.warehouse.sql import filter_sql

if TYPE_CHECKING:
    from collections.abc import Iterable

    from sqlorch.api.asset import AssetDefinition
    from sqlorch.core.graph import AssetGraph, AssetNode
    from sqlorch.core.plan.definition import Step
    from sqlorch.dbt.manifest import DbtProject
    from sqlorch.dbt.runner import DbtInvoker, InvocationResult
    from sqlorch.dbt.templates import DataTestTemplate, Template
    from sqlorch.warehouse.base import Warehouse
    from sqlorch.warehouse.duckdb import DuckDBWarehouse, Relation

log = logging.getLogger(__name__)

DEFAULT_DBT_MAX_PARTITIONS: int | None = None


@dataclass(frozen=True, slots=True)
class Chunk:
    """Contiguous partitions lo..hi (axis indices) of one prefix, run as one unit."""

    prefix: Prefix
    lo: int
    hi: int

    def keys(self, definition: PartitionsDefinition) -> tuple[str, ...]:
        """The keys of every partition of the chunk."""
        return tuple(definition.key(self.prefix, i) for i in range(self.lo, self.hi + 1))

    def span(self, definition: PartitionsDefinition) -> list[str]:
        """[first key, last key]."""
        return [definition.key(self.prefix, self.lo), definition.key(self.prefix, self.hi)]

    def as_set(self) -> PartitionSet:
        """The chunk as a partition set."""
        return PartitionSet({self.prefix: ((self.lo, self.hi),)})


def chunks(node: AssetNode, ranges: tuple[tuple[str, str], ...]) -> list[Chunk]:
    """Cut a step's ranges into chunks of at most the asset's `max_partitions_per_run`."""
    assert node.partitions is not None
    parts = parse_ranges(node.partitions, ranges)
    return [Chunk(p, lo, hi) for p, lo, hi in parts.chunks(node.max_partitions_per_run)]


def context_of(definition: PartitionsDefinition, chunk: Chunk) -> PartitionContext:
    """The `context.partition` of one chunk."""
    keys = chunk.keys(definition)
    window = definition.window(chunk.lo, chunk.hi)
    values = {
        d.column or f"dim{i}": k
        for i, (d, k) in enumerate(zip(definition.others, chunk.prefix, strict=True))
    }
    axis = definition.axis_dim
    if not isinstance(axis, TimeWindows) and axis.column and chunk.lo == chunk.hi:
        values[axis.column] = axis.key(chunk.lo)
    return PartitionContext(
        key=keys[0],
        keys=keys,
        start=window[0] if window else None,
        end=window[1] if window else None,
        values=values,
    )


def run_python_chunk(
    fn: AssetDefinition,
    node: AssetNode,
    ctx: AssetContext,
    session: Warehouse,
    chunk: Chunk,
) -> tuple[int | None, dict[str, Any]]:
    """Call a partitioned Python asset for `chunk` and replace exactly its rows.

    Returns (rows written, metadata). The asset's exceptions propagate to the caller.

    Raises:
        AssetError: the asset returned None without writing, lacks a partition column or
            returned rows outside the chunk.
    """
    definition = node.partitions
    assert definition is not None
    ctx.partition = context_of(definition, chunk)
    result = fn(ctx) if fn.takes_context else fn()
    metadata: dict[str, Any] = {}
    if isinstance(result, MaterializeResult):
        metadata.update(result.metadata)
        result = result.data
    metadata.update(ctx.metadata)
    if result is None:
        if not fn.takes_context:
            raise AssetError(
                f"Partitioned Python asset {node.key!r} ({node.file}:{node.line}) returned None. "
                "Return the rows of `context.partition`.",
                asset=node.key,
                file=node.file,
                line=node.line,
            )
        return None, metadata  # the asset wrote its partition itself
    where, params = filter_sql(definition, chunk.prefix, chunk.lo, chunk.hi)
    rows = session.write_partition(node.key, result, where, params, definition.columns)
    return rows, metadata


def dbt_window_args(node: AssetNode, chunk: Chunk) -> list[str]:
    """The dbt flags that hand `chunk` to a partitioned model.

    A microbatch model gets `--event-time-start/--event-time-end` (dbt runs its batches);
    any other model the vars `start_date` and `end_date` (the window [start, end): dates for
    daily and coarser, timestamps for hourly) and, for static dimensions,
    `partition_<column>` (the key, or the list of keys of the chunk).
    """
    definition = node.partitions
    assert definition is not None
    window = definition.window(chunk.lo, chunk.hi)
    microbatch = node.metadata.get("sqlorch_microbatch") is True
    if microbatch and window is not None:
        fmt = "%Y-%m-%dT%H:%M:%S"
        return [
            "--event-time-start",
            window[0].astimezone(UTC).strftime(fmt),
            "--event-time-end",
            window[1].astimezone(UTC).strftime(fmt),
        ]
    values: dict[str, Any] = {}
    time = definition.time
    if window is not None and time is not None:
        fmt = "%Y-%m-%d %H:%M:%S" if time.grain.value == "hourly" else "%Y-%m-%d"
        values["start_date"] = window[0].strftime(fmt)
        values["end_date"] = window[1].strftime(fmt)
    for d, k in zip(definition.others, chunk.prefix, strict=True):
        if d.column:
            values[f"partition_{d.column}"] = k
    axis = definition.axis_dim
    if not isinstance(axis, TimeWindows) and axis.column:
        values[f"partition_{axis.column}"] = list(axis.keys[chunk.lo : chunk.hi + 1])
    return ["--vars", json.dumps(values)]


def check_partition_columns(graph: AssetGraph, steps: Iterable[Step], warehouse: Warehouse) -> None:
    """Refuse to run partitions of a table that exists without its partition columns.

    Raises:
        PartitionError: a planned partitioned asset's table lacks a partition column.
    """
    for step in steps:
        node = graph.assets[step.key]
        if not step.partitions or node.partitions is None:
            continue
        wanted = node.partitions.columns
        if not wanted:
            continue
        have = {c.name.lower() for c in warehouse.columns(step.key)}
        if not have:
            continue  # not built yet: the first write checks the output itself
        missing = [c for c in wanted if c.lower() not in have]
        if missing:
            where = f"{node.file}:{node.line}" if node.line else (node.file or node.key)
            raise PartitionError(
                f"Asset {node.key} ({where}) is partitioned on {', '.join(wanted)} but its "
                f"table has no column {', '.join(missing)} (it has: "
                f"{', '.join(sorted(have))}). Fix `column=` in the partition definition, or "
                "add the column to the asset's output; nothing ran.",
                asset=node.key,
                file=node.file,
                line=node.line,
            )


class DirectWindows:
    """Writes windows of partitioned dbt models from their templates (sqlorch.dbt.templates).

    One per run; called from the executor's dbt thread only (invocations are serialized).
    """

    def __init__(
        self,
        graph: AssetGraph,
        project: DbtProject,
        invoker: DbtInvoker,
        warehouse: DuckDBWarehouse,
        run_dir: Path,
    ) -> None:
        from sqlorch.dbt.templates import TemplateCache

        self.graph = graph
        self.project = project
        self.invoker = invoker
        self.warehouse = warehouse
        self.run_dir = run_dir
        self.cache = TemplateCache(invoker.artifacts_dir / "templates.json")
        # model key -> why dbt writes its windows (shown in the run's events)
        self.reasons: dict[str, str] = {}

    def templates(self, n: int, keys: list[str]) -> dict[str, Template]:
        """The templates of the models among `keys` that have one (compiling missing ones).

        A model without one is left to dbt: it is not eligible (hooks, a contract, an adapter
        other than DuckDB, ...), its table does not exist yet (dbt creates it, and compiles
        `is_incremental()` as it will run), or dbt's SQL for it is not a template.
        """
        from sqlorch.dbt.manifest import compress_selection
        from sqlorch.dbt.templates import blocker, compile_templates

        # the dbt target must be the DuckDB file sqlorch writes to
        same_file = self.invoker.duckdb_path is not None and (
            Path(self.warehouse.path).resolve() == self.invoker.duckdb_path
        )
        found: dict[str, Template] = {}
        missing: list[AssetNode] = []
        for key in keys:
            self.reasons.pop(key, None)
            node = self.graph.assets[key]
            reason = blocker(node, same_file, self.project.hook_count)
            if reason:
                self.reasons[key] = reason
                continue
            cached = self.cache.get(node)
            if cached is None:
                missing.append(node)
            elif isinstance(cached, str):
                self.reasons[key] = cached
            else:
                found[key] = cached
        if missing:
            session = self.warehouse.session()
            try:
                absent = {m.key for m in missing if not session.relation_exists(self.relation(m))}
            finally:
                session.close()
            for key in absent:
                self.reasons[key] = "its table does not exist yet (dbt creates it)"
            missing = [m for m in missing if m.key not in absent]
        if missing:
            tests_of = {m.key: self.tests_of(m.key) for m in missing}
            selectors = {
                m.key: compress_selection(
                    {m.unique_id or "", *tests_of[m.key]}, self.project.runnable_fqns, frozenset()
                )
                for m in missing
            }
            try:
                folder = self.run_dir / f"dbt-{n}"
                made = compile_templates(self.invoker, missing, selectors, folder, tests_of)
            except Exception as exc:  # noqa: BLE001 - dbt then writes the windows, as before
                log.debug("compiling window templates failed", exc_info=True)
                for m in missing:
                    self.reasons[m.key] = f"dbt could not compile its template: {exc}"
                return found
            for m in missing:
                value = made[m.key]
                self.cache.put(m, value)
                if isinstance(value, str):
                    self.reasons[m.key] = value
                else:
                    found[m.key] = value
            self.cache.save()
        return found

    def run(
        self, group: list[tuple[str, Chunk]], templates: dict[str, Template]
    ) -> InvocationResult | None:
        """Write each model's chunk as one delete-then-insert transaction, in dependency order.

        Returns dbt-shaped results (statuses by unique_id), or None when a model's query no
        longer matches its table's columns (nothing written: dbt's `on_schema_change` decides).
        """
        import duckdb

        from sqlorch.dbt.runner import InvocationResult
        from sqlorch.errors import WarehouseError
        from sqlorch.warehouse.duckdb import SchemaDrift

        started = time.perf_counter()
        order = {k: i for i, k in enumerate(self.graph.topological())}
        group = sorted(group, key=lambda kc: order[kc[0]])
        queries: dict[str, list[str]] = {}
        for key, chunk in group:
            node = self.graph.assets[key]
            queries[key] = self.queries(node, chunk, templates[key])
        session = self.warehouse.session()
        result = InvocationResult(
            success=True, args=["sqlorch: window writes from dbt's compiled SQL", *queries]
        )
        try:
            failed: set[str] = set()
            for key, chunk in group:
                node = self.graph.assets[key]
                assert node.partitions is not None
                uid = node.unique_id or ""
                if failed & self.graph.ancestors(key):
                    result.statuses[uid] = "skipped"
                    continue
                where, params = filter_sql(node.partitions, chunk.prefix, chunk.lo, chunk.hi)
                relation = self.relation(node)
                try:
                    drift = session.schema_drift(relation, queries[key][0])
                    if drift:
                        # dbt writes the whole group again (every window write is idempotent)
                        self.reasons[key] = f"its columns changed ({drift})"
                        return None
                    rows = session.replace_window_sql(relation, queries[key], where, params)
                except (WarehouseError, SchemaDrift, duckdb.Error) as exc:
                    failed.add(key)
                    result.success = False
                    result.statuses[uid] = "error"
                    result.messages[uid] = str(exc)
                    continue
                result.statuses[uid] = "success"
                result.rows[uid] = rows
        finally:
            session.close()
        result.seconds = time.perf_counter() - started
        return result

    def tests_of(self, key: str) -> list[str]:
        """The dbt data tests on model `key` alone (a test of several models stays with dbt)."""
        return [
            uid
            for uid, c in self.graph.checks.items()
            if c.runs_in_dbt and not c.is_unit_test and tuple(c.asset_keys) == (key,)
        ]

    def run_test(self, test: DataTestTemplate) -> tuple[str, str, int, float]:
        """Run one dbt data test as dbt would: (status, message, failures, seconds).

        A query error is the test's `error`, as in dbt.
        """
        import duckdb

        started = time.perf_counter()
        session = self.warehouse.session()
        try:
            row = session.execute(test.query())[0]
        except duckdb.Error as exc:
            return "error", f"Database Error in test {test.unique_id}: {exc}", 0, 0.0
        finally:
            session.close()
        failures = int(row[0] or 0)
        status, message = test.outcome(failures, bool(row[1]), bool(row[2]))
        seconds = time.perf_counter() - started
        return status, message, failures if status != "pass" else 0, seconds

    @staticmethod
    def relation(node: AssetNode) -> Relation:
        """The table dbt writes `node` to: (database, schema, name)."""
        database, schema, name = node.metadata["sqlorch_relation"]
        return (database, schema, name)

    @staticmethod
    def queries(node: AssetNode, chunk: Chunk, template: Template) -> list[str]:
        """The SQL of `chunk`: one query for the range, or one per batch (microbatch)."""
        from sqlorch.dbt.templates import window_values

        definition = node.partitions
        assert definition is not None
        if template.microbatch:
            spans = [(i, i) for i in range(chunk.lo, chunk.hi + 1)]
        else:
            spans = [(chunk.lo, chunk.hi)]
        out = []
        for lo, hi in spans:
            window = definition.window(lo, hi)
            assert window is not None
            out.append(template.render(window_values(node, *window)))
        return out
