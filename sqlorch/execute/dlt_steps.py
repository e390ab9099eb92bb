"""dlt steps: one dlt load per source (and partition) produces all of its tables' assets.

Each table of a `dlt_assets` source is a Python asset and runs on the Python-step path; the
first of a source's tables to start runs the load, the others wait for it and report their
own share (rows loaded, the load id, new columns). dlt writes through the step's own DuckDB
session (a cursor of sqlorch's connection: one database instance, never a second writer).
Loads run one at a time in a process: dlt's active-pipeline context is process-wide.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from concurrent import futures
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from sqlorch.api.asset import AssetContext
from sqlorch.api.dlt import DLT_SYSTEM_TABLES, DltGroup, DltTable
from sqlorch.errors import AssetError, ConfigError, SqlorchError
from sqlorch.execute import dlt_windows
from sqlorch.warehouse.environment import physical_schema

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LoadReport:
    """What one dlt load did, table by table."""

    load_id: str | None
    rows: dict[str, int]
    new_columns: dict[str, list[str]]
    new_tables: tuple[str, ...]
    window: tuple[str, str] | None = None
    unknown_tables: tuple[str, ...] = field(default=())


#: the warehouses dlt can load into (sqlorch dialect names, also dlt destination names)
_DESTINATIONS = ("duckdb", "postgres")


class DltLoads:
    """Run each dlt source's load once per run, attempt and partition run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._serial = threading.Lock()
        self._loads: dict[tuple[str, str, int], Future[LoadReport]] = {}
        self._interrupted = False

    def interrupt(self, wait: float = 5.0) -> None:
        """Stop the running load at dlt's next check (a row extracted, a job started).

        dlt checks a process-wide flag, which its signal handler sets in its own scripts;
        sqlorch's loads run in worker threads, so a second Ctrl-C sets it here. The load then
        fails like any other (its pending packages are dropped, the cursors do not advance);
        this waits up to `wait` seconds for that, as the process exits right after.
        """
        self._interrupted = True
        if "dlt" not in sys.modules:
            return
        from dlt.common.runtime import signals

        signals.set_received_signal(signal.SIGINT)
        signals.wake_all()
        with self._lock:
            running = [f for f in self._loads.values() if not f.done()]
        futures.wait(running, timeout=wait)

    def materialize(self, table: DltTable, ctx: AssetContext) -> dict[str, Any]:
        """Load `table`'s source (unless another of its tables did) and return its metadata.

        Raises:
            AssetError: the load failed (the message names the table and the declaration).
            ConfigError: the target is not DuckDB, or a partition cannot reach the source.
        """
        group = table.group
        part = ctx.partition
        slot = (group.pipeline_name, part.key if part else "", ctx.attempt)
        with self._lock:
            future = self._loads.get(slot)
            leader = future is None
            if future is None:
                future = self._loads[slot] = Future()
        if leader:
            try:
                with self._serial:
                    self._ready(group, ctx)
                    future.set_result(_load(group, ctx))
            except BaseException as exc:
                future.set_exception(exc)
        try:
            report = future.result()
        except SqlorchError as exc:
            if leader:
                raise
            raise AssetError(
                exc.message,
                asset=ctx.key,
                file=group.assets.file,
                line=group.assets.line,
            ) from exc
        return _metadata(group, table.table, report, ctx)

    def _ready(self, group: DltGroup, ctx: AssetContext) -> None:
        """Refuse to start a load after an interrupt; else clear dlt's stop flag."""
        if self._interrupted:
            decl = group.assets
            raise AssetError(
                f"dlt assets {decl.name!r} ({decl.where()}) did not load: the run was interrupted.",
                asset=ctx.key,
                file=decl.file,
                line=decl.line,
            )
        if "dlt" in sys.modules:
            from dlt.common.runtime import signals

            signals.set_received_signal(0)  # a flag an earlier interrupted run left set


def _metadata(group: DltGroup, table: str, report: LoadReport, ctx: AssetContext) -> dict[str, Any]:
    """The materialization metadata of one table of a load."""
    meta: dict[str, Any] = {
        "dlt_pipeline": group.pipeline_name,
        "dlt_load_id": report.load_id,
        "rows_loaded": report.rows.get(table, 0),
    }
    if report.new_columns.get(table):
        meta["schema_changes"] = {"new_columns": report.new_columns[table]}
    if table in report.new_tables:
        meta["schema_changes"] = {**meta.get("schema_changes", {}), "new_table": True}
    if report.window is not None:
        meta["dlt_window"] = list(report.window)
    if report.unknown_tables and table == group.tables[0]:
        ctx.log.warning(
            "dlt created %s, not yet assets: they become assets from the next command "
            "(declare `nested_hints` on the resource to have them from the start)",
            ", ".join(f"{group.assets.dataset}.{t}" for t in report.unknown_tables),
        )
    return meta


