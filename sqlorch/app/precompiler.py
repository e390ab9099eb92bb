"""The warm compiler of `sqlorch dev`: parse and compile on file change, ahead of the build.

A long-lived process imports dbt once. When a file of the dbt project changes it loads the
project again (dbt's partial parse, in this process: the manifest cache is written) and has
dbt compile, in one in-process invocation, exactly the natively executed models and data
tests whose compiled SQL is missing or stale (compiled.json). The next `sqlorch build` then
finds both caches current and imports no dbt. It holds the hand-off lock
(sqlorch.dbt.handoff) while it works, so a build started meanwhile waits for it rather than
reading half of its work or parsing the same change a second time.

An incremental model's compiled SQL depends on the warehouse (`is_incremental()`): it is
compiled for the mode its relation gives now, the DuckDB file opened read-only for that one
query (never held between changes); a seed's columns are inferred as a build would.
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
    from sqlorch.dbt.compiled import CompiledCache
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


class WarmThread:
    """A `Precompiler` running in a daemon thread of a long-lived command (`dev`, `ui`)."""

    def __init__(self, precompiler: Precompiler) -> None:
        self.precompiler = precompiler
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlorch-warm", daemon=True)

    def start(self) -> WarmThread:
        """Announce the warm compiler (builds wait for it from now on) and start it."""
        self.precompiler.announce()
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the refresh in progress (at most `timeout` s); builds stop waiting."""
        self._stop.set()
        self._thread.join(timeout)
        if self._thread.is_alive():  # still parsing: builds must not wait for it any more
            self.precompiler.lock.withdraw()

    def _run(self) -> None:
        try:
            self.precompiler.run(self._stop)
        except Exception as exc:  # noqa: BLE001 - builds then parse and compile themselves
            self.precompiler.report(f"warm compile stopped: {exc}")


def start_warm(settings: Settings, report: Report) -> WarmThread | None:
    """Start this process's warm compiler, unless another live process is one already.

    One warm compiler per project: `sqlorch ui` started by `sqlorch dev` (or beside
    another `ui`) leaves the work to the one that announced itself first.
    """
    from sqlorch.dbt.handoff import warm_pid

    other = warm_pid(settings.state_dir / "dbt")
    if other is not None:
        report(f"warm compile: process {other} already keeps this project warm")
        return None
    return WarmThread(Precompiler(settings, report=report)).start()


def compile_stale(project: Project, report: Report) -> tuple[tuple[str, ...], int]:
    """Compile the native models and data tests whose cached SQL is missing or stale.

    The same entries a build reads (sqlorch.execute.native_steps), in one dbt invocation:
    an incremental model for the mode the next build runs it in (`is_incremental()`: its
    relation is a table now), a seed's columns inferred as dbt does. Returns (the models
    compiled or inferred, how many tests).
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
    native = [
        node
        for node in graph.assets.values()
        if node.kind.is_dbt
        and not blocker(node, same_file=same_file, hook_count=project.dbt.hook_count, forced=forced)
    ]
    seeds = infer_seeds(cache, [n for n in native if "sqlorch_seed" in n.metadata])
    models = [
        n
        for n in native
        if "sqlorch_seed" not in n.metadata
        and n.materialized != "incremental"
        and cache.model(n) is None
    ]
    modes = incremental_modes(invoker.duckdb_path, [n for n in native if _incremental(n)])
    incremental = [n for n in native if n.key in modes and cache.model(n, modes[n.key]) is None]
    tests = [
        uid
        for uid, check in graph.checks.items()
        if check.runs_in_dbt
        and not test_blocker(check, graph.assets)
        and cache.test(check, graph.assets) is None
    ]
    if not models and not incremental and not tests:
        cache.save()  # the seeds' columns
        return tuple(seeds), 0
    chosen = {m.unique_id or "" for m in (*models, *incremental)} | set(tests)
    selectors = compress_selection(chosen, project.dbt.runnable_fqns, frozenset())
    run_dir = Path(invoker.artifacts_dir) / "warm"
    shutil.rmtree(run_dir, ignore_errors=True)
    sqls, compiled_tests = compile_nodes(
        invoker, [*models, *incremental], tests, selectors, run_dir / "compile"
    )
    invoker.release()  # an incremental model's compile opened the warehouse: builds write it
    for m in models:
        cache.put_model(m, sqls.get(m.key, ""))
    if incremental:
        now = incremental_modes(invoker.duckdb_path, incremental)
        for m in incremental:
            # only what dbt compiled for the mode still true (a build may have run since)
            if sqls.get(m.key) and now.get(m.key) == modes[m.key]:
                cache.put_model(m, sqls[m.key], modes[m.key])
    for uid in tests:
        value = compiled_tests.get(uid, "dbt: dbt did not compile it")
        cache.put_test(graph.checks[uid], graph.assets, value)
    cache.save()
    # lineage keeps the compiled SQL and scans it for hidden dependencies, as after a build
    for _key, message in after_run(project, run_dir):
        report(f"warm compile: {message}")
    done = [m.key for m in (*models, *incremental)] + seeds
    return tuple(sorted(done)), len(tests)


def _incremental(node: AssetNode) -> bool:
    return node.materialized == "incremental" and bool(node.metadata.get("sqlorch_incremental"))


def infer_seeds(cache: CompiledCache, seeds: list[AssetNode]) -> list[str]:
    """Infer (as dbt's agate does) the columns of the seeds whose file changed; their keys."""
    from sqlorch.dbt.seeds import Seed

    done = []
    for node in seeds:
        seed = Seed.of(node.metadata["sqlorch_seed"])
        inputs = seed.inputs()
        if inputs is None or cache.seed(node.key, inputs) is not None:
            continue
        try:
            columns = seed.columns()
        except (ValueError, OSError):  # the build sends it to dbt and says why
            log.debug("agate could not read %s", seed.path, exc_info=True)
            continue
        cache.put_seed(node.key, inputs, columns)
        done.append(node.key)
    return done


def incremental_modes(database: Path, nodes: list[AssetNode]) -> dict[str, str]:
    """Each incremental model's compile mode for a build without --full-refresh, from its
    relation now ({} when the warehouse is busy or absent: the build compiles them).

    The DuckDB file is opened read-only for one catalog query and closed at once.
    """
    if not nodes or not database.exists():
        return {}
    import duckdb

    from sqlorch.dbt.native import Incremental
    from sqlorch.execute.native_writes import Catalog

    try:
        con = duckdb.connect(str(database), read_only=True)
    except duckdb.Error:  # a build is writing it
        log.debug("warehouse busy: incremental models left to the build", exc_info=True)
        return {}
    try:
        catalog = Catalog(con)
    finally:
        con.close()
    modes = {}
    for node in nodes:
        spec = Incremental.of(node.metadata["sqlorch_incremental"])
        existing = catalog.kind(tuple(node.metadata["sqlorch_relation"]))
        modes[node.key] = "incremental" if spec.is_incremental(existing, False) else "full"
    return modes
