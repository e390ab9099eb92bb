"""Native steps: sqlorch runs dbt's compiled SQL for the dbt nodes it reproduces exactly.

The dbt steps (sqlorch.execute.dbt_steps) hand each segment here first. The models that
sqlorch executes natively (sqlorch.dbt.native decides, per node, and says why not) and
whose upstream is done run as one batch in a thread of their own, with their data tests
after them, each result reported as a dbt node event, so the rest of the executor cannot
tell a native batch from a dbt invocation. What dbt runs waits for the native models
upstream of it; dbt orders the rest as before.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlorch.core.checks import CheckStatus
from sqlorch.events import EventKind
from sqlorch.execute.cancellation import Cancellation
from sqlorch.execute.dbt_steps import Invocations
from sqlorch.execute.messages import DbtDone, DbtEvent
from sqlorch.execute.progress import Progress
from sqlorch.execute.readiness import Readiness
from sqlorch.execute.status import Status

if TYPE_CHECKING:
    from sqlorch.dbt.compiled import CompiledCache
    from sqlorch.dbt.datatests import DataTest
    from sqlorch.dbt.native import Incremental
    from sqlorch.dbt.runner import InvocationResult
    from sqlorch.dbt.seeds import Seed
    from sqlorch.warehouse.base import Warehouse

log = logging.getLogger(__name__)

# models written in one transaction at most (fewer commits; see `_run_batch`)
_GROUP = 64
# native steps from which freeing dbt's parse at once lowers the run's peak memory
_FORGET_COLLECT = 50


class NativeSteps:
    """Decides and runs the native part of each dbt segment. One per run."""

    def __init__(
        self,
        *,
        progress: Progress,
        readiness: Readiness,
        invocations: Invocations,
        warehouse: Warehouse,
        cancellation: Cancellation,
        forced: Mapping[str, str],
        keys: list[str],
    ) -> None:
        from sqlorch.dbt.compiled import CompiledCache
        from sqlorch.dbt.native import blocker, dialect_of
        from sqlorch.execute.native_engines import engine_for

        engine = engine_for(warehouse)
        assert engine is not None, "native execution needs a DuckDB or PostgreSQL warehouse"
        self.engine = engine
        self.progress = progress
        self.readiness = readiness
        self.invocations = invocations
        self.warehouse = warehouse
        self.cancellation = cancellation
        invoker, project = invocations.invoker, invocations.project
        # PostgreSQL: the warehouse is opened from the dbt target itself
        same_file = engine.name == "postgres" or (
            invoker.duckdb_path is not None
            and Path(getattr(warehouse, "path", "")).resolve() == invoker.duckdb_path
        )
        graph = progress.graph
        dialect = dialect_of(engine.name, invoker.project_dir)
        #: asset key -> "" (native) or why dbt runs it, for every unpartitioned dbt step
        self.reasons: dict[str, str] = {
            key: blocker(
                graph.assets[key],
                same_file=same_file,
                hook_count=project.hook_count,
                forced=forced,
                dialect=dialect,
            )
            for key in keys
        }
        self.cache: CompiledCache = CompiledCache(invoker.artifacts_dir / "compiled.json")
        self.sql: dict[str, str] = {}
        self.tests: dict[str, DataTest] = {}
        self.test_reasons: dict[str, str] = {}
        #: incremental models: their configuration, and the mode their SQL is compiled for
        self.specs: dict[str, Incremental] = {}
        self.modes: dict[str, str] = {}
        #: seeds: their configuration and columns
        self.seeds: dict[str, tuple[Seed, list[tuple[str, str]]]] = {}
        self._ready = False

    @property
    def native(self) -> set[str]:
        """The steps sqlorch executes itself."""
        return {k for k, r in self.reasons.items() if not r}

    # ---------------------------------------------------------------- compiling

    def prepare(self) -> None:
        """Read each native step's compiled SQL, having dbt compile what is not cached.

        One `dbt compile` of exactly the missing models and tests; nothing of dbt is
        imported when every entry is cached. A model dbt cannot compile goes back to dbt.
        """
        if self._ready:
            return
        self._ready = True
        from sqlorch.dbt.native import test_blocker

        graph = self.progress.graph
        session = self.warehouse.session()
        try:
            database = str(session.execute("select current_database()")[0][0]).lower()
            catalog = self.engine.catalog(session.connection)
        finally:
            session.close()
        self._modes(catalog)
        for key in self.native:
            relation = tuple(graph.assets[key].metadata["sqlorch_relation"])
            if catalog.kind(relation) == "materialized_view":
                self.reasons[key] = "dbt: the relation is a materialized view"
                continue
            other = relation[0]
            if other is not None and str(other).lower() != database:
                self.reasons[key] = f"dbt: writes to database {other!r}, not the target's file"
        missing = []
        for key in sorted(self.native):
            if "sqlorch_seed" in graph.assets[key].metadata:
                self._seed(key)
                continue
            sql = self.cache.model(graph.assets[key], self.modes.get(key, ""))
            if sql is None:
                missing.append(graph.assets[key])
            elif sql:
                self.sql[key] = sql
            else:
                self.reasons[key] = "dbt: dbt could not compile it"
        tests_missing = []
        for uid, check in self.progress.checks.items():
            if not check.runs_in_dbt:
                continue
            reason = test_blocker(check, graph.assets)
            cached = None if reason else self.cache.test(check, graph.assets)
            if reason or isinstance(cached, str):
                self.test_reasons[uid] = reason or str(cached)
            elif cached is None:
                tests_missing.append(uid)
            else:
                self.tests[uid] = cached
        if missing or tests_missing:
            self._compile(missing, tests_missing)
        self.cache.save()
        plan = self.progress.plan
        if not any(self.reasons.values()) and not self.test_reasons:
            dbt_steps = sum(1 for s in plan.steps if s.kind.is_dbt)
            if dbt_steps == len(self.reasons):  # no partition windows either
                # dbt is done in this run: free its parse (collected before a big run only)
                self.invocations.invoker.forget(collect=len(self.native) >= _FORGET_COLLECT)

    def _seed(self, key: str) -> None:
        """A seed's columns: cached for its file and configuration, or inferred as dbt does."""
        from sqlorch.dbt.seeds import Seed

        node = self.progress.graph.assets[key]
        facts = node.metadata.get("sqlorch_seed")
        seed = Seed.of(facts) if facts else None
        inputs = seed.inputs() if seed else None
        if seed is None or inputs is None:
            self.reasons[key] = "dbt: the seed's file cannot be read"
            return
        columns = self.cache.seed(key, inputs)
        if columns is None:
            try:
                columns = seed.columns()
            except (ValueError, OSError) as exc:
                log.debug("agate could not read %s", seed.path, exc_info=True)
                self.reasons[key] = f"dbt: agate could not read the seed ({exc})"
                return
            self.cache.put_seed(key, inputs, columns)
        self.seeds[key] = (seed, columns)
        self.sql[key] = ""

    def _modes(self, catalog: Any) -> None:
        """Each native incremental model's `is_incremental()`, from its relation now."""
        from sqlorch.dbt.native import Incremental

        flag = self.invocations.invoker.full_refresh
        for key in self.native:
            node = self.progress.graph.assets[key]
            facts = node.metadata.get("sqlorch_incremental")
            if node.materialized != "incremental" or not facts:
                continue
            spec = Incremental.of(facts)
            self.specs[key] = spec
            existing = catalog.kind(tuple(node.metadata["sqlorch_relation"]))
            self.modes[key] = "incremental" if spec.is_incremental(existing, flag) else "full"

    def _compile(self, models: list[Any], tests: list[str]) -> None:
        from sqlorch.dbt.compiled import compile_nodes
        from sqlorch.dbt.manifest import compress_selection

        progress, inv = self.progress, self.invocations
        graph = progress.graph
        chosen = {m.unique_id or "" for m in models} | set(tests)
        selectors = compress_selection(chosen, inv.project.runnable_fqns, frozenset())
        inv.count += 1
        n = inv.count
        progress.emit(
            EventKind.DBT_INVOCATION_STARTED,
            data={"invocation": n, "compile": True, "nodes": len(models), "checks": len(tests)},
        )
        started = time.perf_counter()
        try:
            sqls, compiled_tests = compile_nodes(
                inv.invoker, models, tests, selectors, inv.run_dir / f"dbt-{n}"
            )
            error = None
        except Exception as exc:  # noqa: BLE001 - dbt then runs these nodes and says why
            log.debug("compiling for native execution failed", exc_info=True)
            sqls, compiled_tests, error = {}, {}, str(exc)
        for m in models:
            sql = sqls.get(m.key, "")
            if error is None:
                self.cache.put_model(m, sql, self.modes.get(m.key, ""))
            if sql:
                self.sql[m.key] = sql
            else:
                self.reasons[m.key] = "dbt: dbt could not compile it"
        for uid in tests:
            value = compiled_tests.get(uid, "dbt: dbt did not compile it")
            if error is None:
                self.cache.put_test(progress.checks[uid], graph.assets, value)
            if isinstance(value, str):
                self.test_reasons[uid] = value
            else:
                self.tests[uid] = value
        progress.emit(
            EventKind.DBT_INVOCATION_FINISHED,
            level="info" if error is None else "warning",
            data={
                "invocation": n,
                "compile": True,
                "success": error is None,
                "seconds": round(time.perf_counter() - started, 3),
                "error": error,
                "compiled": sorted(self.sql.keys() & {m.key for m in models}),
            },
        )

    # ---------------------------------------------------------------- choosing

    def _pending_native(self) -> set[str]:
        status = self.progress.status
        return {k for k in self.native if status[k] is Status.PENDING}

    def take(self, steps: list[str]) -> tuple[list[str], list[str]]:
        """The native steps of a segment that can run now, and the data tests to run natively.

        A step joins when each parent succeeded or joins before it, and each blocking check
        of its parents passed or runs natively in the batch before it.
        """
        self.prepare()
        progress = self.progress
        graph, status = progress.graph, progress.status
        native = self.native
        taken: list[str] = []
        chosen: set[str] = set()
        for key in graph.topological(k for k in steps if k in native):
            if not all(
                status.get(p, Status.SUCCEEDED) is Status.SUCCEEDED or p in chosen
                for p in graph.parents(key)
            ):
                continue
            if not all(
                not progress.check_status[c].is_open
                or (c in self.tests and set(progress.checks[c].asset_keys) <= self._done(chosen))
                for c in self.readiness.awaited_checks(key)
            ):
                continue
            taken.append(key)
            chosen.add(key)
        checks = self.due_tests(chosen)
        return taken, checks

    def _done(self, chosen: set[str]) -> set[str]:
        status = self.progress.status
        return chosen | {k for k, s in status.items() if s is Status.SUCCEEDED}

    def due_tests(self, chosen: set[str]) -> list[str]:
        """The pending data tests sqlorch runs whose models succeeded or are `chosen`."""
        progress = self.progress
        done = self._done(chosen)
        out = []
        for uid in self.tests:
            check = progress.checks[uid]
            if (
                progress.check_status[uid] is CheckStatus.PENDING
                and uid not in progress.check_blocked
                and all(
                    k in done or progress.status.get(k, Status.SUCCEEDED) is Status.SUCCEEDED
                    for k in check.asset_keys
                )
            ):
                out.append(uid)
        return out

    def for_dbt(self, steps: list[str], checks: list[str]) -> tuple[list[str], list[str]]:
        """The part of a segment dbt runs: nothing downstream of a native step still to run.

        A test goes with dbt when sqlorch cannot run it, or when it tests a node of this
        dbt invocation (dbt then gates that node's downstream on it, as it should).
        """
        graph = self.progress.graph
        waiting = self._pending_native()
        native = self.native
        dbt_steps = [
            k for k in steps if k not in native and not (waiting and graph.ancestors(k) & waiting)
        ]
        mine = set(dbt_steps)
        dbt_checks = []
        for uid in checks:
            keys = set(self.progress.checks[uid].asset_keys)
            if keys & waiting:
                continue
            if keys & mine or uid not in self.tests:
                dbt_checks.append(uid)
        return dbt_steps, dbt_checks

    # ---------------------------------------------------------------- running

    def launch(self, steps: list[str]) -> bool:
        """Start a native batch of the segment's ready native steps; False when none."""
        taken, checks = self.take(steps)
        if not taken and not checks:
            return False
        progress = self.progress
        for k in taken:
            progress.status[k] = Status.RUNNING
        for c in checks:
            progress.check_status[c] = CheckStatus.RUNNING
        data = {"native": True, "nodes": len(taken), "checks": len(checks)}
        n, _ = self.invocations.begin(data, progress)
        thread = threading.Thread(
            target=self._run, args=(taken, checks), name=f"sqlorch-native-{n}", daemon=True
        )
        thread.start()
        return True

    def _run(self, steps: list[str], checks: list[str]) -> None:
        """Run a batch (in its own thread); every result goes to the inbox as a dbt event."""
        from sqlorch.dbt.runner import InvocationResult

        result = InvocationResult(
            success=True, args=["sqlorch: native execution of dbt's compiled SQL", *steps]
        )
        started = time.perf_counter()
        try:
            self._run_batch(steps, checks, result)
        except Exception as exc:  # noqa: BLE001 - a crash fails the batch, not the run
            log.debug("native batch crashed", exc_info=True)
            result.success = False
            result.error = f"{type(exc).__name__}: {exc}"
        result.seconds = time.perf_counter() - started
        self.invocations.inbox.put(DbtDone(steps, checks, result))

    def _run_batch(self, steps: list[str], checks: list[str], result: InvocationResult) -> None:
        """Write the steps in groups, one transaction each, and run each group's tests after it.

        A group ends after a model with a blocking test still to run, so a failing test stops
        its downstream before it is written, as in dbt. A group whose transaction fails is
        written again model by model, so each model fails or succeeds on its own.
        """
        graph = self.progress.graph
        pending_tests = list(checks)
        failed: set[str] = set()  # models that failed or were skipped
        gated: set[str] = set()  # models a blocking test failed on: their downstream skips
        done: set[str] = set()
        session = self.warehouse.session()
        con = session.connection
        try:
            catalog = self.engine.catalog(con)
            queue = list(steps)
            while queue:
                group: list[str] = []
                while queue and len(group) < _GROUP:
                    key = queue.pop(0)
                    uid = graph.assets[key].unique_id or ""
                    stopped = failed | gated
                    if self.cancellation.cancelled or (stopped and stopped & graph.ancestors(key)):
                        failed.add(key)
                        result.statuses[uid] = "skipped"
                        result.messages[uid] = ""
                        continue
                    group.append(key)
                    if self._has_blocking_test(key, pending_tests):
                        break
                if group:
                    self._write_group(con, catalog, group, result, done, failed)
                stops = (failed, gated)
                pending_tests = self._run_tests(con, pending_tests, done, stops, result)
            # tests of models built before this batch (`sqlorch check`, a later test)
            pending_tests = self._run_tests(con, pending_tests, done, (failed, gated), result)
        finally:
            session.close()
        for uid in pending_tests:
            result.statuses[uid] = "skipped"

    def _has_blocking_test(self, key: str, tests: list[str]) -> bool:
        checks = self.progress.checks
        return any(checks[c].is_blocking and key in checks[c].asset_keys for c in tests)

    def _write_group(
        self,
        con: Any,
        catalog: Any,
        group: list[str],
        result: InvocationResult,
        done: set[str],
        failed: set[str],
    ) -> None:
        """Write a group in one transaction (model by model if that fails); report each."""
        from sqlorch.dbt.runner import DbtNodeEvent, DbtPhase
        from sqlorch.execute.native_writes import Write

        materialize_many, errors = self.engine.materialize_many, self.engine.errors

        graph, inbox = self.progress.graph, self.invocations.inbox
        nodes = [graph.assets[k] for k in group]
        for node in nodes:
            inbox.put(DbtEvent(DbtNodeEvent(node.unique_id or "", DbtPhase.STARTED)))
        flag = self.invocations.invoker.full_refresh
        writes = [
            Write(
                tuple(n.metadata["sqlorch_relation"]),
                str(n.materialized),
                self.sql[n.key],
                incremental=self.specs.get(n.key),
                seed=self.seeds.get(n.key),
                full_refresh=flag,
                compiled_incremental=self.modes.get(n.key) == "incremental",
            )
            for n in nodes
        ]
        outcomes: list[tuple[str, str, int | None, float]] = []
        try:
            wrote = materialize_many(con, writes, catalog)
            outcomes = [("success", "OK", rows, s) for rows, s in wrote]
        except errors:
            for node, write in zip(nodes, writes, strict=True):
                if failed and failed & graph.ancestors(node.key):
                    outcomes.append(("skipped", "", None, 0.0))
                    continue
                try:
                    rows, seconds = materialize_many(con, [write], catalog)[0]
                    outcomes.append(("success", "OK", rows, seconds))
                except errors as exc:
                    text = f"Runtime Error in model {node.name} ({node.file})\n  {exc}"
                    outcomes.append(("error", text, None, 0.0))
                    failed.add(node.key)
        for node, (status, message, rows, seconds) in zip(nodes, outcomes, strict=True):
            uid = node.unique_id or ""
            result.statuses[uid] = status
            result.messages[uid] = message
            if status == "success":
                done.add(node.key)
            else:
                failed.add(node.key)
                result.success = result.success and status != "error"
            if status == "skipped":
                continue
            ev = DbtNodeEvent(
                uid,
                DbtPhase.FINISHED,
                status=status,
                message=message,
                rows_affected=rows,
                execution_time=seconds,
                adapter_response={"native": True},
                timing={"execute": round(seconds, 4)},
            )
            inbox.put(DbtEvent(ev))

    def _run_tests(
        self,
        con: Any,
        uids: list[str],
        done: set[str],
        stops: tuple[set[str], set[str]],
        result: InvocationResult,
    ) -> list[str]:
        """Run the tests whose models are all built; a failing blocking test stops downstream.

        Returns the tests still waiting for their models.
        """
        from sqlorch.dbt.runner import DbtNodeEvent, DbtPhase

        run_test = self.engine.run_test

        progress = self.progress
        status = progress.status
        failed, gated = stops
        left = []
        for uid in uids:
            check = progress.checks[uid]
            keys = set(check.asset_keys)
            if keys & failed:
                result.statuses[uid] = "skipped"
                continue
            if not all(
                k in done or status.get(k, Status.SUCCEEDED) is Status.SUCCEEDED for k in keys
            ):
                left.append(uid)
                continue
            test = self.tests[uid]
            try:
                st, message, failures, seconds = run_test(con, test)
            except self.engine.errors as exc:
                st, failures, seconds = "error", 0, 0.0
                message = f"Database Error in test {check.name} ({check.file})\n  {exc}"
            result.statuses[uid] = st
            result.messages[uid] = message
            if st in ("fail", "error"):
                result.success = result.success and st != "error"
                if check.is_blocking:
                    gated.update(keys)
            ev = DbtNodeEvent(
                uid,
                DbtPhase.FINISHED,
                status=st,
                message=message,
                failures=failures,
                execution_time=seconds,
            )
            self.invocations.inbox.put(DbtEvent(ev))
        return left