def _load(group: DltGroup, ctx: AssetContext) -> LoadReport:
    """Run the dlt pipeline of `group` into the step's warehouse (a partition: atomically)."""
    decl = group.assets
    session = ctx.warehouse
    target = physical_schema(session, decl.dataset)  # in an environment: its own schema
    destination = _destination(group, session, ctx.key, exact=target != decl.dataset)
    import dlt

    _import_frame_libraries()
    source = _call_source(group, ctx)
    group.pipelines_dir.mkdir(parents=True, exist_ok=True)
    window = None
    restore: list[Any] = []
    dataset = target
    try:
        if ctx.partition is not None:
            window = dlt_windows.apply_window(group, source, ctx.partition, ctx.key, restore)
            dlt_windows.drop_stage(session, target)  # what a failed load left there
            dataset = dlt_windows.stage_dataset(target)
        pipeline = dlt.pipeline(
            pipeline_name=group.pipeline_name,
            destination=destination,
            dataset_name=dataset,
            pipelines_dir=str(group.pipelines_dir),
        )
        if window is not None and pipeline.has_pending_data:
            # a killed partition run's package: its rows belong to another window (rerun)
            _abort(pipeline)
        before = _names(dlt_windows.existing_columns(session, target))
        info = _run(pipeline, source, group, ctx)
        if window is not None:
            try:
                dlt_windows.swap_window(session, group, source, window, target)
            except SqlorchError:
                raise
            except Exception as exc:
                raise AssetError(
                    f"dlt assets {decl.name!r} ({decl.where()}): the partition's rows were "
                    f"loaded but could not replace window {window[0]}..{window[1]}: "
                    f"{type(exc).__name__}: {_mask(_first_line(exc), session)}. The tables "
                    "keep the window's previous rows; run the partition again.",
                    asset=ctx.key,
                    file=decl.file,
                    line=decl.line,
                ) from exc
            dlt_windows.drop_stage(session, target)
    finally:
        for undo in reversed(restore):
            undo()
    normalize = pipeline.last_trace.last_normalize_info if pipeline.last_trace else None
    rows = {
        t: n
        for t, n in ((normalize.row_counts if normalize else {}) or {}).items()
        if t not in DLT_SYSTEM_TABLES
    }
    after = _names(dlt_windows.existing_columns(session, target))
    new_columns = {
        t: sorted(set(cols) - set(before.get(t, ())))
        for t, cols in after.items()
        if t in before and set(cols) - set(before[t])
    }
    new_tables = tuple(sorted(t for t in after if t not in before and t not in DLT_SYSTEM_TABLES))
    unknown = tuple(sorted(t for t in rows if t not in group.tables))
    load_id = info.loads_ids[-1] if info.loads_ids else None
    return LoadReport(
        load_id=load_id,
        rows=rows,
        new_columns=new_columns,
        new_tables=new_tables,
        window=window,
        unknown_tables=unknown,
    )


def _run(pipeline: Any, source: Any, group: DltGroup, ctx: AssetContext) -> Any:
    """`pipeline.run(source)`; a failed step aborts its packages and raises an `AssetError`."""
    from dlt.pipeline.exceptions import PipelineStepFailed

    decl = group.assets
    try:
        return pipeline.run(source)
    except PipelineStepFailed as exc:
        _abort(pipeline)  # the next build starts over; the cursors did not advance
        cause, at = _root_cause(exc, decl.file)
        raise AssetError(
            f"dlt assets {decl.name!r} ({decl.where()}) failed in dlt's {exc.step} step"
            f"{at}: {type(cause).__name__}: {_mask(_first_line(cause), ctx.warehouse)}. "
            "Tables keep what the last successful load wrote; fix the source and run "
            "`sqlorch build` again (the traceback is in `sqlorch logs`).",
            asset=ctx.key,
            file=decl.file,
            line=decl.line,
        ) from exc


def _destination(group: DltGroup, session: Any, key: str, *, exact: bool) -> Any:
    """dlt's destination writing where `session` writes: its DuckDB connection, its credentials.

    `exact`: keep dataset names as given (dlt would fold an environment's `pr_1__ops` into
    `pr_1_ops`).

    Raises:
        ConfigError: the declaration names another destination, or the target is neither
            DuckDB nor PostgreSQL.
    """
    decl = group.assets
    dialect = session.dialect
    if dialect not in _DESTINATIONS or (decl.destination or dialect) != dialect:
        raise ConfigError(
            f"dlt assets {decl.name!r} ({decl.where()}) load through sqlorch's warehouse, which "
            f"is {dialect}, but "
            + (
                f"the declaration names destination {decl.destination!r}"
                if decl.destination and decl.destination != dialect
                else "sqlorch's dlt loads support DuckDB and PostgreSQL targets only"
            )
            + ". Drop `destination=` (dlt then writes where sqlorch writes) or build against "
            "a DuckDB or PostgreSQL target.",
            asset=key,
            file=decl.file,
            line=decl.line,
        )
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")  # never phone home
    import dlt

    names: dict[str, Any] = {"enable_dataset_name_normalization": False} if exact else {}
    if dialect == "duckdb":
        return dlt.destinations.duckdb(session.connection, **names)
    return dlt.destinations.postgres(credentials=_pg_credentials(session.keywords), **names)


