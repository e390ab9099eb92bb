"""Python steps: run a Python asset, whole or one partition run (chunk), on one code path.

Each attempt runs in a worker thread on a warehouse session of its own, registered in
`Sessions` while it runs so that a second Ctrl-C can interrupt its query. The outcome goes
to the scheduling thread as a message; retries follow the asset's policy.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlorch.api.asset import AssetContext, AssetDefinition, MaterializeResult
from sqlorch.api.dlt import DltTable
from sqlorch.api.retries import RateLimiter, RetryPolicy
from sqlorch.core.graph import AssetNode, Column
from sqlorch.errors import AssetError, AuditError, SqlorchError
from sqlorch.execute.cancellation import Cancellation
from sqlorch.execute.chunks import Chunk, context_of
from sqlorch.execute.dlt_steps import DltLoads
from sqlorch.execute.messages import (
    Audited,
    CheckOutcome,
    ChunkDone,
    ChunkFailed,
    Inbox,
    PythonDone,
    PythonFailed,
    Retrying,
    logger_for,
)
from sqlorch.execute.retries import Failure, attempt_until_done
from sqlorch.warehouse.base import Warehouse
from sqlorch.warehouse.environment import physical, readable
from sqlorch.warehouse.sql import filter_sql

log = logging.getLogger(__name__)

#: Runs an asset's blocking checks inside its write: (key, chunk or None, the write's session)
#: -> each check's (unique id, outcome).
Auditor = Callable[[str, Chunk | None, Warehouse], list[tuple[str, CheckOutcome]]]


class Sessions:
    """The warehouse sessions of running Python assets, to interrupt on a second Ctrl-C."""

    def __init__(self) -> None:
        self._open: set[Warehouse] = set()
        self._lock = threading.Lock()

    def add(self, session: Warehouse) -> None:
        """Register a session while its asset runs."""
        with self._lock:
            self._open.add(session)

    def discard(self, session: Warehouse) -> None:
        """Forget a session whose asset ended."""
        with self._lock:
            self._open.discard(session)

    def interrupt_all(self) -> None:
        """Interrupt every registered session's running query."""
        with self._lock:
            sessions = list(self._open)
        for session in sessions:
            session.interrupt()


