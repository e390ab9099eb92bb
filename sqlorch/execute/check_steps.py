"""Check steps: run the checks sqlorch runs itself (`@check` functions, the built-ins), per
asset or per partition run, and record every check's result (dbt's tests included).
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from sqlorch.api.checks import CheckContext, CheckDefinition
from sqlorch.core.checks import CheckResult, CheckStatus, Observed, as_datetime, run_builtin
from sqlorch.core.graph import AssetKind, CheckKind, CheckNode
from sqlorch.core.partitions.definitions import PartitionsDefinition
from sqlorch.events import EventKind
from sqlorch.execute.chunks import Chunk, PartitionRuns, context_of
from sqlorch.execute.messages import CheckDone, CheckOutcome, ChunkCheckDone, Inbox, logger_for
from sqlorch.execute.policies import RunPolicies
from sqlorch.execute.pools import Slots
from sqlorch.execute.progress import Progress
from sqlorch.execute.status import Status
from sqlorch.warehouse.base import Warehouse
from sqlorch.warehouse.environment import physical
from sqlorch.warehouse.sql import filter_sql, quote_key


class CheckSteps:
    """Runs `@check` and built-in checks in workers and records how every check ended."""

    def __init__(
        self,
        *,
        progress: Progress,
        partitions: PartitionRuns,
        slots: Slots,
        warehouse: Warehouse | None,
        policies: RunPolicies,
        inbox: Inbox,
    ) -> None:
        self.progress = progress
        self.partitions = partitions
        self.slots = slots
        self.warehouse = warehouse
        self.policies = policies
        self.inbox = inbox
        # checks sqlorch runs itself (@check, built-ins)
        self.side = [u for u, c in progress.checks.items() if not c.runs_in_dbt]
        # the blocking ones of each Python asset run inside its write (write-audit-publish):
        # of a partitioned asset, its Python checks, on each partition run's rows
        self.audited: dict[str, list[str]] = {}
        for uid in self.side:
            check = progress.checks[uid]
            key = check.asset_keys[0]
            node = progress.graph.assets.get(key)
            if node is None or not check.is_blocking or node.kind is not AssetKind.PYTHON:
                continue
            if node.partitions is not None and uid not in partitions.per_partition:
                continue  # a built-in check of the whole partitioned table runs at its end
            self.audited.setdefault(key, []).append(uid)

    def audit(
        self, key: str, chunk: Chunk | None, session: Warehouse
    ) -> list[tuple[str, CheckOutcome]]:
        """Run `key`'s blocking checks on `session`, inside the write of its new data.

        Returns each check's outcome (a raising check is `error`); the caller rolls the write
        back when one did not pass.
        """
        out: list[tuple[str, CheckOutcome]] = []
        definition = self.progress.graph.assets[key].partitions
        for uid in self.audited.get(key, ()):
            check = self.progress.checks[uid]

            def run(s: Warehouse, logger: logging.Logger, check: CheckNode = check) -> CheckResult:
                if chunk is not None and definition is not None:
                    where, params = filter_sql(definition, chunk.prefix, chunk.lo, chunk.hi)
                    ctx = CheckContext(
                        asset=key,
                        run_id=self.progress.run_id,
                        warehouse=s,
                        log=logger,
                        table=quote_key(physical(s, key)),
                        partition=context_of(definition, chunk),
                        partition_filter=where or None,
                        partition_params=params,
                    )
                    return run_python_check(self.policies.python_checks[check.unique_id], ctx)
                current = None
                if check.kind != CheckKind.PYTHON:
                    cols = s.table_columns([key]).get(key) or []
                    current = Observed(
                        s.row_counts([key]).get(key),
                        [(c.name, c.type) for c in cols],
                        self.policies.now().strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                    )
                run_id = self.progress.run_id
                return run_side_check(check, self.policies, s, run_id, logger, current)

            out.append((uid, self._outcome(uid, key, run, session)))
        return out

    def launch(self, pool: ThreadPoolExecutor) -> None:
        """Start the @check and built-in checks whose assets are materialized (or observed)."""
        progress, slots = self.progress, self.slots
        queued = self.partitions.queued_checks
        while queued and slots.free:
            uid, key, chunk = queued.pop(0)
            slots.running += 1
            pool.submit(self._run_chunk_check, uid, key, chunk)
        for uid in self.side:
            if not slots.free:
                break
            if progress.check_status[uid] is not CheckStatus.PENDING:
                continue
            if uid in self.partitions.per_partition:
                continue  # runs after each partition run; its status is set at the end
            keys = progress.checks[uid].asset_keys
            if not all(
                k not in progress.status
                or (progress.status[k] is Status.SUCCEEDED and k in progress.observed)
                for k in keys
            ):
                continue
            progress.check_status[uid] = CheckStatus.RUNNING
            slots.running += 1
            pool.submit(self._run_side_check, uid)

    def _run_side_check(self, uid: str) -> None:
        """Run one @check or built-in check in a worker; its result goes to the inbox."""
        check = self.progress.checks[uid]
        key = check.asset_keys[0]
        current = self.progress.observed.get(key)
        partitions = self.progress.graph.assets[key].partitions
        run_id = self.progress.run_id

        def run(session: Warehouse, logger: logging.Logger) -> CheckResult:
            return run_side_check(
                check, self.policies, session, run_id, logger, current, partitions
            )

        self.inbox.put(CheckDone(uid, self._outcome(uid, key, run)))

    def _run_chunk_check(self, uid: str, key: str, chunk: Chunk) -> None:
        """Run a Python check on the rows of one partition run of its asset."""
        definition = self.progress.graph.assets[key].partitions
        assert definition is not None

        def run(session: Warehouse, logger: logging.Logger) -> CheckResult:
            where, params = filter_sql(definition, chunk.prefix, chunk.lo, chunk.hi)
            ctx = CheckContext(
                asset=key,
                run_id=self.progress.run_id,
                warehouse=session,
                log=logger,
                table=quote_key(physical(session, key)),
                partition=context_of(definition, chunk),
                partition_filter=where or None,
                partition_params=params,
            )
            return run_python_check(self.policies.python_checks[uid], ctx)

        self.inbox.put(ChunkCheckDone(key, uid, chunk, self._outcome(uid, key, run)))

    def _outcome(
        self,
        uid: str,
        key: str,
        run: Callable[[Warehouse, logging.Logger], CheckResult],
        within: Warehouse | None = None,
    ) -> CheckOutcome:
        """Run a check sqlorch executes itself.

        `run` gets a warehouse session (`within`, a write's, or a new one) and the check's
        logger (its lines go to the run's events); a failed blocking check is `fail`, a failed
        non-blocking one `warn`, a raising one `error`.
        """
        check = self.progress.checks[uid]
        logger = logger_for(f"sqlorch.check.{check.name}", self.inbox, key)
        session = None
        started = time.perf_counter()
        try:
            if within is not None:
                result = run(within, logger)
            elif self.warehouse is None:
                raise RuntimeError(
                    "sqlorch runs Python and built-in checks through a warehouse it can open; "
                    "this target's warehouse cannot be queried by sqlorch"
                )
            else:
                session = self.warehouse.session()
                result = run(session, logger)
            if result.passed:
                status = CheckStatus.PASS
            else:
                status = CheckStatus.FAIL if check.is_blocking else CheckStatus.WARN
            message, metadata = result.message, dict(result.metadata)
        except Exception as exc:  # noqa: BLE001 - a raising check is an errored check
            status = CheckStatus.ERROR
            message = _check_error(check, exc)
            metadata = {"traceback": traceback.format_exc()}
        finally:
            if session is not None:
                session.close()
        metadata["duration_s"] = round(time.perf_counter() - started, 4)
        return CheckOutcome(status, message, metadata)

    def chunk_check_done(
        self,
        key: str,
        uid: str,
        chunk: Chunk,
        outcome: CheckOutcome,
        *,
        rolled_back: bool = False,
    ) -> None:
        """Record one partition run's check; a blocking failure fails those partitions only.

        `rolled_back`: the check ran inside the write, which its failure rolled back (the
        partition run's own failure says so: its partitions are not failed twice).
        """
        check = self.progress.checks[uid]
        definition = self.progress.graph.assets[key].partitions
        assert definition is not None
        status, message = outcome.status, outcome.message
        first, last = chunk.span(definition)
        span = first if first == last else f"{first}..{last}"
        data = {
            "check": check.name,
            "unique_id": uid,
            "status": status.value,
            "severity": check.severity,
            "blocking": check.is_blocking,
            "check_kind": str(check.kind),
            "assets": [key],
            "partition": span,
            "file": check.file,
            "line": check.line,
            "metadata": outcome.metadata,
        }
        text = f"{check.name} [{span}]: {message}" if message else f"{check.name} [{span}]"
        emit = self.progress.emit
        chunk_error = None
        if status is CheckStatus.PASS:
            emit(EventKind.CHECK_PASSED, key, f"{check.name} [{span}]", data=data)
        elif status is CheckStatus.WARN:
            emit(EventKind.CHECK_WARNED, key, text, level="warning", data=data)
        else:
            emit(EventKind.CHECK_FAILED, key, text, level="error", data=data)
            if not rolled_back and (check.is_blocking or status is CheckStatus.ERROR):
                chunk_error = f"check {text}"
                emit(
                    EventKind.PARTITIONS_FAILED,
                    key,
                    chunk_error,
                    level="error",
                    data={"partitions": [[first, last]], "check": check.name},
                )
        self.partitions.check_ended(uid, key, status, chunk_error)

    def record(
        self,
        uid: str,
        status: CheckStatus,
        message: str,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Record how check `uid` ended; a blocking failure skips what waits downstream."""
        progress = self.progress
        check = progress.checks[uid]
        progress.check_status[uid] = status
        target = check.asset_keys[0] if check.asset_keys else None
        data = {
            "check": check.name,
            "unique_id": uid,
            "status": status.value,
            "severity": check.severity,
            "blocking": check.is_blocking or check.is_unit_test,
            "check_kind": "unit_test" if check.is_unit_test else str(check.kind),
            "assets": list(check.asset_keys),
            "partition": None,
            "file": check.file,
            "line": check.line,
            "metadata": metadata or {},
        }
        if status in (CheckStatus.PASS, CheckStatus.SUCCESS):
            progress.emit(EventKind.CHECK_PASSED, target, check.name, data=data)
            return
        if status is CheckStatus.WARN:
            text = f"{check.name}: {message}"
            progress.emit(EventKind.CHECK_WARNED, target, text, level="warning", data=data)
            return
        if status is CheckStatus.SKIPPED:
            if any(progress.is_retrying(k) for k in check.asset_keys):
                progress.check_status[uid] = CheckStatus.PENDING  # runs again with the retry
            return
        text = f"{check.name}: {message}"
        progress.emit(EventKind.CHECK_FAILED, target, text, level="error", data=data)
        if check.is_blocking or check.is_unit_test:
            for k in check.asset_keys:
                for d in progress.graph.descendants(k):
                    if progress.status.get(d) is Status.PENDING:
                        progress.skip(d, f"check {check.name} on {k} failed")


def run_python_check(defn: CheckDefinition, ctx: CheckContext) -> CheckResult:
    """Call a `@check` function with the arguments it asks for and read its result.

    Raises:
        Exception: whatever the function raises (the caller records it as an error).
    """
    kwargs: dict[str, Any] = {}
    for param in defn.params:
        if param == "context":
            kwargs["context"] = ctx
        elif param == "connection":
            kwargs["connection"] = ctx.connection
        elif param == "rows":
            rows = ctx.rows()
            kwargs["rows"] = rows.read_all() if hasattr(rows, "read_all") else rows
    value = defn.fn(**kwargs)
    if isinstance(value, CheckResult):
        return value
    if isinstance(value, bool):
        return CheckResult(passed=value)
    raise TypeError(
        f"returned {type(value).__name__} ({value!r:.60}); a check returns True/False or "
        "sqlorch.CheckResult(passed=..., metadata={...})"
    )


def run_side_check(
    check: CheckNode,
    policies: RunPolicies,
    session: Warehouse,
    run_id: str,
    log: logging.Logger,
    current: Observed | None,
    partitions: PartitionsDefinition | None = None,
) -> CheckResult:
    """Run a `@check` or built-in check of `check.asset_keys[0]` on a warehouse session.

    Args:
        current: the asset's materialization in this run (None: an observed source, read
            from the warehouse now).

    Raises:
        Exception: what a `@check` function raises, or a warehouse error.
    """
    key = check.asset_keys[0]
    if check.kind == CheckKind.PYTHON:
        ctx = CheckContext(
            asset=key,
            run_id=run_id,
            warehouse=session,
            log=log,
            table=quote_key(physical(session, key)),
        )
        return run_python_check(policies.python_checks[check.unique_id], ctx)
    if current is None:
        cols = session.table_columns([key]).get(key)
        if cols is None:
            return CheckResult(False, f"{key} does not exist in the warehouse")
        rows = session.row_counts([key]).get(key)
        before = policies.previous.get(key)
        # as it is now; dated by its last materialization (none for an observed source)
        current = Observed(
            rows, [(c.name, c.type) for c in cols], before.materialized_at if before else None
        )

    def newest_value(column: str) -> datetime | None:
        ident = '"' + column.replace('"', '""') + '"'
        value = session.execute(f"SELECT max({ident}) FROM {quote_key(physical(session, key))}")
        return as_datetime(value[0][0] if value else None)

    now = policies.now()
    if check.config["type"] == "schema_change" and key in policies.accept_schema:
        result = run_builtin(check.config, key, current, policies.previous.get(key), now)
        if not result.passed:
            meta = {**result.metadata, "accepted": result.message}
            return CheckResult(True, f"accepted (--accept-schema): {result.message}", meta)
        return result
    if check.config["type"] == "freshness" and partitions is not None:
        latest = latest_partition_present(partitions, session, key, now)
        if not latest.passed or "max_age_s" not in check.config:
            return latest
    return run_builtin(check.config, key, current, policies.previous.get(key), now, newest_value)


def latest_partition_present(
    definition: PartitionsDefinition, session: Warehouse, key: str, now: datetime
) -> CheckResult:
    """Pass when the table holds rows of the latest complete partition (of every prefix)."""
    from sqlorch.warehouse.sql import filter_sql

    n = definition.count(now)
    if n <= 0:
        return CheckResult(True, "no partition is complete yet")
    missing: list[str] = []
    for prefix in definition.prefixes():
        where, params = filter_sql(definition, prefix, n - 1, n - 1)
        if not where:
            return CheckResult(
                False,
                f"{key} declares no partition column, so the latest partition cannot be looked "
                "up in its table; give the partitions a `column` or the check a `max_age`",
            )
        table = quote_key(physical(session, key))
        row = session.execute(f"SELECT count(*) FROM {table} WHERE {where}", params)
        if not row or not row[0][0]:
            missing.append(definition.key(prefix, n - 1))
    latest = definition.key(definition.prefixes()[0], n - 1)
    meta = {"latest_partition": latest, "missing": missing}
    if missing:
        return CheckResult(
            False, f"the latest complete partition is missing: {', '.join(missing)}", meta
        )
    return CheckResult(True, "", meta)


def _check_error(check: CheckNode, exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = ""
    if check.file:
        mine = [f for f in frames if f.filename.endswith(check.file)]
        if mine:
            where = f" at {check.file}:{mine[-1].lineno}"
    return f"check {check.name!r} raised {type(exc).__name__}{where}: {exc}"