def _pg_credentials(keywords: dict[str, str]) -> Any:
    """dlt's credentials for the libpq keywords of sqlorch's PostgreSQL session."""
    from dlt.destinations.impl.postgres.configuration import PostgresCredentials

    creds = PostgresCredentials()
    creds.database = keywords.get("dbname", "")
    creds.username = keywords.get("user", "")
    creds.password = keywords.get("password")  # type: ignore[assignment]
    host = keywords.get("host", "localhost")
    creds.port = int(keywords.get("port", "5432"))
    creds.connect_timeout = int(keywords.get("connect_timeout", "15"))
    query = {k: v for k, v in keywords.items() if k in ("sslmode", "sslrootcert")}
    if host.startswith("/"):  # a unix socket folder: libpq takes it from the query
        query.update(host=host, port=str(creds.port))
        host = "localhost"
    creds.host = host
    creds.query = query
    return creds


def _mask(text: str, session: Any) -> str:
    """`text` without the target's password."""
    password = (getattr(session, "keywords", None) or {}).get("password")
    return text.replace(password, "****") if password else text


def _names(columns: dict[str, list[tuple[str, str]]]) -> dict[str, list[str]]:
    return {t: [c for c, _ in cols] for t, cols in columns.items()}


def _import_frame_libraries() -> None:
    """Finish importing pandas and polars (when installed) before dlt extracts.

    dlt tells a data frame by `sys.modules.get("pandas")`: while another worker thread is
    half-way through importing pandas, dlt finds the partial module and fails ("partially
    initialized module 'pandas' has no attribute 'DataFrame'"). Importing it here first waits
    for that import, and no later import can be half-done.
    """
    import importlib
    import importlib.util

    for name in ("pandas", "polars"):
        if name in sys.modules or importlib.util.find_spec(name) is not None:
            try:
                importlib.import_module(name)
            except ImportError:
                log.debug("%s is installed but does not import", name, exc_info=True)


def _call_source(group: DltGroup, ctx: AssetContext) -> Any:
    decl = group.assets
    try:
        return decl.load_source()
    except SqlorchError:
        raise
    except Exception as exc:
        raise AssetError(
            f"dlt assets {decl.name!r} ({decl.where()}) could not make its source: "
            f"{type(exc).__name__}: {exc}. Fix the function and run again.",
            asset=ctx.key,
            file=decl.file,
            line=decl.line,
        ) from exc


def _abort(pipeline: Any) -> None:
    """Drop the failed load's pending packages (dlt restores its state and schemas)."""
    abort = getattr(pipeline, "abort_packages", None)  # dlt >= 1.30
    try:
        if abort is not None:
            abort()
        else:
            pipeline.drop_pending_packages()
    except Exception:  # noqa: BLE001 - the load's own error is the one to report
        log.warning("could not drop the failed dlt load's packages", exc_info=True)


def _root_cause(exc: BaseException, file: str) -> tuple[BaseException, str]:
    """The error behind a failed step, and ` at FILE:LINE` where the project's code raised it.

    The deepest error raised in the project's folder wins; else the end of the `from` chain.
    """
    import traceback

    chain: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo:
        item = todo.pop()
        if any(item is c for c in chain):
            continue
        chain.append(item)
        todo.extend(x for x in (item.__context__, item.__cause__) if x is not None)
    folder = "/" + file.rsplit("/", 1)[0] + "/" if "/" in file else None
    for cause in reversed(chain):
        frames = traceback.extract_tb(cause.__traceback__)
        mine = [f for f in frames if folder is not None and folder in f.filename]
        if folder is not None and mine and not isinstance(cause, StopIteration):
            frame = mine[-1]
            rel = frame.filename[frame.filename.rfind(folder) + 1 :]
            return cause, f" at {rel}:{frame.lineno}"
    cause = exc
    while cause.__cause__ is not None:
        cause = cause.__cause__
    return cause, ""


def _first_line(exc: BaseException | None) -> str:
    text = str(exc or "").strip()
    return text.splitlines()[0] if text else ""
