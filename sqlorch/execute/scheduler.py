"""The scheduler: walk a plan with a bounded worker pool and serialized dbt invocations.

Python assets and the checks sqlorch runs itself run in worker threads (python_steps,
check_steps); dbt nodes run through dbt in this process (dbt_steps, dbt_chunks). Workers
report by message (messages); the scheduling thread applies each message to the run's
progress and starts what became ready, so everything that reaches the state store and the
renderers is emitted from one thread, in order. Ctrl-C once stops launching and lets running
steps end; twice interrupts their queries and abandons them.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from sqlorch.api.asset import AssetDefinition
from sqlorch.core.checks import CheckStatus
from sqlorch.core.graph import AssetGraph, AssetKind
from sqlorch.core.plan.definition import Plan
from sqlorch.events import EventKind, Listener
from sqlorch.execute.cancellation import Cancellation
from sqlorch.execute.check_steps import CheckSteps
from sqlorch.execute.chunks import PartitionRuns
from sqlorch.execute.dbt_chunks import DbtChunks
from sqlorch.execute.dbt_steps import DbtSteps, Invocations, RowCounts
from sqlorch.execute.messages import (
    AssetLog,
    Audited,
    CheckDone,
    ChunkCheckDone,
    ChunkDone,
    ChunkFailed,
    DbtChunkDone,
    DbtDone,
    DbtEvent,
    Inbox,
    Message,
    PythonDone,
    PythonFailed,
    Retrying,
    RetryReady,
)
from sqlorch.execute.policies import RunPolicies
from sqlorch.execute.pools import Slots
from sqlorch.execute.progress import Progress
from sqlorch.execute.python_steps import PythonSteps
from sqlorch.execute.readiness import Readiness
from sqlorch.execute.retries import DbtRetries
from sqlorch.execute.status import RunOutcome, RunStatus, Status

if TYPE_CHECKING:
    from sqlorch.dbt.manifest import DbtProject
    from sqlorch.dbt.runner import DbtInvoker
    from sqlorch.warehouse.base import Warehouse

log = logging.getLogger(__name__)

_IDLE_S = 0.2


class Executor:
    """Run one plan. Create one per run."""

    def __init__(
        self,
        *,
        graph: AssetGraph,
        plan: Plan,
        python_fns: dict[str, AssetDefinition],
        warehouse: Warehouse | None,
        invoker: DbtInvoker | None,
        dbt_project: DbtProject | None,
        run_id: str,
        run_dir: Path,
        threads: int,
        listeners: Iterable[Listener],
        pools: dict[str, int] | None = None,
        policies: RunPolicies | None = None,
        dbt_threads: int | None = None,
    ) -> None:
        side = policies or RunPolicies()
        self.graph = graph
        self.plan = plan
        self.run_id = run_id
        self.warehouse = warehouse
        self.inbox: Inbox = queue.Queue()
        self.cancellation = Cancellation(side.sleep)
        self.progress = Progress(graph, plan, run_id, listeners, target=side.target)
        self.slots = Slots(threads, pools)
        # partitioned steps run chunk by chunk (see sqlorch.execute.chunks); partitioned dbt
        # models run in invocations of their own, with the window as vars
        self.partitions = PartitionRuns(self.progress, warehouse, self.cancellation)
        self.readiness = Readiness(self.progress, self.partitions.pending)
        self.python = PythonSteps(
            fns=python_fns,
            warehouse=warehouse,
            run_id=run_id,
            inbox=self.inbox,
            cancellation=self.cancellation,
            retries=dict(side.retries),
            limiters=side.rate_limiters(),
            accept_schema=side.evolve_schema,
        )
        self._python_keys = [s.key for s in plan.steps if s.kind is AssetKind.PYTHON]
        self.checks = CheckSteps(
            progress=self.progress,
            partitions=self.partitions,
            slots=self.slots,
            warehouse=warehouse,
            policies=side,
            inbox=self.inbox,
        )
        self.python.auditor = self.checks.audit  # blocking checks run inside each write
        self.counts = RowCounts(self.progress, warehouse)
        self.dbt: DbtSteps | None = None
        self.dbt_chunks: DbtChunks | None = None
        if invoker is not None and dbt_project is not None:
            invocations = Invocations(
                invoker, dbt_project, run_dir, dbt_threads or self.slots.threads, self.inbox
            )
            self.dbt = DbtSteps(
                progress=self.progress,
                readiness=self.readiness,
                partitions=self.partitions,
                checks=self.checks,
                retries=DbtRetries(self.progress, side.retries, self.cancellation, self.inbox),
                invocations=invocations,
                counts=self.counts,
            )
            self._add_native(side, warehouse)
            self.dbt_chunks = DbtChunks(
                steps=self.dbt,
                readiness=self.readiness,
                partitions=self.partitions,
                invocations=invocations,
                warehouse=warehouse,
                run_dir=run_dir,
                direct_windows=side.direct_windows,
            )

    def _add_native(self, side: RunPolicies, warehouse: Warehouse | None) -> None:
        """Let sqlorch execute dbt's compiled SQL natively where it reproduces dbt (issue 16)."""
        from sqlorch.execute.native_engines import engine_for
        from sqlorch.warehouse.environment import unwrap

        inner = unwrap(warehouse)  # dbt's relations, as compiled: no environment mapping
        if self.dbt is None or not side.native or engine_for(inner) is None:
            return
        from sqlorch.execute.native_steps import NativeSteps

        self.dbt.native = NativeSteps(
            progress=self.progress,
            readiness=self.readiness,
            invocations=self.dbt.invocations,
            warehouse=inner,
            cancellation=self.cancellation,
            forced=side.forced_dbt,
            keys=self.dbt.keys,
        )

    @property
    def status(self) -> dict[str, Status]:
        """Where each step is."""
        return self.progress.status

    @property
    def cancelled(self) -> bool:
        """True once Ctrl-C was pressed."""
        return self.cancellation.cancelled

    # ---------------------------------------------------------------- the loop

    def run(self) -> RunOutcome:
        """Execute the plan and return the outcome (never raises for asset failures)."""
        progress = self.progress
        progress.emit(EventKind.RUN_STARTED, data={"steps": len(self.plan.steps)})
        if self.warehouse is not None:
            # one thread creates the schemas: concurrent DDL conflicts in DuckDB
            for schema in sorted({k.rsplit(".", 1)[0] for k in self._python_keys}):
                self.warehouse.ensure_schema(schema)
        pool = ThreadPoolExecutor(
            max_workers=self.slots.threads, thread_name_prefix="sqlorch-asset"
        )
        try:
            self._loop(pool)
        finally:
            pool.shutdown(wait=not self.cancelled, cancel_futures=True)
        failed = any(s is Status.FAILED for s in progress.status.values()) or any(
            s.is_failed for s in progress.check_status.values()
        )
        status = RunStatus.CANCELLED if self.cancelled else RunStatus.FAILED if failed else None
        outcome = RunOutcome(
            run_id=self.run_id,
            status=status or RunStatus.SUCCESS,
            statuses=dict(progress.status),
            check_statuses=dict(progress.check_status),
            errors=dict(progress.errors),
        )
        progress.emit(
            EventKind.RUN_FINISHED,
            data={
                "status": outcome.status.value,
                "succeeded": outcome.count(Status.SUCCEEDED),
                "failed": outcome.count(Status.FAILED),
                "skipped": outcome.count(Status.SKIPPED),
                "checks_failed": len(outcome.failed_checks),
            },
        )
        return outcome

    def _loop(self, pool: ThreadPoolExecutor) -> None:
        """Launch what is ready and apply messages until nothing runs or waits."""
        dbt_busy = self._dbt_busy
        while True:
            if not self.cancelled:
                self._launch_python(pool)
                self.checks.launch(pool)
                self._launch_dbt()
            if self.slots.running == 0 and not dbt_busy() and not self.progress.retry_wait:
                self._finish_blocked()
                break
            try:
                self._handle(self._next_message())
            except KeyboardInterrupt:
                if self.cancelled:
                    self._abort()  # second Ctrl-C: abandon what still runs
                    raise
                # first Ctrl-C: launch nothing more, record what is running as it ends
                self.cancellation.cancel()
                self.progress.emit(
                    EventKind.ASSET_LOG,
                    None,
                    "cancelling: waiting for running assets (Ctrl-C again to abort)",
                    level="warning",
                )

    def _dbt_busy(self) -> bool:
        return self.dbt is not None and self.dbt.invocations.busy

    def _abort(self) -> None:
        """Record every running asset as cancelled and interrupt its warehouse queries.

        A write interrupted mid-way rolls back (one transaction): its table keeps its old
        content, and the next build runs the asset again.
        """
        progress = self.progress
        self.cancellation.wake()
        self.python.sessions.interrupt_all()
        self.python.dlt.interrupt()  # dlt's loads use connections of their own
        for key in self.plan.keys:
            if progress.status[key] is Status.RUNNING:
                progress.fail(key, f"{key} was cancelled by a second Ctrl-C", None)
            elif progress.status[key] is Status.PENDING:
                progress.skip(key, "run cancelled")
        # finished dbt tables still waiting for their row counts are recorded without them
        self.counts.record_without_counts()
        progress.emit(
            EventKind.RUN_FINISHED,
            None,
            "run cancelled by a second Ctrl-C",
            level="warning",
            data={
                "status": RunStatus.CANCELLED.value,
                "succeeded": progress.count(Status.SUCCEEDED),
                "failed": progress.count(Status.FAILED),
                "skipped": progress.count(Status.SKIPPED),
            },
        )

    def _next_message(self) -> Message:
        # Row counts of finished dbt tables are taken in batches (see RowCounts). While
        # nothing arrives, listeners that buffer (the state recorder) are flushed.
        while True:
            if self.counts.is_due():
                self.counts.flush()
            try:
                return self.inbox.get(timeout=_IDLE_S)
            except queue.Empty:
                for listener in self.progress.listeners:
                    flush = getattr(listener, "flush", None)
                    if flush is not None:
                        flush()

    # ---------------------------------------------------------------- launching

    def _launch_python(self, pool: ThreadPoolExecutor) -> None:
        progress, slots = self.progress, self.slots
        for key in self._python_keys:
            if not slots.free:
                break
            if key in self.partitions:
                self._launch_python_chunks(pool, key)
                continue
            if progress.status[key] is not Status.PENDING or not self._may_start(key):
                continue
            node = self.graph.assets[key]
            if not slots.take_pool(node):
                continue
            progress.start(key, {"kind": "python"})
            slots.running += 1
            self.python.submit(pool, node, None)

    def _launch_python_chunks(self, pool: ThreadPoolExecutor, key: str) -> None:
        """Start the next chunks of a partitioned Python asset, within the pool limits."""
        progress, slots = self.progress, self.slots
        st = progress.status[key]
        if st is Status.PENDING:
            if not self._may_start(key):
                return
            progress.start(key, {"kind": "python", "partitions": progress.step_ranges(key)})
        elif st is not Status.RUNNING:
            return
        node = self.graph.assets[key]
        pending = self.partitions.pending[key]
        while pending and slots.free:
            if not slots.take_pool(node):
                return
            chunk = pending.pop(0)
            self.partitions.inflight[key] += 1
            slots.running += 1
            self.python.submit(pool, node, chunk)

    def _may_start(self, key: str) -> bool:
        """True when `key`'s upstream is done; a parent's record is flushed before it starts."""
        if not self.readiness.deps_ready(key):
            return False
        if self.counts.waits_for_any(self.graph.parents(key)):
            self.counts.flush()  # a parent's materialization is recorded before its child
        return True

    def _launch_dbt(self) -> None:
        if self.dbt is None or self.dbt_chunks is None or self.dbt.invocations.busy:
            return
        if not self.dbt.launch() and self.dbt_chunks.keys and not self.cancelled:
            self.dbt_chunks.launch()

    def _finish_blocked(self) -> None:
        """Skip what can never run once nothing is running."""
        progress = self.progress
        self.partitions.drop_queued_checks()
        reason = "run cancelled" if self.cancelled else "an upstream asset did not succeed"
        for key in self.plan.keys:
            if progress.status[key] is Status.PENDING:
                progress.skip(key, reason)
        for uid, st in progress.check_status.items():
            if st is CheckStatus.PENDING:
                progress.check_status[uid] = CheckStatus.SKIPPED

    # ---------------------------------------------------------------- messages

    def _handle(self, msg: Message) -> None:
        """Apply one worker message to the run (one case per kind of message)."""
        progress = self.progress
        match msg:
            case PythonDone(key, rows, seconds, metadata, columns):
                self._worker_ended(key)
                progress.succeed(key, rows, seconds, metadata, columns)
            case PythonFailed(key, error, tb):
                self._worker_ended(key)
                progress.fail(key, error, tb)
            case ChunkDone(key, chunk, rows, seconds, metadata, audited):
                self._worker_ended(key)
                self.partitions.chunk_done(key, chunk, rows, seconds, metadata, audited)
            case ChunkFailed(key, chunk, error, tb):
                self._worker_ended(key)
                self.partitions.chunk_failed(key, chunk, error, tb)
            case CheckDone(uid, outcome):
                self.slots.running -= 1
                self.checks.record(uid, outcome.status, outcome.message, dict(outcome.metadata))
            case ChunkCheckDone(key, uid, chunk, outcome):
                self.slots.running -= 1
                self.checks.chunk_check_done(key, uid, chunk, outcome)
            case Audited(key, None, uid, outcome):
                self.checks.record(uid, outcome.status, outcome.message, dict(outcome.metadata))
            case Audited(key, chunk, uid, outcome) if chunk is not None:
                self.partitions.inflight[key] += 1  # check_ended counts it off
                self.checks.chunk_check_done(key, uid, chunk, outcome, rolled_back=True)
            case Retrying(key, attempt, error, delay):
                progress.emit(
                    EventKind.ASSET_RETRY,
                    key,
                    f"attempt {attempt} failed, retrying in {delay:g}s: {error}",
                    level="warning",
                    data={"attempt": attempt, "delay_s": delay, "error": error},
                )
            case RetryReady(key):
                progress.retry_wait.discard(key)
            case AssetLog(key, level, text):
                progress.emit(EventKind.ASSET_LOG, key, text, level=level)
            case DbtEvent(event):
                assert self.dbt is not None
                self.dbt.on_event(event)
            case DbtDone(steps, checks, result):
                assert self.dbt is not None
                self.dbt.on_done(steps, checks, result)
            case DbtChunkDone(group, checks, result):
                assert self.dbt_chunks is not None
                self.dbt_chunks.on_done(group, checks, result)

    def _worker_ended(self, key: str) -> None:
        """A Python asset's worker ended: free its slot and its place in its pool."""
        self.slots.running -= 1
        self.slots.release_pool(self.graph.assets[key])
