"""The warm compiler of `sqlorch dev`: parse and compile on file change, ahead of the build.

A long-lived process imports dbt once. When a file of the dbt project changes it loads the
project again (dbt's partial parse, in this process: the manifest cache is written) and has
dbt compile, in one in-process invocation, exactly the natively executed models and data
tests whose compiled SQL is missing or stale (compiled.json). The next `sqlorch build` then
finds both caches current and imports no dbt. It holds the hand-off lock
(sqlorch.dbt.handoff) while it works, so a build started meanwhile waits for it rather than
reading half of its work or parsing the same change a second time.

Incremental models, whose compiled SQL depends on the warehouse (`is_incremental()`), and
seeds (no SQL) are left to the build.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlorch.settings import Settings

if TYPE_CHECKING:
    from sqlorch.core.graph import AssetNode
    from sqlorch.load.project import Project

log = logging.getLogger(__name__)

Report = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Refresh:
    """What one refresh did."""

    parsed: bool
    compiled_models: tuple[str, ...]
    compiled_tests: int
    seconds: float
    error: str | None = None


class Precompiler:
    """Keeps one project's manifest cache and compiled SQL current while it runs."""

    def __init__(self, settings: Settings, *, interval: float = 0.1, report: Report | None = None):
        from sqlorch.dbt.handoff import WarmLock

        self.settings = settings
        self.interval = interval
        self.report = report or (lambda _text: None)
        self.lock = WarmLock(settings.state_dir / "dbt")

    def announce(self) -> None:
        """Say builds should wait for this process (before other processes start loading)."""
        self.lock.announce()

    def run(self, stop: threading.Event) -> None:
        """Refresh now and after every change to the project's files, until `stop` is set."""
        self.announce()
        seen: object = None
        try:
            while not stop.is_set():
                now = self._fingerprint()
                if now != seen:
                    with self.lock.busy():
                        import dbt.cli.main  # noqa: F401 - warm: imported once, the first time

                        done = self.refresh()
                    seen = now  # taken before the refresh: an edit during it shows next time
                    self._say(done)
                stop.wait(self.interval)
        finally:
            self.lock.withdraw()

    def refresh(self) -> Refresh:
        """Load the project (parsing what changed) and compile what is not cached."""
        from sqlorch.errors import SqlorchError
        from sqlorch.load.project import load_project

        started = time.perf_counter()
        try:
            project = load_project(self.settings)
            parsed = project.invoker.manifest is not None
            try:
                models, tests = compile_stale(project, self.report)
            finally:
                # never keep the warehouse file open between changes: builds write to it
                project.invoker.release()
        except SqlorchError as exc:  # a half-edited file: the build reports it, in full
            return Refresh(False, (), 0, time.perf_counter() - started, exc.message)
        except Exception as exc:  # noqa: BLE001 - the next change is tried again; builds
            # that find nothing current parse and compile themselves
            log.debug("warm refresh failed", exc_info=True)
            return Refresh(False, (), 0, time.perf_counter() - started, f"{exc!r}")
        return Refresh(parsed, models, tests, time.perf_counter() - started)

    def _fingerprint(self) -> object:
        """The stats of every file a parse reads (changes when one is edited, added, removed)."""
        from sqlorch.dbt.cache import input_dirs, scan
        from sqlorch.dbt.profiles import find_profiles_dir, read_project_file
        from sqlorch.errors import SqlorchError

        project_dir = self.settings.project_dir
        try:
            dirs = input_dirs(project_dir, read_project_file(project_dir))
        except SqlorchError:
            dirs = []
        profiles = find_profiles_dir(self.settings.profiles_dir) / "profiles.yml"
        return scan(project_dir, dirs, [profiles])

    def _say(self, done: Refresh) -> None:
        if done.error:
            self.report(f"warm compile: the project does not load: {done.error}")
        elif done.compiled_models or done.compiled_tests:
            self.report(
                f"warm compile: {len(done.compiled_models)} model(s) and {done.compiled_tests} "
                f"test(s) compiled in {done.seconds:.2f}s"
                + (f" ({', '.join(done.compiled_models[:5])})" if done.compiled_models else "")
            )


def compile_stale(project: Project, report: Report) -> tuple[tuple[str, ...], int]:
    """Compile the native models and data tests whose cached SQL is missing or stale.

    The same entries a build reads (sqlorch.execute.native_steps), in one dbt invocation;
    returns (the models compiled, how many tests).
    """
    from sqlorch.app.execution import execution_settings
    from sqlorch.dbt.compiled import CompiledCache, compile_nodes
    from sqlorch.dbt.manifest import compress_selection
    from sqlorch.dbt.native import blocker, test_blocker
    from sqlorch.lineage.service import after_run

    native_on, forced = execution_settings(project)
    invoker, graph = project.invoker, project.graph
    if not native_on or invoker.duckdb_path is None:
        return (), 0
    same_file = project.target.type == "duckdb"
    cache = CompiledCache(invoker.artifacts_dir / "compiled.json")
    models: list[AssetNode] = []
    for node in graph.assets.values():
        if not node.kind.is_dbt or node.materialized == "incremental":
            continue  # an incremental model's SQL depends on its relation: the build's
        if "sqlorch_seed" in node.metadata:
            continue  # a seed has no SQL: the build reads its file
        why = blocker(node, same_file=same_file, hook_count=project.dbt.hook_count, forced=forced)
        if not why and cache.model(node) is None:
            models.append(node)
    tests = [
        uid
        for uid, check in graph.checks.items()
        if check.runs_in_dbt
        and not test_blocker(check, graph.assets)
        and cache.test(check, graph.assets) is None
    ]
    if not models and not tests:
        return (), 0
    chosen = {m.unique_id or "" for m in models} | set(tests)
    selectors = compress_selection(chosen, project.dbt.runnable_fqns, frozenset())
    run_dir = Path(invoker.artifacts_dir) / "warm"
    shutil.rmtree(run_dir, ignore_errors=True)
    sqls, compiled_tests = compile_nodes(invoker, models, tests, selectors, run_dir / "compile")
    for m in models:
        cache.put_model(m, sqls.get(m.key, ""))
    for uid in tests:
        value = compiled_tests.get(uid, "dbt: dbt did not compile it")
        cache.put_test(graph.checks[uid], graph.assets, value)
    cache.save()
    # lineage keeps the compiled SQL and scans it for hidden dependencies, as after a build
    for _key, message in after_run(project, run_dir):
        report(f"warm compile: {message}")
    return tuple(sorted(m.key for m in models)), len(tests)
