"""Partitioned dbt models: each chunk of windows in an invocation of its own (vars), or written
directly from the model's window template (sqlorch.dbt.windows) without starting dbt.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlorch.core.checks import CheckStatus
from sqlorch.events import EventKind
from sqlorch.execute.chunks import Chunk, PartitionRuns, dbt_window_args
from sqlorch.execute.dbt_steps import (
    TABLE_LIKE_EXCLUDED,
    DbtSteps,
    Invocations,
    dbt_error,
    ended_status,
)
from sqlorch.execute.messages import DbtChunkDone, DbtEvent
from sqlorch.execute.progress import Progress
from sqlorch.execute.readiness import Readiness
from sqlorch.execute.status import Status
from sqlorch.warehouse.base import Warehouse

if TYPE_CHECKING:
    from sqlorch.core.graph import AssetNode
    from sqlorch.dbt.datatests import DataTest
    from sqlorch.dbt.runner import InvocationResult
    from sqlorch.dbt.templates import Template
    from sqlorch.dbt.windows import DirectWindows, WindowChunk

log = logging.getLogger(__name__)

Group = list[tuple[str, Chunk]]

#: the warehouses (their `dialect`) sqlorch writes dbt models' windows to itself
WINDOW_DIALECTS = ("duckdb", "postgres")


class DbtChunks:
    """Runs the chunks of partitioned dbt models, one invocation per shared window."""

    def __init__(
        self,
        *,
        steps: DbtSteps,
        readiness: Readiness,
        partitions: PartitionRuns,
        invocations: Invocations,
        warehouse: Warehouse | None,
        run_dir: Path,
        direct_windows: bool,
    ) -> None:
        self.steps = steps
        self.progress: Progress = steps.progress
        self.readiness = readiness
        self.partitions = partitions
        self.invocations = invocations
        self.warehouse = warehouse
        self.run_dir = run_dir
        self.direct_windows = direct_windows
        self.keys = [
            s.key for s in self.progress.plan.steps if s.kind.is_dbt and s.key in partitions
        ]
        self._direct: DirectWindows | None = None

    def launch(self) -> bool:
        """Start one invocation for the next chunk of the ready partitioned dbt models.

        Partitioned models whose next chunks hand dbt the same window (the same vars) join
        one invocation, in which dbt orders them: a backfill of a model and the models
        downstream that read the same days is one dbt start-up.
        """
        group, extra = self._choose_group()
        if not group or extra is None:
            return False
        progress = self.progress
        # the dbt tests of models whose last chunk this is run with them, as in a segment
        final = {k for k, _ in group if not self.partitions.pending[k]}
        checks = self.steps.due_checks(final, final) if final else []
        for c in checks:
            progress.check_status[c] = CheckStatus.RUNNING
        for key, _chunk in group:
            self.partitions.inflight[key] += 1
            if progress.status[key] is Status.PENDING:
                ranges = progress.step_ranges(key)
                progress.start(key, {"kind": progress.kind[key].value, "partitions": ranges})
        from sqlorch.dbt.manifest import compress_selection

        selectors = compress_selection(
            {progress.graph.assets[k].unique_id or "" for k, _ in group} | set(checks),
            self.invocations.project.runnable_fqns,
            frozenset(),
        )
        end_hooks = not self.steps.partitions_left() and not any(
            progress.status[k] is Status.PENDING for k in self.steps.keys
        )
        data = {
            "nodes": len(group),
            "checks": len(checks),
            "selectors": len(selectors),
            "window": extra,
        }
        n, start_hooks = self.invocations.begin(data, progress)
        thread = threading.Thread(
            target=self._run,
            args=(n, group, checks, selectors, extra, (start_hooks, end_hooks)),
            name=f"sqlorch-dbt-{n}",
            daemon=True,
        )
        thread.start()
        return True

    def _choose_group(self) -> tuple[Group, list[str] | None]:
        """The ready models whose next chunk is the same window: (model, chunk), dbt's args."""
        progress, pending = self.progress, self.partitions.pending
        graph = progress.graph
        group: Group = []
        extra: list[str] | None = None
        chosen: set[str] = set()
        for key in self.keys:
            if progress.status[key] not in (Status.PENDING, Status.RUNNING) or not pending[key]:
                continue
            if self.partitions.inflight[key] or not self._is_ready(key, chosen):
                continue
            if any(a in pending and a not in chosen and pending[a] for a in graph.ancestors(key)):
                continue  # an upstream partitioned model still has chunks to run
            if self._reads_later_chunks(key, chosen):
                continue  # its mapping reads partitions of a chunk not run yet (issue 3)
            args = dbt_window_args(graph.assets[key], pending[key][0])
            if extra is None:
                extra = args
            elif args != extra:
                continue
            group.append((key, pending[key].pop(0)))
            chosen.add(key)
        return group, extra

    def _is_ready(self, key: str, chosen: set[str]) -> bool:
        """True when `key`'s upstream succeeded (or joins this invocation) and checks allow."""
        progress, readiness = self.progress, self.readiness
        ready = all(
            progress.status.get(p, Status.SUCCEEDED) is Status.SUCCEEDED or p in chosen
            for p in progress.graph.parents(key)
        ) and all(
            progress.status[a] is Status.SUCCEEDED or a in chosen
            for a in readiness.python_ancestors[key]
        )
        # dbt checks of a parent in this group run in the invocation, before `key`
        if not ready or any(
            progress.check_status[c].is_open and not set(progress.checks[c].asset_keys) & chosen
            for c in readiness.awaited_checks(key)
        ):
            return False
        return readiness.gates_passed(key)

    def _reads_later_chunks(self, key: str, chosen: set[str]) -> bool:
        """True when the next chunk of `key` reads partitions that chunks of the models in
        `chosen` (joining this invocation) have yet to write: a partition mapping with an
        offset forward, `all` or renamed keys. Then `key` waits for them."""
        from datetime import UTC, datetime

        from sqlorch.core.partitions.ranges import PartitionSet
        from sqlorch.core.plan.partitions import reads_pending

        chunks = self.partitions.pending
        waiting: dict[str, PartitionSet] = {}
        for a in chosen:
            for c in chunks[a]:
                waiting[a] = waiting.get(a, PartitionSet()) | c.as_set()
        if not waiting:
            return False
        now = datetime.now(UTC)
        return reads_pending(self.progress.graph, key, chunks[key][0].as_set(), waiting, now)

    def _run(
        self,
        n: int,
        group: Group,
        checks: list[str],
        selectors: list[str],
        extra: list[str],
        hooks: tuple[bool, bool],
    ) -> None:
        # partitioned models' own results are read from the invocation's result
        direct, rest, templates = self._direct_chunk(n, group)
        if direct is None:
            cleared, before = self._clear_windows(group)
            result = (
                self.invocations.invoke(n, selectors, hooks[0], hooks[1], extra)
                if cleared is None
                else cleared
            )
            if before:
                self._drop_unwritten(group, before, result)
            if self._direct is not None:
                # dbt is warm in this process now: compile the templates of the models whose
                # tables this invocation created, so their next windows need no dbt start-up
                graph = self.progress.graph
                made = [
                    k
                    for k, _ in group
                    if result.statuses.get(graph.assets[k].unique_id or "") == "success"
                ]
                # why dbt wrote these windows stays in this invocation's event (`templates`
                # forgets the reasons of the models it now finds a template for)
                why = {k: v for k, v in self._direct.reasons.items() if k in dict(group)}
                try:
                    self._direct.templates(n, made)
                except Exception:  # noqa: BLE001 - only a missed shortcut for later runs
                    log.debug("compiling window templates failed", exc_info=True)
                self._direct.reasons.update(why)
        else:
            result = self._finish_direct(n, direct, rest, templates, checks, hooks, extra)
        self.invocations.inbox.put(DbtChunkDone(group, checks, result))

    def _clear_windows(
        self, group: Group
    ) -> tuple[InvocationResult | None, dict[str, dict[str, frozenset[str]]]]:
        """Make sure no stale partition of the group's windows survives dbt's overwrite.

        On Spark, `insert_overwrite` replaces only the partitions the new data has rows for:
        a day that no longer has rows would keep its old ones. Where the warehouse can tell
        the partitions dbt rewrote by their files (a managed table of a local warehouse),
        their files are noted here and the others dropped after dbt (`_drop_unwritten`);
        elsewhere the window's partitions are dropped now, before dbt writes it. The ledger
        has a chunk done only after both succeeded. Returns (None, or a failed result when
        the partitions could not be read or dropped; each model's files before dbt).
        """
        from sqlorch.dbt.runner import InvocationResult

        warehouse = self.warehouse
        before: dict[str, dict[str, frozenset[str]]] = {}
        if warehouse is None or not getattr(warehouse, "keeps_absent_partitions", False):
            return None, before
        from sqlorch.warehouse.environment import physical

        graph = self.progress.graph
        for key, chunk in group:
            node = graph.assets[key]
            rel = physical(warehouse, key)  # dbt writes the environment's relation
            try:
                if node.partitions is not None and node.partitions.columns:
                    files = warehouse.partition_files(rel)  # type: ignore[attr-defined]
                    if files is not None:
                        before[key] = files
                        continue
                    where, params = rows_of(node, chunk)  # type: ignore[arg-type]
                    warehouse.drop_partitions(rel, where, params)  # type: ignore[attr-defined]
            except Exception as exc:  # noqa: BLE001 - the chunk fails, the run goes on
                log.debug("dropping the window of %s failed", key, exc_info=True)
                uid = node.unique_id or ""
                return InvocationResult(
                    False,
                    statuses={graph.assets[k].unique_id or "": "error" for k, _ in group},
                    messages={uid: f"could not drop the window's partitions first: {exc}"},
                    error=str(exc),
                ), {}
        return None, before

    def _drop_unwritten(
        self,
        group: Group,
        before: dict[str, dict[str, frozenset[str]]],
        result: InvocationResult,
    ) -> None:
        """After dbt: drop the windows' partitions it did not rewrite (they have no rows now).

        A model whose partitions could not be dropped fails its chunk (`result`), so the
        ledger does not call the window done while stale rows remain.
        """
        from sqlorch.warehouse.environment import physical

        graph = self.progress.graph
        for key, chunk in group:
            node = graph.assets[key]
            uid = node.unique_id or ""
            if key not in before or result.statuses.get(uid) != "success":
                continue
            try:
                where, params = rows_of(node, chunk)  # type: ignore[arg-type]
                dropped = self.warehouse.drop_unwritten(  # type: ignore[union-attr]
                    physical(self.warehouse, key), where, params, before[key]
                )
                log.debug("%s: %d partition(s) of the window had no rows: dropped", key, dropped)
            except Exception as exc:  # noqa: BLE001 - the chunk fails, the run goes on
                log.debug("dropping the unwritten partitions of %s failed", key, exc_info=True)
                result.statuses[uid] = "error"
                result.messages[uid] = (
                    f"dbt wrote the window, but its partitions without rows could not be "
                    f"dropped (they would keep stale rows): {exc}"
                )
                result.success = False

    def _dbt_only(self, group: Group) -> dict[str, str]:
        """Why dbt writes the windows of a group's partitioned models on another target."""
        dialect = getattr(self.warehouse, "dialect", None)
        if not self.direct_windows or dialect in (None, *WINDOW_DIALECTS):
            return {}
        graph = self.progress.graph
        return {
            k: f"sqlorch writes windows itself on DuckDB and PostgreSQL only; on {dialect} "
            "dbt writes them"
            for k, _ in group
            if graph.assets[k].partitions is not None
        }

    def _windows(self) -> DirectWindows | None:
        """The run's direct window writer, or None when windows are dbt's alone."""
        warehouse = self.warehouse
        dialect = getattr(warehouse, "dialect", None)
        if not self.direct_windows or warehouse is None or dialect not in WINDOW_DIALECTS:
            return None
        if self._direct is None:
            from sqlorch.dbt.windows import DirectWindows, WindowStore
            from sqlorch.errors import WarehouseError
            from sqlorch.warehouse.base import SchemaDrift

            inv = self.invocations
            driver: type[BaseException]
            if dialect == "postgres":
                import psycopg

                # opened from the dbt target itself (app.build): the database dbt writes to
                driver, same_target = psycopg.Error, True
            else:
                import duckdb

                path = getattr(warehouse, "path", None)
                driver = duckdb.Error
                same_target = bool(path) and inv.invoker.duckdb_path is not None
                same_target = same_target and Path(str(path)).resolve() == inv.invoker.duckdb_path
            store: WindowStore = warehouse  # type: ignore[assignment]
            self._direct = DirectWindows(
                self.progress.graph,
                inv.project,
                inv.invoker,
                store,
                self.run_dir,
                errors=(WarehouseError, SchemaDrift, driver),
                rows_of=rows_of,
                same_target=same_target,
            )
        return self._direct

    def _direct_chunk(
        self, n: int, group: Group
    ) -> tuple[InvocationResult | None, Group, dict[str, Template]]:
        """Write the windows of the group's models that have templates, without dbt.

        Returns (their results, the rest of the group for dbt, the templates used), or
        (None, group, {}) when dbt must build the whole group (see
        `sqlorch.dbt.windows.DirectWindows`). A model downstream of one dbt writes stays
        with dbt, which orders the two.
        """
        direct = self._windows()
        if direct is None:
            return None, group, {}
        graph = self.progress.graph
        try:
            templates = direct.templates(n, [k for k, _ in group])
            mine: Group = []
            rest: Group = []
            for key, chunk in group:
                later = key not in templates or any(k in graph.ancestors(key) for k, _ in rest)
                (rest if later else mine).append((key, chunk))
            if not mine:
                return None, group, {}
            result = direct.run(list(mine), templates)
        except Exception:  # noqa: BLE001 - dbt then writes the windows, as without templates
            log.debug("direct window writes failed to start", exc_info=True)
            return None, group, {}
        return (None, group, {}) if result is None else (result, rest, templates)

    def _finish_direct(
        self,
        n: int,
        result: InvocationResult,
        rest: Group,
        templates: dict[str, Template],
        checks: list[str],
        hooks: tuple[bool, bool],
        extra: Sequence[str],
    ) -> InvocationResult:
        """Have dbt write the rest of a group and run the tests due after its windows."""
        graph, uid_to_key = self.progress.graph, self.steps.uid_to_key
        failed = {
            uid_to_key[uid]
            for uid, st in result.statuses.items()
            if st in ("error", "skipped") and uid in uid_to_key
        }
        run: list[str] = []
        for key, _chunk in rest:
            uid = graph.assets[key].unique_id or ""
            if failed & graph.ancestors(key):
                result.statuses[uid] = "skipped"
                failed.add(key)
            else:
                run.append(uid)
        # the blocking tests that ran inside the window writes (write-audit-publish)
        audited = self._direct.audited if self._direct is not None else {}
        for uid in checks:
            if uid in audited:
                self._report_test(uid, *audited[uid], result)
        due = [
            c
            for c in checks
            if c not in audited and not failed.intersection(self.progress.checks[c].asset_keys)
        ]
        # the written models' own tests that have compiled SQL run here, as dbt would
        later = {k for k, _ in rest}
        ready = {
            t.unique_id: t for key, tpl in templates.items() if key not in later for t in tpl.tests
        }
        self._run_tests([c for c in due if c in ready], ready, result)
        due = [c for c in due if c not in ready]
        if not run and not due:
            return result
        from sqlorch.dbt.manifest import compress_selection

        project = self.invocations.project
        selectors = compress_selection(set(run) | set(due), project.runnable_fqns, frozenset())
        dbt = self.invocations.invoke(n, selectors, hooks[0], hooks[1], extra if run else ())
        result.statuses.update(dbt.statuses)
        result.messages.update(dbt.messages)
        result.success = result.success and dbt.success
        result.error = dbt.error
        result.log_path = dbt.log_path
        result.args += ["+ dbt tests:" if not run else "+ dbt:", *dbt.args]
        result.seconds += dbt.seconds
        return result

    def _run_tests(
        self, uids: list[str], ready: dict[str, DataTest], result: InvocationResult
    ) -> None:
        """Run the written models' compiled tests; each result goes out as a dbt event."""

        assert self._direct is not None
        for uid in uids:
            self._report_test(uid, *self._direct.run_test(ready[uid]), result)

    def _report_test(
        self,
        uid: str,
        status: str,
        message: str,
        failures: int,
        seconds: float,
        result: InvocationResult,
    ) -> None:
        """Put a test's result in `result` and out as a dbt event."""
        from sqlorch.dbt.runner import DbtNodeEvent, DbtPhase

        result.statuses[uid] = status
        result.messages[uid] = message
        ev = DbtNodeEvent(
            uid,
            DbtPhase.FINISHED,
            status=status,
            message=message,
            failures=failures,
            execution_time=seconds,
        )
        self.invocations.inbox.put(DbtEvent(ev))

    def on_done(self, group: Group, checks: list[str], result: InvocationResult) -> None:
        """Apply the end of a chunk invocation: each model's chunk succeeded or failed."""
        progress = self.progress
        self.invocations.busy = False
        for uid in checks:
            if progress.check_status[uid] is CheckStatus.RUNNING:
                progress.check_status[uid] = ended_status(result.statuses.get(uid), result)
        self._emit_finished(group, result)
        graph = progress.graph
        counted: dict[str, int] = {}
        if self.warehouse is not None:
            tables = [
                k
                for k, _ in group
                if result.statuses.get(graph.assets[k].unique_id or "") == "success"
                and (graph.assets[k].unique_id or "") not in result.rows
                and graph.assets[k].materialized not in TABLE_LIKE_EXCLUDED
            ]
            try:
                counted = self.warehouse.row_counts(tables) if tables else {}
            except Exception:  # noqa: BLE001 - a row count must never fail a run
                log.debug("row count failed", exc_info=True)
        for key, chunk in group:
            uid = graph.assets[key].unique_id or ""
            st = result.statuses.get(uid)
            if st == "success":
                self.partitions.restart_rows(key)
                rows = result.rows.get(uid, counted.get(key))
                self.partitions.chunk_done(key, chunk, rows, result.seconds)
                continue
            skipped = "skipped by dbt (an upstream node failed)"
            message = (
                result.messages.get(uid)
                or result.error
                or (skipped if st == "skipped" else "dbt did not run the model")
            )
            self.partitions.chunk_failed(key, chunk, dbt_error(graph, key, message), None)

    def _emit_finished(self, group: Group, result: InvocationResult) -> None:
        reasons = self._direct.reasons if self._direct is not None else self._dbt_only(group)
        self.progress.emit(
            EventKind.DBT_INVOCATION_FINISHED,
            level="info" if result.success else "warning",
            data={
                "success": result.success,
                "seconds": round(result.seconds, 3),
                "log": str(result.log_path) if result.log_path else None,
                "error": result.error,
                "args": result.args,
                # models whose windows sqlorch wrote from their templates (no dbt build),
                # and why dbt wrote the others'
                "window_writes": sorted(self.steps.uid_to_key.get(u, u) for u in result.rows),
                "dbt_writes_because": {k: reasons[k] for k, _ in group if k in reasons},
            },
        )


def rows_of(node: AssetNode, chunk: WindowChunk) -> tuple[str, list[Any]]:
    """The predicate (with parameters) of `chunk`'s rows in `node`'s table."""
    from sqlorch.warehouse.sql import filter_sql

    assert node.partitions is not None
    return filter_sql(node.partitions, chunk.prefix, chunk.lo, chunk.hi)
