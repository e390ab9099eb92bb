"""Direct window writes: sqlorch writes a partitioned dbt model's window from its template.

A model with a window template (sqlorch.dbt.templates) needs no dbt start-up for a window:
its template, filled in with the window's bounds, is run as one delete-then-insert of exactly
the window, and its data tests as dbt runs them. The database is handed in as a
`WindowStore` (the DuckDB and PostgreSQL warehouses are); this module never imports the
warehouse.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlorch.core.graph import AssetGraph, AssetNode
    from sqlorch.dbt.datatests import DataTest
    from sqlorch.dbt.manifest import DbtProject
    from sqlorch.dbt.runner import DbtInvoker, InvocationResult
    from sqlorch.dbt.templates import Template

log = logging.getLogger(__name__)


class WindowRejected(Exception):  # noqa: N818 - a rolled-back write, reported as the model's error
    """A blocking data test failed on a window inside its write: the write was rolled back."""


# (database or None for the file's own, schema, table), as dbt names a relation
Relation = tuple[str | None, str, str]


class WindowChunk(Protocol):
    """Contiguous partitions lo..hi of one prefix (the executor's chunk)."""

    @property
    def prefix(self) -> tuple[str, ...]: ...

    @property
    def lo(self) -> int: ...

    @property
    def hi(self) -> int: ...


class WindowStore(Protocol):
    """The database windows are written to: the one dbt builds into (DuckDB, PostgreSQL)."""

    def session(self) -> WindowStore:
        """Return a handle with its own connection."""
        ...

    def relation_exists(self, relation: Relation) -> bool:
        """Whether `relation` exists as a table (not a view)."""
        ...

    def schema_drift(self, relation: Relation, query: str) -> str | None:
        """How `query`'s columns differ from `relation`'s (None when they match)."""
        ...

    def replace_window_sql(
        self,
        relation: Relation,
        queries: list[str],
        where: str,
        params: list[Any],
        audit: Callable[[Any], None] | None = None,
    ) -> int:
        """Replace the rows of `relation` matching `where` with `queries`' rows, atomically.

        `audit` runs inside the transaction on a handle that sees the new rows (it raises to
        roll the write back)."""
        ...

    def execute(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Run `sql` and return all rows."""
        ...

    def close(self) -> None:
        """Release this handle's connection."""
        ...


class DirectWindows:
    """Writes windows of partitioned dbt models from their templates (sqlorch.dbt.templates).

    One per run; called from the executor's dbt thread only (invocations are serialized).
    """

    def __init__(
        self,
        graph: AssetGraph,
        project: DbtProject,
        invoker: DbtInvoker,
        warehouse: WindowStore,
        run_dir: Path,
        errors: tuple[type[BaseException], ...],
        rows_of: Callable[[AssetNode, WindowChunk], tuple[str, list[Any]]],
        same_target: bool = True,
    ) -> None:
        """Write to `warehouse`; a window write raising one of `errors` is that model's error.

        `rows_of` returns the predicate (with parameters) of a chunk's rows in a model's table;
        `same_target`: `warehouse` is the database dbt's target builds into.
        """
        from sqlorch.dbt.templates import TemplateCache

        self.graph = graph
        self.project = project
        self.invoker = invoker
        self.warehouse = warehouse
        self.run_dir = run_dir
        self.errors = errors
        self.rows_of = rows_of
        self.same_target = same_target
        self.cache = TemplateCache(invoker.artifacts_dir / "templates.json")
        # model key -> why dbt writes its windows (shown in the run's events)
        self.reasons: dict[str, str] = {}
        # test unique_id -> (status, message, failures, seconds) of the blocking tests run
        # inside the last `run`'s writes (write-audit-publish)
        self.audited: dict[str, tuple[str, str, int, float]] = {}

    def templates(self, n: int, keys: list[str]) -> dict[str, Template]:
        """The templates of the models among `keys` that have one (compiling missing ones).

        A model without one is left to dbt: it is not eligible (hooks, a contract, a target
        other than the database sqlorch writes to, ...), its table does not exist yet (dbt
        creates it, and compiles `is_incremental()` as it will run), or dbt's SQL for it is
        not a template.
        """
        from sqlorch.dbt.manifest import compress_selection
        from sqlorch.dbt.templates import blocker, compile_templates

        found: dict[str, Template] = {}
        missing: list[AssetNode] = []
        for key in keys:
            self.reasons.pop(key, None)
            node = self.graph.assets[key]
            reason = blocker(node, self.same_target, self.project.hook_count)
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
        self, group: Sequence[tuple[str, WindowChunk]], templates: dict[str, Template]
    ) -> InvocationResult | None:
        """Write each model's chunk as one delete-then-insert transaction, in dependency order.

        Returns dbt-shaped results (statuses by unique_id), or None when a model's query no
        longer matches its table's columns (nothing written: dbt's `on_schema_change` decides).
        """
        from sqlorch.dbt.runner import InvocationResult

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
        self.audited = {}
        try:
            failed: set[str] = set()
            for key, chunk in group:
                node = self.graph.assets[key]
                assert node.partitions is not None
                uid = node.unique_id or ""
                if failed & self.graph.ancestors(key):
                    result.statuses[uid] = "skipped"
                    continue
                where, params = self.rows_of(node, chunk)
                relation = self.relation(node)
                try:
                    drift = session.schema_drift(relation, queries[key][0])
                    if drift:
                        # dbt writes the whole group again (every window write is idempotent)
                        self.reasons[key] = f"its columns changed ({drift})"
                        return None
                    audit = self._audit(key, templates[key])
                    rows = session.replace_window_sql(
                        relation, queries[key], where, params, audit=audit
                    )
                except WindowRejected as exc:
                    failed.add(key)
                    result.success = False
                    result.statuses[uid] = "error"
                    result.messages[uid] = str(exc)
                    continue
                except self.errors as exc:
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

    def _audit(self, key: str, template: Template) -> Callable[[Any], None] | None:
        """The model's blocking (severity error) tests, run inside its window's write.

        A failing (or erroring) one raises `WindowRejected`: the write rolls back, the table
        and every view over it keep their previous rows. Results land in `self.audited`.
        """
        blocking = [t for t in template.tests if t.severity.upper() == "ERROR"]
        if not blocking:
            return None

        def audit(within: Any) -> None:
            bad: list[str] = []
            for test in blocking:
                outcome = self._test_on(within, test)
                self.audited[test.unique_id] = outcome
                if outcome[0] in ("fail", "error"):
                    name = test.unique_id.split(".")[2] if "." in test.unique_id else ""
                    bad.append(f"{name or test.unique_id} ({outcome[1]})")
            if bad:
                raise WindowRejected(
                    f"Blocking test {', '.join(bad)} failed on the new window of {key}. "
                    f"Nothing was published: the write was rolled back, so {key} and every "
                    "view over it keep their previous rows. Fix the data (or the test) and "
                    "run the build again."
                )

        return audit

    def tests_of(self, key: str) -> list[str]:
        """The dbt data tests on model `key` alone (a test of several models stays with dbt)."""
        return [
            uid
            for uid, c in self.graph.checks.items()
            if c.runs_in_dbt and not c.is_unit_test and tuple(c.asset_keys) == (key,)
        ]

    def run_test(self, test: DataTest) -> tuple[str, str, int, float]:
        """Run one dbt data test as dbt would: (status, message, failures, seconds).

        A query error is the test's `error`, as in dbt.
        """
        session = self.warehouse.session()
        try:
            return self._test_on(session, test)
        finally:
            session.close()

    def _test_on(self, session: Any, test: DataTest) -> tuple[str, str, int, float]:
        started = time.perf_counter()
        try:
            row = session.execute(test.query())[0]
        except self.errors as exc:
            return "error", f"Database Error in test {test.unique_id}: {exc}", 0, 0.0
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
    def queries(node: AssetNode, chunk: WindowChunk, template: Template) -> list[str]:
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
