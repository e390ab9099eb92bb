"""The executor: walk a plan with a bounded worker pool and serialized dbt segments.

Python assets run in worker threads. dbt nodes run through dbt in this process, one
invocation per *segment*: every pending dbt node (and check) that no unfinished Python asset
precedes, selected exactly, with dbt's own threads parallelizing inside. Node completions
stream back while the invocation runs, so a Python asset downstream of a finished model
starts at once. Everything that reaches the state store and the renderers is emitted from the
scheduling thread, in order.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlorch.api.asset import AssetContext, AssetDefinition, MaterializeResult
from sqlorch.api.retries import next_delay
from sqlorch.core.checks import Observed
from sqlorch.core.graph import AssetGraph, AssetKind, CheckKind, CheckNode, Column
from sqlorch.core.plan.definition import Plan
from sqlorch.errors import AssetError, SqlorchError
from sqlorch.events import Event, EventKind, Listener, utcnow
from sqlorch.execute.checks import run_side_check
from sqlorch.execute.policies import RunPolicies

if TYPE_CHECKING:
    from sqlorch.core.checks import CheckResult
    from sqlorch.dbt.manifest import DbtProject
    from sqlorch.dbt.runner import DbtInvoker, DbtNodeEvent, InvocationResult
    from sqlorch.dbt.templates import Template
    from sqlorch.execute.chunks import Chunk, DirectWindows
    from sqlorch.warehouse.base import Warehouse

log = logging.getLogger(__name__)

_TABLE_LIKE_EXCLUDED = {"view", "ephemeral", "materialized_view"}
_COUNT_BATCH = 200
_COUNT_DELAY_S = 0.5
_IDLE_S = 0.2


class Status(StrEnum):
    """Where a step or check is."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(slots=True)
class RunOutcome:
    """How a run ended."""

    run_id: str
    status: str
    statuses: dict[str, Status]
    check_statuses: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)

    def count(self, status: Status) -> int:
        """Return how many steps ended with `status`."""
        return sum(1 for s in self.statuses.values() if s is status)

    @property
    def failed_checks(self) -> list[str]:
        """The checks that failed or errored."""
        return [c for c, s in self.check_statuses.items() if s in ("fail", "error")]


