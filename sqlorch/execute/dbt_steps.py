"""dbt steps: segments of unpartitioned dbt nodes, each one dbt invocation, and dbt's events.

A segment is every pending dbt node (and check) that no unfinished Python asset precedes,
selected exactly, with dbt's own threads parallelizing inside. Invocations are serialized
(dbt's programmatic entry point is not thread-safe) and run in a thread of their own; node
completions stream back as events while the invocation runs, so a Python asset downstream of
a finished model starts at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sqlorch.core.checks import CheckStatus
from sqlorch.core.graph import AssetGraph, Column
from sqlorch.events import EventKind
from sqlorch.execute.check_steps import CheckSteps
from sqlorch.execute.chunks import PartitionRuns
from sqlorch.execute.messages import DbtDone, DbtEvent, Inbox
from sqlorch.execute.progress import Progress
from sqlorch.execute.readiness import Readiness
from sqlorch.execute.retries import DbtRetries
from sqlorch.execute.status import Status
from sqlorch.warehouse.base import Warehouse

if TYPE_CHECKING:
    from sqlorch.dbt.manifest import DbtProject
    from sqlorch.dbt.runner import DbtInvoker, DbtNodeEvent, InvocationResult

log = logging.getLogger(__name__)

TABLE_LIKE_EXCLUDED = {"view", "ephemeral", "materialized_view"}
_COUNT_BATCH = 200
_COUNT_DELAY_S = 0.5


def dbt_metadata(ev: DbtNodeEvent) -> dict[str, Any]:
    """Return what dbt reported about a finished node, as materialization metadata."""
    meta: dict[str, Any] = {}
    if ev.rows_affected is not None:
        meta["rows_affected"] = ev.rows_affected
    if ev.timing:
        meta["dbt_timing"] = dict(ev.timing)
    response = {k: v for k, v in ev.adapter_response.items() if k != "rows_affected"}
    if response:
        meta["adapter_response"] = response
    return meta


def dbt_error(graph: AssetGraph, key: str, message: str) -> str:
    """Say which dbt node failed, where it is defined, and what dbt said."""
    from sqlorch.dbt.diagnostics import in_user_terms

    node = graph.assets[key]
    text = " ".join(message.split()) if message else "dbt reported an error"
    text = in_user_terms(text, node.file)
    return f"dbt {node.kind.value} {node.name!r} ({node.file}) failed: {text}"


class Invocations:
    """Starts dbt invocations one at a time; their node events go to the inbox."""

    def __init__(
        self,
        invoker: DbtInvoker,
        project: DbtProject,
        run_dir: Path,
        threads: int,
        inbox: Inbox,
    ) -> None:
        self.invoker = invoker
        self.project = project
        self.run_dir = run_dir
        self.threads = threads
        self.inbox = inbox
        self.busy = False
        self.count = 0
        self._start_hooks_done = False

    def begin(self, data: dict[str, Any], progress: Progress) -> tuple[int, bool]:
        """Mark an invocation running and say so: (its number, whether it runs start hooks)."""
        start_hooks = not self._start_hooks_done
        self._start_hooks_done = True
        self.busy = True
        self.count += 1
        progress.emit(EventKind.DBT_INVOCATION_STARTED, data={"invocation": self.count, **data})
        return self.count, start_hooks

    def invoke(
        self,
        n: int,
        selectors: list[str],
        start_hooks: bool,
        end_hooks: bool,
        extra: Sequence[str] = (),
    ) -> InvocationResult:
        """Run dbt invocation `n` (node events go to the inbox); a crash becomes a failure."""

        def on_event(ev: DbtNodeEvent) -> None:
            self.inbox.put(DbtEvent(ev))

        try:
            return self.invoker.build(
                selectors,
                run_dir=self.run_dir / f"dbt-{n}",
                threads=self.threads,
                on_event=on_event,
                start_hooks=start_hooks,
                end_hooks=end_hooks,
                extra_args=list(extra),
            )
        except Exception as exc:  # noqa: BLE001 - dbt crashing must not kill the run
            log.debug("dbt invocation crashed", exc_info=True)
            from sqlorch.dbt.runner import InvocationResult

            return InvocationResult(success=False, error=f"{type(exc).__name__}: {exc}")


@dataclass(frozen=True, slots=True)
class _Finished:
    """A dbt node that finished; its row count and columns are read in the next batch."""

    key: str
    seconds: float | None
    rows_affected: int | None
    count_rows: bool
    metadata: dict[str, Any]


class RowCounts:
    """Finished dbt tables waiting to be recorded with their row counts and columns.

    Counts are taken in batches: every query from the scheduling thread competes with dbt's
    threads for the GIL, so fewer, larger queries.
    """

    def __init__(self, progress: Progress, warehouse: Warehouse | None) -> None:
        self.progress = progress
        self.warehouse = warehouse
        self._waiting: list[_Finished] = []
        self._since = 0.0

    def add(self, finished: _Finished) -> None:
        """Hold a finished node until the next batch."""
        if not self._waiting:
            self._since = time.perf_counter()
        self._waiting.append(finished)

    def is_due(self) -> bool:
        """True when the batch is large or old enough to record."""
        return bool(self._waiting) and (
            len(self._waiting) >= _COUNT_BATCH
            or time.perf_counter() - self._since >= _COUNT_DELAY_S
        )

    def waits_for_any(self, keys: Collection[str]) -> bool:
        """True when one of `keys` waits in the batch."""
        return any(f.key in keys for f in self._waiting)

    def flush(self) -> None:
        """Record the batch's nodes with their row counts and columns."""
        if not self._waiting:
            return
        batch, self._waiting = self._waiting, []
        counts: dict[str, int] = {}
        columns: dict[str, list[Column]] = {}
        if self.warehouse is not None:
            try:
                counts = self.warehouse.row_counts([f.key for f in batch if f.count_rows])
            except Exception:  # noqa: BLE001 - a row count must never fail a run
                log.debug("row count failed", exc_info=True)
            try:
                columns = self.warehouse.table_columns([f.key for f in batch])
            except Exception:  # noqa: BLE001 - nor may reading the catalog
                log.debug("reading columns failed", exc_info=True)
        for f in batch:
            rows = counts.get(f.key, f.rows_affected) if f.count_rows else None
            self.progress.materialized(f.key, rows, f.seconds, f.metadata, columns.get(f.key))

    def record_without_counts(self) -> None:
        """Record the batch's nodes without row counts (the run is being abandoned)."""
        batch, self._waiting = self._waiting, []
        for f in batch:
            self.progress.materialized(f.key, f.rows_affected, f.seconds, f.metadata)