class PythonSteps:
    """Runs Python assets in worker threads, whole or chunk by chunk, with retries."""

    def __init__(
        self,
        *,
        fns: dict[str, AssetDefinition],
        warehouse: Warehouse | None,
        run_id: str,
        inbox: Inbox,
        cancellation: Cancellation,
        retries: dict[str, RetryPolicy],
        limiters: dict[str, RateLimiter],
        accept_schema: frozenset[str] = frozenset(),
    ) -> None:
        """`accept_schema`: assets whose changed columns this run accepts (`build --full`)."""
        self.fns = fns
        self.accept_schema = accept_schema
        # set by the executor: runs the blocking checks inside the write
        self.auditor: Auditor | None = None
        self.warehouse = warehouse
        self.run_id = run_id
        self.inbox = inbox
        self.cancellation = cancellation
        self.retries = retries
        self.limiters = limiters
        self.sessions = Sessions()
        self.dlt = DltLoads()

    def submit(self, pool: ThreadPoolExecutor, node: AssetNode, chunk: Chunk | None) -> None:
        """Run `node` (or its `chunk`) in a worker of `pool`."""
        pool.submit(self.run, node, chunk)

    def run(self, node: AssetNode, chunk: Chunk | None) -> None:
        """Run a Python asset (or one chunk of it), retrying as its policy allows."""
        key = node.key
        policy = self.retries.get(key) or self.fns[key].retry

        def on_retry(attempt: int, message: str, delay: float) -> None:
            self.inbox.put(Retrying(key, attempt, message, delay))

        ended = attempt_until_done(
            lambda attempt: self._attempt(node, chunk, attempt),
            policy,
            self.cancellation,
            on_retry,
        )
        if ended is None:
            return
        failure, cancelled = ended
        message = failure.message
        if isinstance(failure.exc, AuditError):
            for uid, outcome in failure.exc.outcomes:
                self.inbox.put(Audited(key, chunk, uid, outcome))
        if chunk is None:
            message += " (run cancelled)" if cancelled else ""
            self.inbox.put(PythonFailed(key, message, failure.traceback))
        else:
            message += " (cancelled)" if cancelled else ""
            self.inbox.put(ChunkFailed(key, chunk, message, failure.traceback))

    def _attempt(self, node: AssetNode, chunk: Chunk | None, attempt: int) -> Failure | None:
        """Run one attempt; put the success on the inbox, or return the failure."""
        key = node.key
        logger = logger_for(f"sqlorch.asset.{key}", self.inbox, key)
        session = None
        try:
            assert self.warehouse is not None, "run.open_warehouse refuses Python assets without"
            session = self.warehouse.session()
            self.sessions.add(session)
            ctx = AssetContext(
                key=key,
                run_id=self.run_id,
                warehouse=session,
                log=logger,
                rate_limiter=self.limiters.get(node.pool or ""),
                attempt=attempt,
                relations=functools.partial(_relation, session, key),
            )
            started = time.perf_counter()
            audited: list[tuple[str, CheckOutcome]] = []
            if chunk is None:
                rows, metadata = self._whole(node, ctx, session, audited)
                duration = time.perf_counter() - started
                columns = _columns_of(session, key)
                if attempt > 1:
                    metadata.setdefault("attempts", attempt)
                for uid, outcome in audited:
                    self.inbox.put(Audited(key, None, uid, outcome))
                self.inbox.put(PythonDone(key, rows, duration, metadata, columns))
            else:
                rows, metadata = self._chunk(node, ctx, session, chunk, audited)
                duration = time.perf_counter() - started
                for uid, outcome in audited:
                    self.inbox.put(Audited(key, chunk, uid, outcome))
                uids = tuple(uid for uid, _ in audited)
                self.inbox.put(ChunkDone(key, chunk, rows, duration, metadata, uids))
            return None
        except SqlorchError as exc:
            return Failure(exc.message, traceback.format_exc(), exc)
        except Exception as exc:  # noqa: BLE001 - report any failure as the asset's
            msg = f"Python asset {key!r} failed: {type(exc).__name__}: {exc}"
            return Failure(msg, traceback.format_exc(), exc)
        finally:
            if session is not None:
                self.sessions.discard(session)
                session.close()

    def _call(self, node: AssetNode, ctx: AssetContext) -> tuple[Any, dict[str, Any]]:
        """Call the asset's function: (what it returned, its metadata)."""
        fn = self.fns[node.key]
        if isinstance(fn.fn, DltTable):  # one dlt load writes every table of its source
            return None, self.dlt.materialize(fn.fn, ctx)
        result = fn(ctx) if fn.takes_context else fn()
        metadata: dict[str, Any] = {}
        if isinstance(result, MaterializeResult):
            metadata.update(result.metadata)
            result = result.data
        metadata.update(ctx.metadata)
        return result, metadata

    def _gate(
        self, node: AssetNode, chunk: Chunk | None, audited: list[tuple[str, CheckOutcome]]
    ) -> Callable[[Warehouse], None] | None:
        """The audit of a write: run the blocking checks on the new data, raise to roll back.

        Their outcomes land in `audited` (kept when the write commits, reported either way).
        """
        auditor = self.auditor
        if auditor is None or getattr(self.warehouse, "dialect", "") != "duckdb":
            return None  # elsewhere the blocking checks run after the commit

        def gate(within: Warehouse) -> None:
            audited[:] = auditor(node.key, chunk, within)
            bad = [(uid, o) for uid, o in audited if o.status.is_failed]
            if not bad:
                return
            names = ", ".join(uid.rsplit(".", 1)[-1] for uid, _ in bad)
            first = bad[0][1].message
            what = node.key
            if chunk is not None and node.partitions is not None:
                span = chunk.span(node.partitions)
                what += f" (partitions {span[0]}..{span[1]})"
            raise AuditError(
                f"Blocking check {names} failed on the new data of {what}"
                + (f": {first}" if first else "")
                + f". Nothing was published: the write was rolled back, so {node.key} and "
                "every view over it keep their previous content. Fix the data (or the check) "
                "and run `sqlorch build` again.",
                asset=node.key,
                outcomes=list(audited),
            )

        return gate

    def _whole(
        self,
        node: AssetNode,
        ctx: AssetContext,
        session: Warehouse,
        audited: list[tuple[str, CheckOutcome]],
    ) -> tuple[int | None, dict[str, Any]]:
        """Call an unpartitioned asset and write (or find) its table: (rows, metadata)."""
        key = node.key
        try:
            result, metadata = self._call(node, ctx)
        except SqlorchError:
            raise
        except Exception as exc:
            raise _user_error(key, node.file, exc) from exc
        if result is not None:
            try:
                gate = self._gate(node, None, audited)
                if gate is None:
                    return session.write(key, result), metadata
                return session.write(key, result, audit=gate), metadata
            except AuditError:
                raise
            except AssetError as exc:
                where = f"{node.file}:{node.line}" if node.line else str(node.file)
                raise AssetError(
                    f"{exc.message} (asset defined at {where})",
                    asset=key,
                    file=node.file,
                    line=node.line,
                ) from exc
        if not self.fns[key].takes_context:
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
        return session.row_counts([key]).get(key), metadata

    def _chunk(
        self,
        node: AssetNode,
        ctx: AssetContext,
        session: Warehouse,
        chunk: Chunk,
        audited: list[tuple[str, CheckOutcome]],
    ) -> tuple[int | None, dict[str, Any]]:
        """Call a partitioned asset for `chunk` and replace exactly its rows: (rows, metadata)."""
        definition = node.partitions
        assert definition is not None
        try:
            ctx.partition = context_of(definition, chunk)
            result, metadata = self._call(node, ctx)
            if result is None:
                if not self.fns[node.key].takes_context:
                    raise AssetError(
                        f"Partitioned Python asset {node.key!r} ({node.file}:{node.line}) "
                        "returned None. Return the rows of `context.partition`.",
                        asset=node.key,
                        file=node.file,
                        line=node.line,
                    )
                return None, metadata  # the asset wrote its partition itself
            where, params = filter_sql(definition, chunk.prefix, chunk.lo, chunk.hi)
            policy = self.fns[node.key].on_schema_change
            if node.key in self.accept_schema:
                policy = "sync_all_columns"
            gate = self._gate(node, chunk, audited)
            if gate is None:  # not DuckDB: the warehouse writes as it always did
                rows = session.write_partition(node.key, result, where, params, definition.columns)
            else:
                rows = session.write_partition(
                    node.key,
                    result,
                    where,
                    params,
                    definition.columns,
                    audit=gate,
                    on_schema_change=policy,
                )
            return rows, metadata
        except AuditError:
            raise
        except SqlorchError as exc:
            span = chunk.span(definition)
            where = f"{node.file}:{node.line}" if node.line else str(node.file)
            raise AssetError(
                f"{exc.message} (partitions {span[0]}..{span[1]}; asset defined at {where})",
                asset=node.key,
                file=node.file,
                line=node.line,
            ) from exc
        except Exception as exc:
            raise _user_error(node.key, node.file, exc) from exc


def _columns_of(session: Warehouse, key: str) -> list[Column] | None:
    try:
        return session.table_columns([key]).get(key)
    except Exception:  # noqa: BLE001 - reading the catalog must never fail an asset
        log.debug("reading columns of %s failed", key, exc_info=True)
        return None


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


def _relation(session: Warehouse, own: str, key: str) -> str:
    """`context.relation(key)`: the asset's own relation where it writes; others where to read."""
    return physical(session, key) if key == own else readable(session, key)