def new_run_id() -> str:
    """Return a new, sortable run id."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


@dataclass(frozen=True, slots=True)
class _Finished:
    """A dbt node that finished; its row count and columns are read in the next batch."""

    key: str
    seconds: float | None
    rows_affected: int | None
    count_rows: bool
    metadata: dict[str, Any]


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


_PASSED = ("pass", "success", "warn")


def _check_error(check: CheckNode, exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = ""
    if check.file:
        mine = [f for f in frames if f.filename.endswith(check.file)]
        if mine:
            where = f" at {check.file}:{mine[-1].lineno}"
    return f"check {check.name!r} raised {type(exc).__name__}{where}: {exc}"


def _columns_of(session: Warehouse, key: str) -> list[Column] | None:
    try:
        return session.table_columns([key]).get(key)
    except Exception:  # noqa: BLE001 - reading the catalog must never fail an asset
        log.debug("reading columns of %s failed", key, exc_info=True)
        return None


@dataclass(slots=True)
class _Msg:
    kind: str
    key: str = ""
    payload: Any = None


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
    ) -> None:
        self.graph = graph
        self.plan = plan
        self.python_fns = python_fns
        self.warehouse = warehouse
        self.invoker = invoker
        self.dbt_project = dbt_project
        self.run_id = run_id
        self.run_dir = run_dir
        self.threads = max(1, threads)
        self.listeners = list(listeners)
        self.pools = dict(pools or {})
        self.side = policies or RunPolicies()
        self._wake = threading.Event()  # set on Ctrl-C: cuts retry back-offs short
        self._sleep = self.side.sleep or self._wake.wait
        self._limiters = self.side.rate_limiters()

        self.status: dict[str, Status] = {s.key: Status.PENDING for s in plan.steps}
        self.kind: dict[str, AssetKind] = {s.key: s.kind for s in plan.steps}
        self._python_keys = [s.key for s in plan.steps if s.kind is AssetKind.PYTHON]
        # partitioned steps run chunk by chunk (see sqlorch.execute.chunks); partitioned dbt
        # models run in invocations of their own, with the window as vars
        self._chunks: dict[str, list[Chunk]] = {}
        self._inflight: dict[str, int] = {}
        self._chunk_rows: dict[str, int | None] = {}
        self._chunk_errors: dict[str, list[str]] = {}
        if any(s.partitions for s in plan.steps):
            from sqlorch.execute.chunks import chunks

            for s in plan.steps:
                if s.partitions:
                    self._chunks[s.key] = chunks(graph.assets[s.key], s.partitions)
                    self._inflight[s.key] = 0
        self._partitioned_dbt = [s.key for s in plan.steps if s.kind.is_dbt and s.partitions]
        self._dbt_keys = [s.key for s in plan.steps if s.kind.is_dbt and s.key not in self._chunks]
        self.check_status: dict[str, str] = {c: "pending" for c in plan.checks}
        self.errors: dict[str, str] = {}
        self.started_at: dict[str, float] = {}
        self._queue: queue.Queue[_Msg] = queue.Queue()
        self._to_count: list[_Finished] = []
        self._count_since = 0.0
        self._running_pools: dict[str, int] = {}
        self._dbt_busy = False
        self._running_python = 0
        self._dbt_invocations = 0
        self._uid_to_key = {
            n.unique_id: n.key for n in graph.assets.values() if n.unique_id and n.kind.is_dbt
        }
        self._checks: dict[str, CheckNode] = {c: graph.checks[c] for c in plan.checks}
        # the planned Python assets upstream of each asset, in one pass in dependency order;
        # a dbt parent dbt does not know of (a hidden dependency, sqlorch.lineage) counts too:
        # dbt would not order the two inside one invocation
        self._python_ancestors: dict[str, frozenset[str]] = {}
        for key in graph.topological():
            above: set[str] = set()
            hidden = graph.assets[key].hidden_deps
            for parent in graph.parents(key):
                above |= self._python_ancestors[parent]
                if (
                    self.kind.get(parent) is AssetKind.PYTHON
                    or parent in self._chunks
                    or (parent in hidden and parent in self.kind)
                ):
                    above.add(parent)
            self._python_ancestors[key] = frozenset(above)
        # blocking checks of each asset that this run executes
        self._blocking: dict[str, list[str]] = {}
        for uid, check in self._checks.items():
            if check.is_blocking and not check.is_unit_test:
                for k in check.asset_keys:
                    self._blocking.setdefault(k, []).append(uid)
        self._check_blocked: set[str] = set()
        # checks sqlorch runs itself (@check, built-ins) and what they observed
        self._side_checks = [u for u, c in self._checks.items() if not c.runs_in_dbt]
        self._observed: dict[str, Observed] = {}
        self._gates: dict[str, list[str]] = {}
        self._awaited: dict[str, list[str]] = {}
        self._sessions: set[Any] = set()
        self._attempts: dict[str, int] = {}
        self._chunk_checks: list[tuple[str, str, Chunk]] = []
        self._partition_check_worst: dict[str, str] = {}
        self._retry_wait: set[str] = set()
        self.cancelled = False
        self._start_hooks_done = False
        self._direct: DirectWindows | None = None

    # ---------------------------------------------------------------- public

    def run(self) -> RunOutcome:
        """Execute the plan and return the outcome (never raises for asset failures)."""
        self._emit(EventKind.RUN_STARTED, data={"steps": len(self.plan.steps)})
        if self.warehouse is not None:
            # one thread creates the schemas: concurrent DDL conflicts in DuckDB
            for schema in sorted(
                {k.rsplit(".", 1)[0] for k, kind in self.kind.items() if kind is AssetKind.PYTHON}
            ):
                self.warehouse.ensure_schema(schema)
        pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="sqlorch-asset")
        try:
            while True:
                if not self.cancelled:
                    self._launch_python(pool)
                    self._launch_checks(pool)
                    self._launch_dbt()
                if self._running_python == 0 and not self._dbt_busy and not self._retry_wait:
                    self._finish_blocked()
                    break
                try:
                    self._handle(self._next_message())
                except KeyboardInterrupt:
                    if self.cancelled:
                        self._abort()  # second Ctrl-C: abandon what still runs
                        raise
                    # first Ctrl-C: launch nothing more, record what is running as it ends
                    self.cancelled = True
                    self._wake.set()
                    self._emit(
                        EventKind.ASSET_LOG,
                        None,
                        "cancelling: waiting for running assets (Ctrl-C again to abort)",
                        level="warning",
                    )
        finally:
            pool.shutdown(wait=not self.cancelled, cancel_futures=True)
        failed = any(s is Status.FAILED for s in self.status.values()) or any(
            s in ("fail", "error") for s in self.check_status.values()
        )
        outcome = RunOutcome(
            run_id=self.run_id,
            status="cancelled" if self.cancelled else "failed" if failed else "success",
            statuses=dict(self.status),
            check_statuses=dict(self.check_status),
            errors=dict(self.errors),
        )
        self._emit(
            EventKind.RUN_FINISHED,
            data={
                "status": outcome.status,
                "succeeded": outcome.count(Status.SUCCEEDED),
                "failed": outcome.count(Status.FAILED),
                "skipped": outcome.count(Status.SKIPPED),
                "checks_failed": len(outcome.failed_checks),
            },
        )
        return outcome

    def _abort(self) -> None:
        """Record every running asset as cancelled and interrupt its warehouse queries.

        A write interrupted mid-way rolls back (one transaction): its table keeps its old
        content, and the next build runs the asset again.
        """
        self._wake.set()
        for session in list(self._sessions):
            try:
                session.connection.interrupt()
            except Exception:  # noqa: BLE001 - a closed or non-DuckDB session
                log.debug("could not interrupt a session", exc_info=True)
        for key in self.plan.keys:
            if self.status[key] is Status.RUNNING:
                self._fail(key, f"{key} was cancelled by a second Ctrl-C", None)
            elif self.status[key] is Status.PENDING:
                self._skip(key, "run cancelled")
        # finished dbt tables still waiting for their row counts are recorded without them
        for f in self._to_count:
            self._materialized(f.key, f.rows_affected, f.seconds, f.metadata)
        self._to_count = []
        self._emit(
            EventKind.RUN_FINISHED,
            None,
            "run cancelled by a second Ctrl-C",
            level="warning",
            data={
                "status": "cancelled",
                "succeeded": sum(1 for s in self.status.values() if s is Status.SUCCEEDED),
                "failed": sum(1 for s in self.status.values() if s is Status.FAILED),
                "skipped": sum(1 for s in self.status.values() if s is Status.SKIPPED),
            },
        )

    # ---------------------------------------------------------------- scheduling

    def _next_message(self) -> _Msg:
        # Row counts of finished dbt tables are taken in batches: every query from this
        # thread competes with dbt's threads for the GIL, so fewer, larger queries. While
        # nothing arrives, listeners that buffer (the state recorder) are flushed.
        while True:
            if self._to_count and (
                len(self._to_count) >= _COUNT_BATCH
                or time.perf_counter() - self._count_since >= _COUNT_DELAY_S
            ):
                self._flush_counts()
            try:
                return self._queue.get(timeout=_IDLE_S)
            except queue.Empty:
                for listener in self.listeners:
                    flush = getattr(listener, "flush", None)
                    if flush is not None:
                        flush()

    def _deps_ready(self, key: str) -> bool:
        """True when every upstream step succeeded and its blocking checks passed."""
        for dep in self.graph.parents(key):
            st = self.status.get(dep)
            if st is not None and st is not Status.SUCCEEDED:
                return False
        return not any(
            self.check_status[c] in ("pending", "running") for c in self._awaited_checks(key)
        )

    def _awaited_checks(self, key: str) -> list[str]:
        """The blocking checks of `key`'s parents that `key` must wait for.

        A check that also tests `key` itself or something downstream of it can only run
        after `key`: waiting for it would deadlock, so it does not hold `key` back.
        """
        if key not in self._awaited:
            later = self.graph.descendants(key) | {key}
            self._awaited[key] = [
                c
                for dep in self.graph.parents(key)
                for c in self._blocking.get(dep, ())
                if not later.intersection(self._checks[c].asset_keys)
            ]
        return self._awaited[key]

    def _launch_python(self, pool: ThreadPoolExecutor) -> None:
        for key in self._python_keys:
            if self._running_python >= self.threads:
                break
            if key in self._chunks:
                self._launch_python_chunks(pool, key)
                continue
            if self.status[key] is not Status.PENDING:
                continue
            if not self._deps_ready(key):
                continue
            if self._to_count and any(f.key in self.graph.parents(key) for f in self._to_count):
                self._flush_counts()  # a parent's materialization is recorded before its child
            node = self.graph.assets[key]
            if node.pool:
                limit = self.pools.get(node.pool)
                if limit is not None and self._running_pools.get(node.pool, 0) >= limit:
                    continue
                self._running_pools[node.pool] = self._running_pools.get(node.pool, 0) + 1
            self.status[key] = Status.RUNNING
            self.started_at[key] = time.perf_counter()
            self._emit(EventKind.ASSET_STARTED, key, data={"kind": "python"})
            self._running_python += 1
            pool.submit(self._run_python, key)

    def _launch_python_chunks(self, pool: ThreadPoolExecutor, key: str) -> None:
        """Start the next chunks of a partitioned Python asset, within the pool limits."""
        st = self.status[key]
        if st is Status.PENDING:
            if not self._deps_ready(key):
                return
            if self._to_count and any(f.key in self.graph.parents(key) for f in self._to_count):
                self._flush_counts()
            self.status[key] = Status.RUNNING
            self.started_at[key] = time.perf_counter()
            self._emit(
                EventKind.ASSET_STARTED,
                key,
                data={"kind": "python", "partitions": self._step_ranges(key)},
            )
        elif st is not Status.RUNNING:
            return
        node = self.graph.assets[key]
        pending = self._chunks[key]
        while pending and self._running_python < self.threads:
            if node.pool:
                limit = self.pools.get(node.pool)
                if limit is not None and self._running_pools.get(node.pool, 0) >= limit:
                    return
                self._running_pools[node.pool] = self._running_pools.get(node.pool, 0) + 1
            chunk = pending.pop(0)
            self._inflight[key] += 1
            self._running_python += 1
            pool.submit(self._run_python_chunk, key, chunk)

    def _step_ranges(self, key: str) -> list[list[str]]:
        step = next(s for s in self.plan.steps if s.key == key)
        return [list(r) for r in step.partitions or ()]

    def _run_python_chunk(self, key: str, chunk: Chunk) -> None:
        """Run one chunk of a partitioned Python asset, retrying as its policy allows."""
        policy = self.side.retries.get(key) or self.python_fns[key].retry
        attempt = 1
        while True:
            error = self._attempt_python_chunk(key, chunk, attempt)
            if error is None:
                return
            message, tb, exc = error
            delay = None if self.cancelled else next_delay(policy, attempt, exc)
            if delay is None:
                self._queue.put(_Msg("chunk_failed", key, (chunk, message, tb)))
                return
            self._queue.put(_Msg("retry", key, (attempt, message, delay)))
            self._sleep(delay)
            if self.cancelled:
                self._queue.put(_Msg("chunk_failed", key, (chunk, message + " (cancelled)", tb)))
                return
            attempt += 1

    def _attempt_python_chunk(
        self, key: str, chunk: Chunk, attempt: int
    ) -> tuple[str, str, BaseException] | None:
        from sqlorch.execute.chunks import run_python_chunk

        fn = self.python_fns[key]
        node = self.graph.assets[key]
        definition = node.partitions
        assert definition is not None
        logger = logging.Logger(f"sqlorch.asset.{key}")
        logger.setLevel(logging.DEBUG)
        logger.addHandler(_QueueHandler(self._queue, key))
        session = None
        span = chunk.span(definition)
        try:
            assert self.warehouse is not None, "run.open_warehouse refuses Python assets without"
            session = self.warehouse.session()
            ctx = AssetContext(
                key=key,
                run_id=self.run_id,
                warehouse=session,
                log=logger,
                rate_limiter=self._limiters.get(node.pool or ""),
                attempt=attempt,
            )
            started = time.perf_counter()
            try:
                rows, metadata = run_python_chunk(fn, node, ctx, session, chunk)
            except SqlorchError as exc:
                where = f"{node.file}:{node.line}" if node.line else str(node.file)
                raise AssetError(
                    f"{exc.message} (partitions {span[0]}..{span[1]}; asset defined at {where})",
                    asset=key,
                    file=node.file,
                    line=node.line,
                ) from exc
            except Exception as exc:
                raise _user_error(key, node.file, exc) from exc
            duration = time.perf_counter() - started
            self._queue.put(_Msg("chunk_done", key, (chunk, rows, duration, metadata)))
            return None
        except SqlorchError as exc:
            return exc.message, traceback.format_exc(), exc
        except Exception as exc:  # noqa: BLE001 - report any failure as the asset's
            msg = f"Python asset {key!r} failed: {type(exc).__name__}: {exc}"
            return msg, traceback.format_exc(), exc
        finally:
            if session is not None:
                session.close()

    def _launch_dbt_chunk(self) -> bool:
        """Start one invocation for the next chunk of the ready partitioned dbt models.

        Partitioned models whose next chunks hand dbt the same window (the same vars) join
        one invocation, in which dbt orders them: a backfill of a model and the models
        downstream that read the same days is one dbt start-up.
        """
        assert self.invoker is not None and self.dbt_project is not None
        from sqlorch.dbt.manifest import compress_selection
        from sqlorch.execute.chunks import dbt_window_args

        group: list[tuple[str, Chunk]] = []
        extra: list[str] | None = None
        chosen: set[str] = set()
        for key in self._partitioned_dbt:
            st = self.status[key]
            if st not in (Status.PENDING, Status.RUNNING) or not self._chunks[key]:
                continue
            if self._inflight[key]:
                continue
            ready = all(
                self.status.get(p, Status.SUCCEEDED) is Status.SUCCEEDED or p in chosen
                for p in self.graph.parents(key)
            ) and all(
                self.status[a] is Status.SUCCEEDED or a in chosen
                for a in self._python_ancestors[key]
            )
            # dbt checks of a parent in this group run in the invocation, before `key`
            if not ready or any(
                self.check_status[c] in ("pending", "running")
                and not set(self._checks[c].asset_keys) & chosen
                for c in self._awaited_checks(key)
            ):
                continue
            if not all(self.check_status[c] in _PASSED for c in self._gating_checks(key)):
                continue
            if any(
                a in self._chunks and a not in chosen and self._chunks[a]
                for a in self.graph.ancestors(key)
            ):
                continue  # an upstream partitioned model still has chunks to run
            if self._reads_later_chunks(key, chosen):
                continue  # its mapping reads partitions of a chunk not run yet (issue 3)
            args = dbt_window_args(self.graph.assets[key], self._chunks[key][0])
            if extra is None:
                extra = args
            elif args != extra:
                continue
            group.append((key, self._chunks[key].pop(0)))
            chosen.add(key)
        if not group or extra is None:
            return False
        # the dbt tests of models whose last chunk this is run with them, as in a segment
        final = {k for k, _ in group if not self._chunks[k]}
        checks = [
            uid
            for uid, check in self._checks.items()
            if check.runs_in_dbt
            and self.check_status[uid] == "pending"
            and uid not in self._check_blocked
            and set(check.asset_keys) & final
            and all(
                self.status.get(k, Status.SUCCEEDED) is Status.SUCCEEDED or k in final
                for k in check.asset_keys
            )
        ]
        for c in checks:
            self.check_status[c] = "running"
        for key, _chunk in group:
            self._inflight[key] += 1
            if self.status[key] is Status.PENDING:
                self.status[key] = Status.RUNNING
                self.started_at[key] = time.perf_counter()
                self._emit(
                    EventKind.ASSET_STARTED,
                    key,
                    data={"kind": self.kind[key].value, "partitions": self._step_ranges(key)},
                )
        selectors = compress_selection(
            {self.graph.assets[k].unique_id or "" for k, _ in group} | set(checks),
            self.dbt_project.runnable_fqns,
            frozenset(),
        )
        start_hooks = not self._start_hooks_done
        self._start_hooks_done = True
        end_hooks = not any(self._chunks[k] for k in self._partitioned_dbt) and not any(
            self.status[k] is Status.PENDING for k in self._dbt_keys
        )
        self._dbt_busy = True
        self._dbt_invocations += 1
        n = self._dbt_invocations
        self._emit(
            EventKind.DBT_INVOCATION_STARTED,
            data={
                "invocation": n,
                "nodes": len(group),
                "checks": len(checks),
                "selectors": len(selectors),
                "window": extra,
            },
        )
        thread = threading.Thread(
            target=self._run_dbt_chunk,
            args=(n, group, checks, selectors, extra, start_hooks, end_hooks),
            name=f"sqlorch-dbt-{n}",
            daemon=True,
        )
        thread.start()
        return True

    def _reads_later_chunks(self, key: str, chosen: set[str]) -> bool:
        """True when the next chunk of `key` reads partitions that chunks of the models in
        `chosen` (joining this invocation) have yet to write: a partition mapping with an
        offset forward, `all` or renamed keys. Then `key` waits for them."""
        from datetime import UTC, datetime

        from sqlorch.core.partitions import PartitionSet
        from sqlorch.core.plan.partitions import reads_pending

        pending: dict[str, PartitionSet] = {}
        for a in chosen:
            for c in self._chunks[a]:
                pending[a] = pending.get(a, PartitionSet()) | c.as_set()
        if not pending:
            return False
        now = datetime.now(UTC)
        return reads_pending(self.graph, key, self._chunks[key][0].as_set(), pending, now)

    def _run_dbt_chunk(
        self,
        n: int,
        group: list[tuple[str, Chunk]],
        checks: list[str],
        selectors: list[str],
        extra: list[str],
        start_hooks: bool,
        end_hooks: bool,
    ) -> None:
        # partitioned models' own results are read from the invocation's result
        direct, rest, templates = self._direct_chunk(n, group)
        if direct is None:
            result = self._invoke_dbt(n, selectors, start_hooks, end_hooks, extra)
            if self._direct is not None:
                # dbt is warm in this process now: compile the templates of the models whose
                # tables this invocation created, so their next windows need no dbt start-up
                made = [
                    k
                    for k, _ in group
                    if result.statuses.get(self.graph.assets[k].unique_id or "") == "success"
                ]
                try:
                    self._direct.templates(n, made)
                except Exception:  # noqa: BLE001 - only a missed shortcut for later runs
                    log.debug("compiling window templates failed", exc_info=True)
        else:
            hooks = (start_hooks, end_hooks)
            result = self._finish_direct(n, direct, rest, templates, checks, hooks, extra)
        self._queue.put(_Msg("dbt_chunk_done", "", (group, checks, result)))

    def _direct_chunk(
        self, n: int, group: list[tuple[str, Chunk]]
    ) -> tuple[InvocationResult | None, list[tuple[str, Chunk]], dict[str, Template]]:
        """Write the windows of the group's models that have templates, without dbt.

        Returns (their results, the rest of the group for dbt, the templates used), or
        (None, group, {}) when dbt must build the whole group (see
        `partition_runs.DirectWindows`). A model downstream of one dbt writes stays with dbt,
        which orders the two.
        """
        from sqlorch.warehouse.duckdb import DuckDBWarehouse

        if (
            not self.side.direct_windows
            or self.invoker is None
            or self.dbt_project is None
            or not isinstance(self.warehouse, DuckDBWarehouse)
        ):
            return None, group, {}
        if self._direct is None:
            from sqlorch.execute.chunks import DirectWindows

            self._direct = DirectWindows(
                self.graph, self.dbt_project, self.invoker, self.warehouse, self.run_dir
            )
        try:
            templates = self._direct.templates(n, [k for k, _ in group])
            mine: list[tuple[str, Chunk]] = []
            rest: list[tuple[str, Chunk]] = []
            for key, chunk in group:
                later = key not in templates or any(k in self.graph.ancestors(key) for k, _ in rest)
                (rest if later else mine).append((key, chunk))
            if not mine:
                return None, group, {}
            result = self._direct.run(mine, templates)
        except Exception:  # noqa: BLE001 - dbt then writes the windows, as without templates
            log.debug("direct window writes failed to start", exc_info=True)
            return None, group, {}
        return (None, group, {}) if result is None else (result, rest, templates)

    def _finish_direct(
        self,
        n: int,
        result: InvocationResult,
        rest: list[tuple[str, Chunk]],
        templates: dict[str, Template],
        checks: list[str],
        hooks: tuple[bool, bool],
        extra: Sequence[str],
    ) -> InvocationResult:
        """Have dbt write the rest of a group and run the tests due after its windows."""
        failed = {
            self._uid_to_key[uid]
            for uid, st in result.statuses.items()
            if st in ("error", "skipped") and uid in self._uid_to_key
        }
        run: list[str] = []
        for key, _chunk in rest:
            uid = self.graph.assets[key].unique_id or ""
            if failed & self.graph.ancestors(key):
                result.statuses[uid] = "skipped"
                failed.add(key)
            else:
                run.append(uid)
        due = [c for c in checks if not failed.intersection(self._checks[c].asset_keys)]
        # the written models' own tests that have compiled SQL run here, as dbt would
        assert self._direct is not None
        later = {k for k, _ in rest}
        ready = {
            t.unique_id: t for key, tpl in templates.items() if key not in later for t in tpl.tests
        }
        from sqlorch.dbt.runner import DbtNodeEvent, DbtPhase

        for uid in [c for c in due if c in ready]:
            status, message, failures, seconds = self._direct.run_test(ready[uid])
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
            self._queue.put(_Msg("dbt_event", "", ev))
        due = [c for c in due if c not in ready]
        if not run and not due:
            return result
        assert self.dbt_project is not None
        from sqlorch.dbt.manifest import compress_selection

        selectors = compress_selection(
            set(run) | set(due), self.dbt_project.runnable_fqns, frozenset()
        )
        dbt = self._invoke_dbt(n, selectors, hooks[0], hooks[1], extra if run else ())
        result.statuses.update(dbt.statuses)
        result.messages.update(dbt.messages)
        result.success = result.success and dbt.success
        result.error = dbt.error
        result.log_path = dbt.log_path
        result.args += ["+ dbt tests:" if not run else "+ dbt:", *dbt.args]
        result.seconds += dbt.seconds
        return result

    def _on_chunk_done(self, key: str, chunk: Chunk, rows: int | None, seconds: float) -> None:
        node = self.graph.assets[key]
        assert node.partitions is not None
        self._inflight[key] -= 1
        # the asset's Python checks run on each partition run's rows, after it committed
        for uid in self._partition_checks(key):
            self._inflight[key] += 1
            self._chunk_checks.append((uid, key, chunk))
        if rows is not None:
            self._chunk_rows[key] = (self._chunk_rows.get(key) or 0) + rows
        self._emit(
            EventKind.PARTITIONS_MATERIALIZED,
            key,
            data={
                "partitions": [chunk.span(node.partitions)],
                "rows": rows,
                "duration_s": round(seconds, 4),
                "code_version": node.code_version,
            },
        )
        self._maybe_finish_partitioned(key)

    def _on_chunk_failed(self, key: str, chunk: Chunk, error: str, tb: str | None) -> None:
        node = self.graph.assets[key]
        assert node.partitions is not None
        self._inflight[key] -= 1
        self._chunk_errors.setdefault(key, []).append(error)
        self._emit(
            EventKind.PARTITIONS_FAILED,
            key,
            error,
            level="error",
            data={"partitions": [chunk.span(node.partitions)], "traceback": tb},
        )
        self._maybe_finish_partitioned(key)

    def _maybe_finish_partitioned(self, key: str) -> None:
        if self._inflight[key] or (self._chunks[key] and not self.cancelled):
            return
        if self.status[key] is not Status.RUNNING:
            return
        for uid in self._partition_checks(key):
            if self.check_status[uid] == "pending":
                self.check_status[uid] = self._partition_check_worst.get(uid, "pass")
        errors = self._chunk_errors.get(key)
        if errors:
            more = f" (and {len(errors) - 1} more failed partition runs)" if len(errors) > 1 else ""
            self._fail(key, errors[0] + more, None)
        elif self._chunks[key]:
            self._skip(key, "run cancelled before every partition ran")
        else:
            step = self._step_ranges(key)
            definition = self.graph.assets[key].partitions
            assert definition is not None
            from sqlorch.core.partitions import parse_ranges

            count = len(parse_ranges(definition, step))
            # the asset-level record: the whole table's rows and columns, as for any asset
            rows = self._chunk_rows.get(key)
            columns = None
            if self.warehouse is not None:
                try:
                    rows = self.warehouse.row_counts([key]).get(key, rows)
                    columns = self.warehouse.columns(key) or None
                except Exception:  # noqa: BLE001 - a row count must never fail a run
                    log.debug("row count failed", exc_info=True)
            self._succeed(key, rows, None, {"partitions": count}, columns)

    def _partition_checks(self, key: str) -> list[str]:
        """The planned Python checks of partitioned `key` (they run per partition run)."""
        return [
            u
            for u in self._side_checks
            if self._per_partition(u) and key in self._checks[u].asset_keys
        ]

    def _gating_checks(self, key: str) -> list[str]:
        """The blocking checks sqlorch runs on `key`'s ancestors that a dbt node must await.

        dbt orders its own tests; checks sqlorch runs itself must pass before a dbt node
        downstream of their asset joins a dbt invocation.
        """
        if key not in self._gates:
            later = self.graph.descendants(key) | {key}
            self._gates[key] = [
                c
                for a in self.graph.ancestors(key)
                for c in self._blocking.get(a, ())
                if not self._checks[c].runs_in_dbt
                and not later.intersection(self._checks[c].asset_keys)
            ]
        return self._gates[key]

    def _launch_checks(self, pool: ThreadPoolExecutor) -> None:
        """Start the @check and built-in checks whose assets are materialized (or observed)."""
        while self._chunk_checks and self._running_python < self.threads:
            uid, key, chunk = self._chunk_checks.pop(0)
            self._running_python += 1
            pool.submit(self._run_chunk_check, uid, key, chunk)
        for uid in self._side_checks:
            if self._running_python >= self.threads:
                break
            if self.check_status[uid] != "pending":
                continue
            if self._per_partition(uid):
                continue  # runs after each partition run; its status is set at the end
            keys = self._checks[uid].asset_keys
            if not all(
                k not in self.status or (self.status[k] is Status.SUCCEEDED and k in self._observed)
                for k in keys
            ):
                continue
            self.check_status[uid] = "running"
            self._running_python += 1
            pool.submit(self._run_side_check, uid)

    def _per_partition(self, uid: str) -> bool:
        """True for a Python check of a partitioned asset this run builds in partition runs."""
        check = self._checks[uid]
        return check.kind == CheckKind.PYTHON and check.asset_keys[0] in self._chunks

    def _run_chunk_check(self, uid: str, key: str, chunk: Chunk) -> None:
        """Run a Python check on the rows of one partition run of its asset."""
        from sqlorch.api.checks import CheckContext
        from sqlorch.execute.checks import run_python_check
        from sqlorch.execute.chunks import context_of
        from sqlorch.warehouse.duckdb import quote_key
        from sqlorch.warehouse.sql import filter_sql

        definition = self.graph.assets[key].partitions
        assert definition is not None

        def run(session: Warehouse, logger: logging.Logger) -> CheckResult:
            where, params = filter_sql(definition, chunk.prefix, chunk.lo, chunk.hi)
            ctx = CheckContext(
                asset=key,
                run_id=self.run_id,
                warehouse=session,
                log=logger,
                table=quote_key(key),
                partition=context_of(definition, chunk),
                partition_filter=where or None,
                partition_params=params,
            )
            return run_python_check(self.side.python_checks[uid], ctx)

        outcome = self._check_outcome(uid, key, run)
        self._queue.put(_Msg("chunk_check_done", key, (uid, chunk, *outcome)))

    def _check_outcome(
        self,
        uid: str,
        key: str,
        run: Callable[[Warehouse, logging.Logger], CheckResult],
    ) -> tuple[str, str, dict[str, Any]]:
        """Run a check sqlorch executes itself: (status, message, metadata).

        `run` gets a warehouse session and the check's logger (its lines go to the run's
        events); a failed blocking check is `fail`, a failed non-blocking one `warn`, a
        raising one `error`.
        """
        check = self._checks[uid]
        logger = logging.Logger(f"sqlorch.check.{check.name}")
        logger.setLevel(logging.DEBUG)
        logger.addHandler(_QueueHandler(self._queue, key))
        session = None
        started = time.perf_counter()
        try:
            if self.warehouse is None:
                raise RuntimeError(
                    "sqlorch runs Python and built-in checks on a DuckDB file target only; "
                    "this target's warehouse cannot be queried by sqlorch yet"
                )
            session = self.warehouse.session()
            result = run(session, logger)
            if result.passed:
                status = "pass"
            else:
                status = "fail" if check.is_blocking else "warn"
            message, metadata = result.message, dict(result.metadata)
        except Exception as exc:  # noqa: BLE001 - a raising check is an errored check
            status = "error"
            message = _check_error(check, exc)
            metadata = {"traceback": traceback.format_exc()}
        finally:
            if session is not None:
                session.close()
        metadata["duration_s"] = round(time.perf_counter() - started, 4)
        return status, message, metadata

    def _on_chunk_check(
        self,
        uid: str,
        key: str,
        chunk: Chunk,
        status: str,
        message: str,
        metadata: dict[str, Any],
    ) -> None:
        """Record one partition run's check; a blocking failure fails those partitions only."""
        check = self._checks[uid]
        definition = self.graph.assets[key].partitions
        assert definition is not None
        self._inflight[key] -= 1
        first, last = chunk.span(definition)
        span = first if first == last else f"{first}..{last}"
        data = {
            "check": check.name,
            "unique_id": uid,
            "status": status,
            "severity": check.severity,
            "blocking": check.is_blocking,
            "check_kind": str(check.kind),
            "assets": [key],
            "partition": span,
            "file": check.file,
            "line": check.line,
            "metadata": metadata,
        }
        text = f"{check.name} [{span}]: {message}" if message else f"{check.name} [{span}]"
        if status == "pass":
            self._emit(EventKind.CHECK_PASSED, key, f"{check.name} [{span}]", data=data)
        elif status == "warn":
            self._partition_check_worst[uid] = self._partition_check_worst.get(uid) or "warn"
            self._emit(EventKind.CHECK_WARNED, key, text, level="warning", data=data)
        else:
            self._partition_check_worst[uid] = "fail"
            self._emit(EventKind.CHECK_FAILED, key, text, level="error", data=data)
            if check.is_blocking or status == "error":
                self._chunk_errors.setdefault(key, []).append(f"check {text}")
                self._emit(
                    EventKind.PARTITIONS_FAILED,
                    key,
                    f"check {text}",
                    level="error",
                    data={"partitions": [[first, last]], "check": check.name},
                )
        self._maybe_finish_partitioned(key)

    def _segment(self) -> tuple[list[str], list[str]]:
        """Return the dbt steps and checks that can run now, in one invocation."""
        eligible = [
            key
            for key in self._dbt_keys
            if self.status[key] is Status.PENDING
            and key not in self._retry_wait
            and not (
                self._retry_wait and any(a in self._retry_wait for a in self.graph.ancestors(key))
            )
            and all(self.status[a] is Status.SUCCEEDED for a in self._python_ancestors[key])
            and all(self.check_status[c] in _PASSED for c in self._gating_checks(key))
        ]
        chosen = set(eligible)
        checks = [
            uid
            for uid, check in self._checks.items()
            if check.runs_in_dbt
            and self.check_status[uid] == "pending"
            and uid not in self._check_blocked
            and all(
                self.status.get(k, Status.SUCCEEDED) is Status.SUCCEEDED or k in chosen
                for k in check.asset_keys
            )
        ]
        return eligible, checks

    def _launch_dbt(self) -> None:
        if self._dbt_busy or self.invoker is None or self.dbt_project is None:
            return
        steps, checks = self._segment()
        if not steps and not checks:
            if self._partitioned_dbt and not self.cancelled:
                self._launch_dbt_chunk()
            return
        chosen_uids = {self.graph.assets[k].unique_id for k in steps} | set(checks)
        from sqlorch.dbt.manifest import compress_selection

        selectors = compress_selection(
            {u for u in chosen_uids if u},
            self.dbt_project.runnable_fqns,
            self.dbt_project.ephemeral,
        )
        in_segment = set(steps)
        remaining_dbt = [
            k for k in self._dbt_keys if self.status[k] is Status.PENDING and k not in in_segment
        ] + [k for k in self._partitioned_dbt if self._chunks[k]]
        start_hooks = not self._start_hooks_done
        end_hooks = not remaining_dbt
        self._start_hooks_done = True
        for k in steps:
            self.status[k] = Status.RUNNING
        for c in checks:
            self.check_status[c] = "running"
        self._dbt_busy = True
        self._dbt_invocations += 1
        n = self._dbt_invocations
        self._emit(
            EventKind.DBT_INVOCATION_STARTED,
            data={
                "invocation": n,
                "nodes": len(steps),
                "checks": len(checks),
                "selectors": len(selectors),
            },
        )
        thread = threading.Thread(
            target=self._run_dbt,
            args=(n, selectors, steps, checks, start_hooks, end_hooks),
            name=f"sqlorch-dbt-{n}",
            daemon=True,
        )
        thread.start()

    def _skip_reason(self, key: str) -> str:
        """Say which upstream failure made dbt skip `key`."""
        ancestors = self.graph.ancestors(key)
        failed = [
            a for a in self.graph.topological(ancestors) if self.status.get(a) is Status.FAILED
        ]
        checks = [
            f"check {c.name} on {', '.join(c.asset_keys)}"
            for uid, c in self._checks.items()
            if self.check_status.get(uid) in ("fail", "error")
            and (c.is_blocking or c.is_unit_test)
            and ancestors.union({key}).intersection(c.asset_keys)
        ]
        causes = [f"upstream {a} failed" for a in failed] + [f"{c} failed" for c in checks]
        return "; ".join(causes) if causes else "skipped by dbt (an upstream node failed)"

    def _finish_blocked(self) -> None:
        """Skip what can never run once nothing is running."""
        # partition checks that never started (a cancelled run) no longer hold their asset
        dropped, self._chunk_checks = self._chunk_checks, []
        for _uid, key, _chunk in dropped:
            self._inflight[key] -= 1
        for key in {k for _u, k, _c in dropped}:
            self._maybe_finish_partitioned(key)
        reason = "run cancelled" if self.cancelled else "an upstream asset did not succeed"
        for key in self.plan.keys:
            if self.status[key] is Status.PENDING:
                self._skip(key, reason)
        for uid, st in self.check_status.items():
            if st == "pending":
                self.check_status[uid] = "skipped"

    # ---------------------------------------------------------------- workers

    def _run_python(self, key: str) -> None:
        """Run a Python asset, retrying as its policy (or a transient error) allows."""
        policy = self.side.retries.get(key) or self.python_fns[key].retry
        attempt = 1
        while True:
            error = self._attempt_python(key, attempt)
            if error is None:
                return
            message, tb, exc = error
            delay = None if self.cancelled else next_delay(policy, attempt, exc)
            if delay is None:
                self._queue.put(_Msg("python_failed", key, (message, tb)))
                return
            self._queue.put(_Msg("retry", key, (attempt, message, delay)))
            self._sleep(delay)
            if self.cancelled:
                self._queue.put(_Msg("python_failed", key, (message + " (run cancelled)", tb)))
                return
            attempt += 1

    def _attempt_python(self, key: str, attempt: int) -> tuple[str, str, BaseException] | None:
        """Run one attempt; put the success on the queue, or return the failure."""
        fn = self.python_fns[key]
        node = self.graph.assets[key]
        logger = logging.Logger(f"sqlorch.asset.{key}")
        logger.setLevel(logging.DEBUG)
        logger.addHandler(_QueueHandler(self._queue, key))
        session = None
        try:
            assert self.warehouse is not None, "run.open_warehouse refuses Python assets without"
            session = self.warehouse.session()
            self._sessions.add(session)
            ctx = AssetContext(
                key=key,
                run_id=self.run_id,
                warehouse=session,
                log=logger,
                rate_limiter=self._limiters.get(node.pool or ""),
                attempt=attempt,
            )
            started = time.perf_counter()
            try:
                result = fn(ctx) if fn.takes_context else fn()
            except Exception as exc:
                raise _user_error(key, node.file, exc) from exc
            metadata: dict[str, Any] = {}
            if isinstance(result, MaterializeResult):
                metadata.update(result.metadata)
                result = result.data
            metadata.update(ctx.metadata)
            if result is None:
                if not fn.takes_context:
                    raise AssetError(
                        f"Python asset {key!r} ({node.file}:{node.line}) returned None. Return "
                        "the table's rows (Arrow, pandas, polars or a DuckDB relation), or take "
                        "a `context` argument and write the table through `context.warehouse`.",
                        asset=key,
                        file=node.file,
                        line=node.line,
                    )
                if not session.table_exists(key):
                    raise AssetError(
                        f"Python asset {key!r} ({node.file}:{node.line}) returned None but did "
                        f"not create the table {key}. Write it through `context.warehouse` "
                        "or return the rows.",
                        asset=key,
                        file=node.file,
                        line=node.line,
                    )
                rows = session.row_counts([key]).get(key)
            else:
                try:
                    rows = session.write(key, result)
                except AssetError as exc:
                    where = f"{node.file}:{node.line}" if node.line else str(node.file)
                    raise AssetError(
                        f"{exc.message} (asset defined at {where})",
                        asset=key,
                        file=node.file,
                        line=node.line,
                    ) from exc
            duration = time.perf_counter() - started
            columns = _columns_of(session, key)
            if attempt > 1:
                metadata.setdefault("attempts", attempt)
            self._queue.put(_Msg("python_done", key, (rows, duration, metadata, columns)))
            return None
        except SqlorchError as exc:
            return exc.message, traceback.format_exc(), exc
        except Exception as exc:  # noqa: BLE001 - report any failure as the asset's
            msg = f"Python asset {key!r} failed: {type(exc).__name__}: {exc}"
            return msg, traceback.format_exc(), exc
        finally:
            if session is not None:
                self._sessions.discard(session)
                session.close()

    def _run_side_check(self, uid: str) -> None:
        """Run one @check or built-in check in a worker; its result goes to the queue."""
        check = self._checks[uid]
        key = check.asset_keys[0]

        def run(session: Warehouse, logger: logging.Logger) -> CheckResult:
            return run_side_check(
                check,
                self.side,
                session,
                self.run_id,
                logger,
                current=self._observed.get(key),
                partitions=self.graph.assets[key].partitions,
            )

        outcome = self._check_outcome(uid, key, run)
        self._queue.put(_Msg("check_done", uid, outcome))

    def _run_dbt(
        self,
        n: int,
        selectors: list[str],
        steps: list[str],
        checks: list[str],
        start_hooks: bool,
        end_hooks: bool,
    ) -> None:
        result = self._invoke_dbt(n, selectors, start_hooks, end_hooks)
        self._queue.put(_Msg("dbt_done", "", (steps, checks, result)))

    def _invoke_dbt(
        self,
        n: int,
        selectors: list[str],
        start_hooks: bool,
        end_hooks: bool,
        extra: Sequence[str] = (),
    ) -> InvocationResult:
        """Run dbt invocation `n` (node events go to the queue); a crash becomes a failure."""

        def on_event(ev: DbtNodeEvent) -> None:
            self._queue.put(_Msg("dbt_event", "", ev))

        assert self.invoker is not None
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

    # ---------------------------------------------------------------- messages

    def _handle(self, msg: _Msg) -> None:
        if msg.kind in ("python_done", "python_failed", "chunk_done", "chunk_failed"):
            self._running_python -= 1
        if msg.kind == "chunk_done":
            chunk, rows, duration, metadata = msg.payload
            self._release_pool(msg.key)
            self._on_chunk_done(msg.key, chunk, rows, duration)
            return
        if msg.kind == "chunk_failed":
            chunk, error, tb = msg.payload
            self._release_pool(msg.key)
            self._on_chunk_failed(msg.key, chunk, error, tb)
            return
        if msg.kind == "dbt_chunk_done":
            group, checks, result = msg.payload
            self._dbt_busy = False
            self._on_dbt_chunk_done(group, checks, result)
            return
        if msg.kind == "python_done":
            rows, duration, metadata, columns = msg.payload
            self._release_pool(msg.key)
            self._succeed(msg.key, rows, duration, metadata, columns)
        elif msg.kind == "python_failed":
            error, tb = msg.payload
            self._release_pool(msg.key)
            self._fail(msg.key, error, tb)
        elif msg.kind == "check_done":
            self._running_python -= 1
            status, message, metadata = msg.payload
            self._on_check_result(msg.key, status, message, metadata)
        elif msg.kind == "retry":
            attempt, error, delay = msg.payload
            self._emit(
                EventKind.ASSET_RETRY,
                msg.key,
                f"attempt {attempt} failed, retrying in {delay:g}s: {error}",
                level="warning",
                data={"attempt": attempt, "delay_s": delay, "error": error},
            )
        elif msg.kind == "chunk_check_done":
            self._running_python -= 1
            uid, chunk, status, message, metadata = msg.payload
            self._on_chunk_check(uid, msg.key, chunk, status, message, metadata)
        elif msg.kind == "retry_ready":
            self._retry_wait.discard(msg.key)
        elif msg.kind == "log":
            level, text = msg.payload
            self._emit(EventKind.ASSET_LOG, msg.key, text, level=level)
        elif msg.kind == "dbt_event":
            self._on_dbt_event(msg.payload)
        elif msg.kind == "dbt_done":
            steps, checks, result = msg.payload
            self._on_dbt_done(steps, checks, result)

    def _on_dbt_event(self, ev: DbtNodeEvent) -> None:
        from sqlorch.dbt.runner import DbtPhase

        uid = ev.unique_id
        key = self._uid_to_key.get(uid)
        if ev.phase is DbtPhase.STARTED:
            if key in self.status and key not in self._chunks:
                self.started_at[key] = time.perf_counter()
                self._emit(EventKind.ASSET_STARTED, key, data={"kind": self.kind[key].value})
            return
        if ev.phase is DbtPhase.LOG:
            target = key if key else None
            check = self._checks.get(uid)
            if check and check.asset_keys:
                target = check.asset_keys[0]
            self._emit(
                EventKind.ASSET_LOG, target, ev.message, level=ev.level, data={"dbt_node": uid}
            )
            return
        # finished
        if uid in self._checks:
            meta: dict[str, Any] = {"failures": ev.failures} if ev.failures else {}
            if ev.execution_time is not None:
                meta["duration_s"] = round(ev.execution_time, 4)
            self._on_check_result(uid, ev.status, ev.message, meta)
            return
        if key not in self.status or self.status[key] is not Status.RUNNING:
            return
        if key in self._chunks:
            return  # a partitioned model: its invocation's result decides
        if ev.status in ("success", "pass"):
            node = self.graph.assets[key]
            metadata = dbt_metadata(ev)
            if key in self._attempts:
                metadata["attempts"] = self._attempts[key]
            if self.warehouse is None:
                self._succeed(key, ev.rows_affected, ev.execution_time, metadata)
            else:
                # unblock children now; row counts and columns follow in a batch
                self.status[key] = Status.SUCCEEDED
                if not self._to_count:
                    self._count_since = time.perf_counter()
                self._to_count.append(
                    _Finished(
                        key,
                        ev.execution_time,
                        ev.rows_affected,
                        node.materialized not in _TABLE_LIKE_EXCLUDED,
                        metadata,
                    )
                )
        elif ev.status == "skipped":
            self._skip_or_hold(key)
        elif not self._retry_dbt(key, ev.message):
            self._fail(key, _dbt_error(self.graph, key, ev.message), None)

    def _on_dbt_chunk_done(
        self, group: list[tuple[str, Chunk]], checks: list[str], result: InvocationResult
    ) -> None:
        for uid in checks:
            if self.check_status[uid] == "running":
                st = result.statuses.get(uid)
                self.check_status[uid] = st or ("error" if result.error else "skipped")
        self._emit(
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
                "window_writes": sorted(self._uid_to_key.get(u, u) for u in result.rows),
                "dbt_writes_because": {
                    k: self._direct.reasons[k]
                    for k, _ in group
                    if self._direct is not None and k in self._direct.reasons
                },
            },
        )
        counted: dict[str, int] = {}
        if self.warehouse is not None:
            tables = [
                k
                for k, _ in group
                if result.statuses.get(self.graph.assets[k].unique_id or "") == "success"
                and (self.graph.assets[k].unique_id or "") not in result.rows
                and self.graph.assets[k].materialized not in _TABLE_LIKE_EXCLUDED
            ]
            try:
                counted = self.warehouse.row_counts(tables) if tables else {}
            except Exception:  # noqa: BLE001 - a row count must never fail a run
                log.debug("row count failed", exc_info=True)
        for key, chunk in group:
            uid = self.graph.assets[key].unique_id or ""
            st = result.statuses.get(uid)
            if st == "success":
                self._chunk_rows[key] = 0
                rows = result.rows.get(uid, counted.get(key))
                self._on_chunk_done(key, chunk, rows, result.seconds)
            else:
                message = (
                    result.messages.get(uid)
                    or result.error
                    or (
                        "skipped by dbt (an upstream node failed)"
                        if st == "skipped"
                        else "dbt did not run the model"
                    )
                )
                self._on_chunk_failed(key, chunk, _dbt_error(self.graph, key, message), None)

    def _on_check_result(
        self,
        uid: str,
        status: str,
        message: str,
        metadata: dict[str, Any] | None = None,
        partition: str | None = None,
    ) -> None:
        check = self._checks[uid]
        self.check_status[uid] = status
        target = check.asset_keys[0] if check.asset_keys else None
        data = {
            "check": check.name,
            "unique_id": uid,
            "status": status,
            "severity": check.severity,
            "blocking": check.is_blocking or check.is_unit_test,
            "check_kind": "unit_test" if check.is_unit_test else str(check.kind),
            "assets": list(check.asset_keys),
            "partition": partition,
            "file": check.file,
            "line": check.line,
            "metadata": metadata or {},
        }
        if status in ("pass", "success"):
            self._emit(EventKind.CHECK_PASSED, target, check.name, data=data)
            return
        if status == "warn":
            self._emit(
                EventKind.CHECK_WARNED,
                target,
                f"{check.name}: {message}",
                level="warning",
                data=data,
            )
            return
        if status == "skipped":
            if any(self._is_retrying(k) for k in check.asset_keys):
                self.check_status[uid] = "pending"  # runs again with its asset's retry
            return
        self._emit(
            EventKind.CHECK_FAILED, target, f"{check.name}: {message}", level="error", data=data
        )
        if check.is_blocking or check.is_unit_test:
            for k in check.asset_keys:
                for d in self.graph.descendants(k):
                    if self.status.get(d) is Status.PENDING:
                        self._skip(d, f"check {check.name} on {k} failed")

    def _on_dbt_done(self, steps: list[str], checks: list[str], result: InvocationResult) -> None:
        self._flush_counts_all()
        for key in steps:
            if self.status[key] is Status.RUNNING:
                uid = self.graph.assets[key].unique_id or ""
                st = result.statuses.get(uid)
                if st == "skipped":
                    self._skip_or_hold(key)
                elif result.error and st is None:
                    self._fail(
                        key,
                        f"dbt failed before running {key}: {result.error} "
                        f"(dbt's log: {result.log_path})",
                        None,
                    )
                elif st is None:
                    self._skip(key, "dbt did not run this node")
                elif not self._retry_dbt(key, result.messages.get(uid, "")):
                    self._fail(key, _dbt_error(self.graph, key, result.messages.get(uid, "")), None)
        for uid in checks:
            if self.check_status[uid] == "running":
                st = result.statuses.get(uid)
                if st in (None, "skipped") and any(
                    self._is_retrying(k) for k in self._checks[uid].asset_keys
                ):
                    self.check_status[uid] = "pending"
                    continue
                self.check_status[uid] = st or ("error" if result.error else "skipped")
        self._dbt_busy = False
        self._emit(
            EventKind.DBT_INVOCATION_FINISHED,
            level="info" if result.success else "warning",
            data={
                "success": result.success,
                "seconds": round(result.seconds, 3),
                "log": str(result.log_path),
                "error": result.error,
                "args": result.args,
            },
        )

    # ---------------------------------------------------------------- dbt retries

    def _retry_dbt(self, key: str, message: str) -> bool:
        """Put a failed dbt node back in line if its policy or a transient error allows."""
        if self.cancelled:
            return False
        attempt = self._attempts.get(key, 1)
        policy = self.side.retries.get(key)
        delay = next_delay(policy, attempt, RuntimeError(message))
        if delay is None:
            return False
        self._attempts[key] = attempt + 1
        self.status[key] = Status.PENDING
        self._retry_wait.add(key)
        error = _dbt_error(self.graph, key, message)
        self._emit(
            EventKind.ASSET_RETRY,
            key,
            f"attempt {attempt} failed, retrying in {delay:g}s: {error}",
            level="warning",
            data={"attempt": attempt, "delay_s": delay, "error": error},
        )

        def wake() -> None:
            self._sleep(delay)
            self._queue.put(_Msg("retry_ready", key))

        threading.Thread(target=wake, name=f"sqlorch-retry-{key}", daemon=True).start()
        return True

    def _is_retrying(self, key: str) -> bool:
        """True when `key` or an upstream dbt node failed and waits for another attempt."""
        if not self._attempts:
            return False
        return any(
            self.status.get(k) in (Status.PENDING, Status.RUNNING) and self._attempts.get(k, 1) > 1
            for k in (key, *self.graph.ancestors(key))
        )

    def _skip_or_hold(self, key: str) -> None:
        """dbt skipped `key`: skip it, unless an upstream node will be retried."""
        if self._is_retrying(key):
            self.status[key] = Status.PENDING
        else:
            self._skip(key, self._skip_reason(key))

    # ---------------------------------------------------------------- transitions

    def _flush_counts(self) -> None:
        """Record a batch of finished dbt nodes with their row counts and columns."""
        batch, self._to_count = self._to_count, []
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
            self._materialized(f.key, rows, f.seconds, f.metadata, columns.get(f.key))

    def _flush_counts_all(self) -> None:
        if self._to_count:
            self._flush_counts()

    def _release_pool(self, key: str) -> None:
        pool = self.graph.assets[key].pool
        if pool and pool in self._running_pools:
            self._running_pools[pool] -= 1

    def _succeed(
        self,
        key: str,
        rows: int | None,
        seconds: float | None,
        metadata: dict[str, Any],
        columns: list[Column] | None = None,
    ) -> None:
        self.status[key] = Status.SUCCEEDED
        self._materialized(key, rows, seconds, metadata, columns)

    def _materialized(
        self,
        key: str,
        rows: int | None,
        seconds: float | None,
        metadata: dict[str, Any],
        columns: list[Column] | None = None,
    ) -> None:
        if seconds is None and key in self.started_at:
            seconds = time.perf_counter() - self.started_at[key]
        node = self.graph.assets[key]
        self._observed[key] = Observed(
            rows, [(c.name, c.type) for c in columns] if columns is not None else None, utcnow()
        )
        self._emit(
            EventKind.ASSET_MATERIALIZED,
            key,
            data={
                "kind": node.kind.value,
                "rows": rows,
                "duration_s": round(seconds, 4) if seconds is not None else None,
                "code_version": node.code_version,
                "metadata": metadata,
                "columns": ([[c.name, c.type] for c in columns] if columns is not None else None),
            },
        )

    def _fail(self, key: str, error: str, tb: str | None) -> None:
        self.status[key] = Status.FAILED
        self.errors[key] = error
        node = self.graph.assets[key]
        seconds = None
        if key in self.started_at:
            seconds = round(time.perf_counter() - self.started_at[key], 4)
        self._emit(
            EventKind.ASSET_FAILED,
            key,
            error,
            level="error",
            data={
                "kind": node.kind.value,
                "file": node.file,
                "line": node.line,
                "traceback": tb,
                "duration_s": seconds,
            },
        )
        for d in self.graph.topological(self.graph.descendants(key)):
            if self.status.get(d) is Status.PENDING:
                self._skip(d, f"upstream {key} failed")

    def _skip(self, key: str, reason: str) -> None:
        self.status[key] = Status.SKIPPED
        self._emit(
            EventKind.ASSET_SKIPPED,
            key,
            reason,
            level="warning",
            data={"kind": self.kind[key].value},
        )
        for uid in self._blocking.get(key, ()):
            if self.check_status.get(uid) == "pending":
                self._check_blocked.add(uid)

    def _emit(
        self,
        kind: EventKind,
        asset: str | None = None,
        message: str = "",
        level: str = "info",
        data: dict[str, Any] | None = None,
    ) -> None:
        event = Event(
            kind=kind,
            run_id=self.run_id,
            ts=utcnow(),
            asset=asset,
            message=message,
            level=level,
            data=data or {},
        )
        for listener in self.listeners:
            listener(event)