class NativeDispatch(Protocol):
    """sqlorch's native execution of dbt nodes (sqlorch.execute.native_steps)."""

    reasons: dict[str, str]

    def launch(self, steps: list[str]) -> bool:
        """Start a native batch of the segment's ready native steps; False when none."""
        ...

    def for_dbt(self, steps: list[str], checks: list[str]) -> tuple[list[str], list[str]]:
        """The part of a segment dbt runs."""
        ...


class DbtSteps:
    """Runs the unpartitioned dbt nodes in segments and applies dbt's node events."""

    def __init__(
        self,
        *,
        progress: Progress,
        readiness: Readiness,
        partitions: PartitionRuns,
        checks: CheckSteps,
        retries: DbtRetries,
        invocations: Invocations,
        counts: RowCounts,
    ) -> None:
        self.progress = progress
        self.readiness = readiness
        self.partitions = partitions
        self.checks = checks
        self.retries = retries
        self.invocations = invocations
        self.counts = counts
        graph = progress.graph
        self.keys = [
            s.key for s in progress.plan.steps if s.kind.is_dbt and s.key not in partitions
        ]
        self.uid_to_key = {
            n.unique_id: n.key for n in graph.assets.values() if n.unique_id and n.kind.is_dbt
        }
        # sqlorch's native execution of dbt's compiled SQL (set by the executor; issue 16)
        self.native: NativeDispatch | None = None

    def segment(self) -> tuple[list[str], list[str]]:
        """Return the dbt steps and checks that can run now, in one invocation."""
        progress, readiness = self.progress, self.readiness
        status, waiting = progress.status, progress.retry_wait
        eligible = [
            key
            for key in self.keys
            if status[key] is Status.PENDING
            and key not in waiting
            and not (waiting and any(a in waiting for a in progress.graph.ancestors(key)))
            and all(status[a] is Status.SUCCEEDED for a in readiness.python_ancestors[key])
            and readiness.gates_passed(key)
        ]
        return eligible, self.due_checks(set(eligible))

    def due_checks(self, chosen: set[str], final: set[str] | None = None) -> list[str]:
        """The pending dbt checks whose assets succeeded or are `chosen` for this invocation.

        With `final`, only checks of one of those assets (whose last chunk this is).
        """
        progress = self.progress
        return [
            uid
            for uid, check in progress.checks.items()
            if check.runs_in_dbt
            and progress.check_status[uid] is CheckStatus.PENDING
            and uid not in progress.check_blocked
            and (final is None or bool(set(check.asset_keys) & final))
            and all(
                progress.status.get(k, Status.SUCCEEDED) is Status.SUCCEEDED or k in chosen
                for k in check.asset_keys
            )
        ]

    def launch(self) -> bool:
        """Start an invocation of the next segment; False when none can run now."""
        steps, checks = self.segment()
        if not steps and not checks:
            return False
        why: dict[str, str] = {}
        if self.native is not None:
            # the one dispatch point: sqlorch runs what it reproduces exactly, dbt the rest
            if self.native.launch(steps):
                return True
            steps, checks = self.native.for_dbt(steps, checks)
            if not steps and not checks:
                return False
            why = {k: self.native.reasons[k] for k in steps if self.native.reasons.get(k)}
        progress, project = self.progress, self.invocations.project
        from sqlorch.dbt.manifest import compress_selection

        chosen_uids = {progress.graph.assets[k].unique_id for k in steps} | set(checks)
        selectors = compress_selection(
            {u for u in chosen_uids if u}, project.runnable_fqns, project.ephemeral
        )
        in_segment = set(steps)
        remaining = [
            k for k in self.keys if progress.status[k] is Status.PENDING and k not in in_segment
        ]
        end_hooks = not remaining and not self.partitions_left()
        for k in steps:
            progress.status[k] = Status.RUNNING
        for c in checks:
            progress.check_status[c] = CheckStatus.RUNNING
        data: dict[str, Any] = {
            "nodes": len(steps),
            "checks": len(checks),
            "selectors": len(selectors),
        }
        if why:
            data["dbt_runs_because"] = why
        n, start_hooks = self.invocations.begin(data, progress)

        def run() -> None:
            result = self.invocations.invoke(n, selectors, start_hooks, end_hooks)
            self.invocations.inbox.put(DbtDone(steps, checks, result))

        threading.Thread(target=run, name=f"sqlorch-dbt-{n}", daemon=True).start()
        return True

    def partitions_left(self) -> bool:
        """True while a partitioned dbt model has chunks to run."""
        return any(
            self.partitions.pending[k]
            for k in self.partitions.pending
            if self.progress.kind[k].is_dbt
        )

    def on_event(self, ev: DbtNodeEvent) -> None:
        """Apply one node event of a running invocation."""
        from sqlorch.dbt.runner import DbtPhase

        progress = self.progress
        uid = ev.unique_id
        key = self.uid_to_key.get(uid)
        if ev.phase is DbtPhase.STARTED:
            if key in progress.status and key not in self.partitions:
                progress.started_at[key] = time.perf_counter()
                progress.emit(EventKind.ASSET_STARTED, key, data={"kind": progress.kind[key].value})
            return
        if ev.phase is DbtPhase.LOG:
            target = key if key else None
            check = progress.checks.get(uid)
            if check and check.asset_keys:
                target = check.asset_keys[0]
            progress.emit(
                EventKind.ASSET_LOG, target, ev.message, level=ev.level, data={"dbt_node": uid}
            )
            return
        if uid in progress.checks:
            meta: dict[str, Any] = {"failures": ev.failures} if ev.failures else {}
            if ev.execution_time is not None:
                meta["duration_s"] = round(ev.execution_time, 4)
            self.checks.record(uid, CheckStatus.of(ev.status), ev.message, meta)
            return
        if key is None or key not in progress.status or progress.status[key] is not Status.RUNNING:
            return
        if key in self.partitions:
            return  # a partitioned model: its invocation's result decides
        self._node_finished(key, ev)

    def _node_finished(self, key: str, ev: DbtNodeEvent) -> None:
        progress = self.progress
        if ev.status in ("success", "pass"):
            node = progress.graph.assets[key]
            metadata = dbt_metadata(ev)
            if key in progress.attempts:
                metadata["attempts"] = progress.attempts[key]
            if self.counts.warehouse is None:
                progress.succeed(key, ev.rows_affected, ev.execution_time, metadata)
            else:
                # unblock children now; row counts and columns follow in a batch
                progress.status[key] = Status.SUCCEEDED
                count_rows = node.materialized not in TABLE_LIKE_EXCLUDED
                self.counts.add(
                    _Finished(key, ev.execution_time, ev.rows_affected, count_rows, metadata)
                )
        elif ev.status == "skipped":
            self.skip_or_hold(key)
        elif not self.retry(key, ev.message):
            progress.fail(key, dbt_error(progress.graph, key, ev.message), None)

    def retry(self, key: str, message: str) -> bool:
        """Put failed node `key` back in line if its policy or a transient error allows."""
        return self.retries.retry(key, message, dbt_error(self.progress.graph, key, message))

    def on_done(self, steps: list[str], checks: list[str], result: InvocationResult) -> None:
        """Apply the end of a segment's invocation to what dbt did not report by event."""
        progress = self.progress
        self.counts.flush()
        for key in steps:
            if progress.status[key] is Status.RUNNING:
                uid = progress.graph.assets[key].unique_id or ""
                st = result.statuses.get(uid)
                message = result.messages.get(uid, "")
                if st == "skipped":
                    self.skip_or_hold(key)
                elif result.error and st is None:
                    progress.fail(
                        key,
                        f"dbt failed before running {key}: {result.error} "
                        f"(dbt's log: {result.log_path})",
                        None,
                    )
                elif st is None:
                    progress.skip(key, "dbt did not run this node")
                elif not self.retry(key, message):
                    progress.fail(key, dbt_error(progress.graph, key, message), None)
        for uid in checks:
            if progress.check_status[uid] is CheckStatus.RUNNING:
                st = result.statuses.get(uid)
                if st in (None, "skipped") and any(
                    progress.is_retrying(k) for k in progress.checks[uid].asset_keys
                ):
                    progress.check_status[uid] = CheckStatus.PENDING
                    continue
                if st is None and result.error:
                    # dbt failed before running it: said and recorded, never taken as passed
                    why = f"dbt failed before running it: {result.error} (dbt's log: "
                    self.checks.record(uid, CheckStatus.ERROR, f"{why}{result.log_path})")
                    continue
                progress.check_status[uid] = ended_status(st, result)
        self.invocations.busy = False
        progress.emit(
            EventKind.DBT_INVOCATION_FINISHED,
            level="info" if result.success else "warning",
            data={
                "success": result.success,
                "seconds": round(result.seconds, 3),
                "log": str(result.log_path) if result.log_path else None,
                "error": result.error,
                "args": result.args,
            },
        )

    def skip_or_hold(self, key: str) -> None:
        """dbt skipped `key`: skip it, unless an upstream node will be retried."""
        if self.progress.is_retrying(key):
            self.progress.status[key] = Status.PENDING
        else:
            self.progress.skip(key, self._skip_reason(key))

    def _skip_reason(self, key: str) -> str:
        """Say which upstream failure made dbt skip `key`."""
        progress = self.progress
        graph = progress.graph
        ancestors = graph.ancestors(key)
        failed = [
            a for a in graph.topological(ancestors) if progress.status.get(a) is Status.FAILED
        ]
        checks = [
            f"check {c.name} on {', '.join(c.asset_keys)}"
            for uid, c in progress.checks.items()
            if uid in progress.check_status
            and progress.check_status[uid].is_failed
            and (c.is_blocking or c.is_unit_test)
            and ancestors.union({key}).intersection(c.asset_keys)
        ]
        causes = [f"upstream {a} failed" for a in failed] + [f"{c} failed" for c in checks]
        return "; ".join(causes) if causes else "skipped by dbt (an upstream node failed)"


def ended_status(reported: str | None, result: InvocationResult) -> CheckStatus:
    """A dbt check's status at the end of its invocation (none reported: error or skipped)."""
    if reported:
        return CheckStatus.of(reported)
    return CheckStatus.ERROR if result.error else CheckStatus.SKIPPED
