"""Run dbt in process through its programmatic entry point, one invocation at a time.

dbt's `dbtRunner` is not safe to call from two threads at once: every invocation here holds
a process-wide lock. Each invocation writes its artifacts and logs under the run's folder so
runs never overwrite each other's files.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlorch.errors import ProjectError

log = logging.getLogger(__name__)

_INVOKE_LOCK = threading.Lock()
_LAST_DUCKDB_FILE: Path | None = None
_FILE_RE = re.compile(r"\(([^()\s]+\.(?:sql|yml|yaml|py|csv))\)")
_LINE_RE = re.compile(r"line (\d+)")
#: the garbage collector's thresholds while dbt is imported and parses (see `few_collections`)
_PARSE_GC_THRESHOLDS = (50_000, 20, 100)
_GC_LOCK = threading.Lock()
_gc_depth = 0
_gc_saved: tuple[int, ...] = ()


class DbtPhase(StrEnum):
    """What a dbt node event reports."""

    STARTED = "started"
    FINISHED = "finished"
    LOG = "log"


@dataclass(frozen=True, slots=True)
class DbtNodeEvent:
    """One event of one dbt node, as sqlorch records it."""

    unique_id: str
    phase: DbtPhase
    status: str = ""
    message: str = ""
    level: str = "info"
    rows_affected: int | None = None
    execution_time: float | None = None
    # dbt's own numbers for a finished node: its adapter response ("rows_affected", "code",
    # ...), test failure count and per-phase seconds ("compile", "execute")
    adapter_response: dict[str, Any] = field(default_factory=dict)
    failures: int | None = None
    timing: dict[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class InvocationResult:
    """The outcome of one dbt invocation."""

    success: bool
    statuses: dict[str, str] = field(default_factory=dict)
    messages: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    args: list[str] = field(default_factory=list)
    log_path: Path | None = None
    seconds: float = 0.0
    # rows written per unique_id, where known exactly (sqlorch's own window writes)
    rows: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class DbtInvoker:
    """Runs dbt commands in this process for one project, profile and target."""

    project_dir: Path
    profiles_dir: Path | None
    target: str | None
    artifacts_dir: Path
    manifest: Any = None
    duckdb_path: Path | None = None
    #: flags every build and compile of the run gets (`--defer --state PATH`)
    run_args: tuple[str, ...] = ()
    #: `--full-refresh` for invocations that are not a partition window (`--vars`): a
    #: window's invocation must never rebuild the whole table from that window alone
    full_refresh: bool = False
    #: `--vars` of the command: given to every invocation, under a window's own vars
    vars: dict[str, Any] = field(default_factory=dict)

    def with_vars(self, extra_args: Sequence[str]) -> list[str]:
        """`extra_args` with the command's vars merged under a window's `--vars` (or added)."""
        args = list(extra_args)
        if not self.vars:
            return args
        if "--vars" in args:
            i = args.index("--vars") + 1
            args[i] = json.dumps({**self.vars, **json.loads(args[i])})
            return args
        return [*args, "--vars", json.dumps(self.vars)]

    def common_args(self, target_path: Path, log_path: Path) -> list[str]:
        """Return the flags every invocation shares."""
        args = [
            "--project-dir",
            str(self.project_dir),
            "--target-path",
            str(target_path),
            "--log-path",
            str(log_path),
            "--log-level",
            "none",
            "--log-level-file",
            "debug",
            "--no-use-colors",
            "--no-send-anonymous-usage-stats",
            "--no-version-check",
        ]
        if self.profiles_dir is not None:
            args += ["--profiles-dir", str(self.profiles_dir)]
        if self.target:
            args += ["--target", self.target]
        return args

    def parse(self) -> dict[str, Any]:
        """Parse the project (dbt's partial parsing applies) and return manifest.json.

        Raises:
            ProjectError: dbt could not parse the project.
        """
        target_path = self.artifacts_dir / "target"
        log_path = self.artifacts_dir / "logs"
        # manifest.json is written below, faster than dbt writes it (same bytes)
        args = [
            "parse",
            *self.common_args(target_path, log_path),
            "--no-write-json",
            *self.with_vars(()),
        ]
        from sqlorch.dbt.handoff import parsing_alone

        started = time.perf_counter()
        # a warm `sqlorch dev` parses into the same target folder: never both at once
        with few_collections(), _INVOKE_LOCK, parsing_alone(self.artifacts_dir):
            from dbt.cli.main import dbtRunner

            res = dbtRunner().invoke(args)
        log.debug("dbt parse took %.2fs", time.perf_counter() - started)
        if not res.success or res.result is None:
            raise _project_error(res.exception, self.project_dir, log_path)
        self.manifest = res.result
        return _write_manifest(res.result, target_path / "manifest.json")

    def build(
        self,
        selectors: Sequence[str],
        *,
        run_dir: Path,
        threads: int,
        on_event: Callable[[DbtNodeEvent], None],
        start_hooks: bool = True,
        end_hooks: bool = True,
        extra_args: Sequence[str] = (),
    ) -> InvocationResult:
        """Run `dbt build` on exactly `selectors` and stream node events to `on_event`.

        Args:
            selectors: dbt selectors (this module's caller passes exact `fqn:` selectors).
            run_dir: folder for this invocation's target/ and logs/.
            threads: dbt's --threads.
            on_event: called from dbt's threads for every node start, finish and log line.
            start_hooks: run the project's on-run-start hooks in this invocation.
            end_hooks: run the project's on-run-end hooks in this invocation.
            extra_args: more flags (a partition window: `--vars`, `--event-time-start`).
        """
        from dbt.cli.main import dbtRunner

        if self.manifest is None:
            # loaded from sqlorch's manifest cache: dbt's partial parse is still warm
            self.parse()
        run_dir.mkdir(parents=True, exist_ok=True)
        log_path = run_dir / "logs"
        args = [
            "build",
            *self.common_args(run_dir / "target", log_path),
            "--threads",
            str(threads),
            "--indirect-selection",
            "empty",
            *self.run_args,
            *(["--full-refresh"] if self.full_refresh and "--vars" not in extra_args else []),
            *self.with_vars(extra_args),
            "--select",
            *selectors,
        ]
        result = InvocationResult(success=False, args=args, log_path=log_path / "dbt.log")

        def callback(msg: Any) -> None:
            try:
                event = _translate(msg)
            except Exception:  # noqa: BLE001 - a malformed event must never stop dbt
                log.debug("could not read dbt event", exc_info=True)
                return
            if event is not None:
                if event.phase is DbtPhase.FINISHED:
                    result.statuses[event.unique_id] = event.status
                    result.messages[event.unique_id] = event.message
                on_event(event)

        started = time.perf_counter()
        with _INVOKE_LOCK, self._hooks_only(start_hooks, end_hooks):
            self._use_duckdb_file()
            res = dbtRunner(manifest=self.manifest, callbacks=[callback]).invoke(args)
        result.seconds = time.perf_counter() - started
        result.success = bool(res.success)
        if res.exception is not None:
            result.error = _one_paragraph(str(res.exception))
        return result

    def compile(
        self,
        selectors: Sequence[str],
        *,
        run_dir: Path,
        extra_args: Sequence[str] = (),
        batches: Mapping[str, tuple[datetime, datetime]] | None = None,
        purpose: str = "the models lineage needs",
    ) -> dict[str, str]:
        """Run `dbt compile` on exactly `selectors`; return unique_id -> compiled SQL.

        Args:
            selectors: dbt selectors.
            run_dir: folder for this invocation's target/ and logs/.
            extra_args: more flags (`--vars`).
            batches: microbatch model unique_id -> the batch window [start, end) to compile
                it for (dbt renders its inputs' event-time filters and `model.batch`).
            purpose: what the compiled SQL is for, named in the error.

        Raises:
            ProjectError: dbt could not compile the nodes (the message names dbt's error).
        """
        from dbt.cli.main import dbtRunner

        if self.manifest is None:
            self.parse()  # loaded from sqlorch's manifest cache: dbt's partial parse is warm
        run_dir.mkdir(parents=True, exist_ok=True)
        log_path = run_dir / "logs"
        # no manifest.json, graph.gpickle or adapter cache: writing the whole project's
        # artifacts and listing every schema cost more than compiling a few models
        args = [
            "compile",
            *self.common_args(run_dir / "target", log_path),
            "--no-write-json",
            "--no-populate-cache",
            "--indirect-selection",
            "empty",
            *self.run_args,
            # is_incremental() renders as the build will run the model
            *(["--full-refresh"] if self.full_refresh and "--vars" not in extra_args else []),
            *self.with_vars(extra_args),
            "--select",
            *selectors,
        ]
        started = time.perf_counter()
        with _INVOKE_LOCK, self._batches(batches or {}):
            self._use_duckdb_file()
            res = dbtRunner(manifest=self.manifest).invoke(args)
        log.debug(
            "dbt compile of %d selectors took %.2fs", len(selectors), time.perf_counter() - started
        )
        compiled = _write_run_results(res.result, run_dir / "target" / "run_results.json")
        if not res.success and not compiled:
            text = _one_paragraph(str(res.exception or "dbt compile failed"))
            raise ProjectError(
                f"dbt could not compile {purpose}: {text} dbt's log is {log_path / 'dbt.log'}."
            )
        return compiled

    @contextlib.contextmanager
    def _batches(self, batches: Mapping[str, tuple[datetime, datetime]]) -> Iterator[None]:
        """Give microbatch models a batch for one compile (as dbt does for each batch it runs)."""
        if not batches:
            yield
            return
        from dbt.contracts.graph.nodes import BatchContext

        nodes = self.manifest.nodes
        before = {uid: nodes[uid].batch for uid in batches if uid in nodes}
        for uid in before:
            start, end = batches[uid]
            nodes[uid].batch = BatchContext(
                id=start.strftime("%Y%m%d%H"), event_time_start=start, event_time_end=end
            )
        try:
            yield
        finally:
            for uid, batch in before.items():
                nodes[uid].batch = batch

    def _use_duckdb_file(self) -> None:
        """Make dbt-duckdb open this project's database file (call under the invoke lock).

        dbt-duckdb keeps one connection per process and reuses it while the profile compares
        equal; a relative `path:` compares equal across projects, so a process that builds
        two projects (tests, a long-lived UI) would have dbt write into the first one's file.
        When the resolved file changes, its cached environment is dropped.
        """
        global _LAST_DUCKDB_FILE
        if self.duckdb_path is None or self.duckdb_path == _LAST_DUCKDB_FILE:
            return
        if _LAST_DUCKDB_FILE is not None:
            _close_duckdb_env()
        _LAST_DUCKDB_FILE = self.duckdb_path

    def release(self) -> None:
        """Close dbt-duckdb's connection to this project's file (reopened when next needed).

        Nothing happens unless dbt ran in this process.
        """
        global _LAST_DUCKDB_FILE
        if self.duckdb_path is None or "dbt.adapters.duckdb" not in sys.modules:
            return
        with _INVOKE_LOCK:
            if _LAST_DUCKDB_FILE == self.duckdb_path:
                _close_duckdb_env()
                _LAST_DUCKDB_FILE = None

    def forget(self, *, collect: bool = True) -> None:
        """Free dbt's parsed project and its DuckDB connection: nothing of dbt runs any more.

        Lowers the build's peak memory while sqlorch executes; a later dbt invocation, if
        any, parses again (partially). `collect`: free its reference cycles now (a full
        collection, ~0.1 s at 100 models: worth it only before much work).
        """
        self.manifest = None
        self.release()
        if collect:
            gc.collect()

    @contextlib.contextmanager
    def _hooks_only(self, start_hooks: bool, end_hooks: bool) -> Iterator[None]:
        """Hide the project hooks this invocation must not run (restored afterwards).

        A sqlorch run may need several dbt invocations; `on-run-start` belongs to the first
        and `on-run-end` to the last, as under one `dbt build`. Invocations are serialized,
        so editing the parsed manifest's node table for the length of one is safe.
        """
        drop = set()
        if not start_hooks:
            drop.add("on-run-start")
        if not end_hooks:
            drop.add("on-run-end")
        if self.manifest is None or not drop:
            yield
            return
        nodes = self.manifest.nodes
        hidden = {
            uid: node
            for uid, node in nodes.items()
            if getattr(node, "resource_type", None) == "operation"
            and drop.intersection(getattr(node, "tags", ()) or ())
        }
        for uid in hidden:
            del nodes[uid]
        try:
            yield
        finally:
            nodes.update(hidden)


def _write_manifest(manifest: Any, path: Path) -> dict[str, Any]:
    """Write dbt's manifest.json (atomically) and return the document.

    The same bytes dbt writes, but through the C JSON encoder: dbt's `write_json` streams
    with `json.dump`, Python's pure-Python encoder (0.33 s of CPU at 1000 models, 0.11 s
    this way). (dbt's semantic_manifest.json is not written: sqlorch reads none.)
    """
    from dbt_common.utils.encoding import JSONEncoder

    # (the dict is freed once encoded: only the text and the document read back stay)
    text = json.dumps(
        manifest.writable_manifest().to_dict(omit_none=False, context={"artifact": True}),
        cls=JSONEncoder,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return json.loads(text)  # type: ignore[no-any-return]


@contextlib.contextmanager
def few_collections() -> Iterator[None]:
    """Collect garbage rarely while dbt is imported and parses (thresholds restored after).

    Importing dbt and parsing a project allocate hundreds of thousands of objects that
    live on: with the default thresholds the collector ran ~550 times in a one-model
    edit build and took ~0.25 s of CPU finding nothing to free.
    """
    global _gc_depth, _gc_saved
    with _GC_LOCK:
        if _gc_depth == 0:
            _gc_saved = gc.get_threshold()
            gc.set_threshold(*_PARSE_GC_THRESHOLDS)
        _gc_depth += 1
    try:
        yield
    finally:
        with _GC_LOCK:
            _gc_depth -= 1
            if _gc_depth == 0:
                gc.set_threshold(*_gc_saved)


def _close_duckdb_env() -> None:
    """Drop dbt-duckdb's process-wide DuckDB environment (closing its connection)."""
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager

        with DuckDBConnectionManager._LOCK:
            env = DuckDBConnectionManager._ENV
            DuckDBConnectionManager._ENV = None
        if env is not None:
            env.close()
    except Exception:  # noqa: BLE001 - an adapter without this cache needs nothing
        log.debug("could not reset dbt-duckdb's environment", exc_info=True)


_WANTED = {"NodeStart", "NodeFinished", "JinjaLogInfo", "JinjaLogWarning", "RunResultError"}


def _translate(msg: Any) -> DbtNodeEvent | None:
    """Turn a dbt EventMsg into a `DbtNodeEvent` (None for events sqlorch does not keep)."""
    info = msg.info
    name = info.name
    level = info.level
    if name not in _WANTED and level not in ("warn", "error"):
        return None
    data = msg.data
    node_info = getattr(data, "node_info", None)
    uid = node_info.unique_id if node_info is not None else ""
    if name == "NodeStart":
        return DbtNodeEvent(uid, DbtPhase.STARTED)
    if name == "NodeFinished":
        rr = data.run_result
        rows = None
        resp = rr.adapter_response
        if "rows_affected" in resp:
            try:
                rows = int(resp["rows_affected"])
            except (TypeError, ValueError):
                rows = None
        timing: dict[str, float] = {}
        for t in getattr(rr, "timing_info", ()):
            try:
                seconds = t.completed_at.ToDatetime() - t.started_at.ToDatetime()
                timing[str(t.name)] = round(seconds.total_seconds(), 4)
            except (AttributeError, TypeError, ValueError):
                continue
        response = {str(k): _plain(v) for k, v in resp.items() if not str(k).startswith("_")}
        return DbtNodeEvent(
            uid,
            DbtPhase.FINISHED,
            status=rr.status,
            message=rr.message,
            rows_affected=rows,
            execution_time=rr.execution_time,
            adapter_response=response,
            failures=getattr(rr, "num_failures", None),
            timing=timing,
        )
    if not uid:
        return None
    return DbtNodeEvent(uid, DbtPhase.LOG, message=info.msg, level=level or "info")


def _write_run_results(result: Any, path: Path) -> dict[str, str]:
    """Write a compile's run_results.json (its nodes only); return unique_id -> compiled SQL."""
    if result is None or not hasattr(result, "write"):
        return {}
    path.parent.mkdir(parents=True, exist_ok=True)
    result.write(str(path))
    out: dict[str, str] = {}
    for one in getattr(result, "results", None) or ():
        node = getattr(one, "node", None)
        code = getattr(node, "compiled_code", None)
        if node is not None and isinstance(code, str) and code.strip():
            out[str(node.unique_id)] = code
    return out


def compiled_code(run_results: Path) -> dict[str, str]:
    """Return unique_id -> compiled SQL of the nodes in a `run_results.json` (none if absent)."""
    try:
        with run_results.open() as fh:
            doc = json.load(fh)
    except (OSError, ValueError):
        return {}
    out: dict[str, str] = {}
    for result in doc.get("results") or ():
        uid = result.get("unique_id")
        code = result.get("compiled_code")
        if isinstance(uid, str) and isinstance(code, str) and code.strip():
            out[uid] = code
    return out


def _plain(value: Any) -> Any:
    """Turn a protobuf Struct value into plain JSON-able Python."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _one_paragraph(text: str) -> str:
    return " ".join(line.strip() for line in text.strip().splitlines() if line.strip())


def _project_error(exc: BaseException | None, project_dir: Path, log_path: Path) -> ProjectError:
    text = str(exc) if exc is not None else "dbt reported a failure without an error"
    file = None
    m = _FILE_RE.search(text)
    if m:
        file = m.group(1)
    line = None
    lm = _LINE_RE.search(text)
    if lm:
        line = int(lm.group(1))
    where = f" in {file}" + (f":{line}" if line else "") if file else ""
    return ProjectError(
        f"dbt could not parse the project at {project_dir}{where}: {_one_paragraph(text)} "
        f"Fix the file and run again; dbt's full log is {log_path / 'dbt.log'}.",
        file=file,
        line=line,
    )