class _QueueHandler(logging.Handler):
    """Send a Python asset's `context.log` records to the scheduling thread."""

    def __init__(self, q: queue.Queue[_Msg], key: str) -> None:
        super().__init__(logging.DEBUG)
        self._q = q
        self._key = key

    def emit(self, record: logging.LogRecord) -> None:
        level = {"WARNING": "warning", "ERROR": "error", "CRITICAL": "error", "DEBUG": "debug"}.get(
            record.levelname, "info"
        )
        self._q.put(_Msg("log", self._key, (level, self.format(record))))


def _user_error(key: str, file: str | None, exc: BaseException) -> AssetError:
    frames = traceback.extract_tb(exc.__traceback__)
    where = ""
    line = None
    if file:
        mine = [f for f in frames if f.filename.endswith(file)]
        if mine:
            line = mine[-1].lineno
            where = f" at {file}:{line}"
    if not where and frames:
        where = f" at {frames[-1].filename}:{frames[-1].lineno}"
    return AssetError(
        f"Python asset {key!r} raised {type(exc).__name__}{where}: {exc}. "
        "Fix the asset and run `sqlorch build` again; the traceback is in `sqlorch logs`.",
        asset=key,
        file=file,
        line=line,
    )


def _dbt_error(graph: AssetGraph, key: str, message: str) -> str:
    node = graph.assets[key]
    text = " ".join(message.split()) if message else "dbt reported an error"
    return f"dbt {node.kind.value} {node.name!r} ({node.file}) failed: {text}"
