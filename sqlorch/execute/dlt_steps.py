"""dlt steps: one dlt load per source (and partition) produces all of its tables' assets.

Each table of a `dlt_assets` source is a Python asset and runs on the Python-step path; the
first of a source's tables to start runs the load, the others wait for it and report their
own share (rows loaded, the load id, new columns). dlt writes through the step's own DuckDB
session (a cursor of sqlorch's connection: one database instance, never a second writer).
Loads run one at a time in a process: dlt's active-pipeline context is process-wide.
"""

from __future__ import annotations

import inspect
import logging
import os
import sys
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlorch.api.asset import AssetContext, PartitionContext
from sqlorch.api.dlt import DLT_SYSTEM_TABLES, DltGroup, DltTable
from sqlorch.errors import AssetError, ConfigError, SqlorchError
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


class DltLoads:
    """Run each dlt source's load once per run, attempt and partition run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._serial = threading.Lock()
        self._loads: dict[tuple[str, str, int], Future[LoadReport]] = {}

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
    """Run the dlt pipeline of `group` into the step's DuckDB session."""
    decl = group.assets
    where = decl.where()
    session = ctx.warehouse
    if session.dialect != "duckdb" or (decl.destination or "duckdb") != "duckdb":
        raise ConfigError(
            f"dlt assets {decl.name!r} ({where}) load through sqlorch's warehouse, which is "
            f"{session.dialect}, but "
            + (
                f"the declaration names destination {decl.destination!r}"
                if decl.destination and decl.destination != session.dialect
                else "sqlorch's dlt loads support DuckDB targets only"
            )
            + ". Drop `destination=` (dlt then writes where sqlorch writes) or build against "
            "a DuckDB target.",
            asset=ctx.key,
            file=decl.file,
            line=decl.line,
        )
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")  # never phone home
    import dlt
    from dlt.pipeline.exceptions import PipelineStepFailed

    _import_frame_libraries()
    source = _call_source(group, ctx)
    group.pipelines_dir.mkdir(parents=True, exist_ok=True)
    dataset = physical_schema(session, decl.dataset)  # in an environment: its own schema
    # (dlt would fold the environment's `pr_1__ops` into `pr_1_ops`: keep it as named)
    exact: dict[str, Any] = (
        {"enable_dataset_name_normalization": False} if dataset != decl.dataset else {}
    )
    pipeline = dlt.pipeline(
        pipeline_name=group.pipeline_name,
        destination=dlt.destinations.duckdb(session.connection, **exact),
        dataset_name=dataset,
        pipelines_dir=str(group.pipelines_dir),
    )
    window = None
    restore: list[Any] = []
    try:
        if ctx.partition is not None:
            window = _apply_window(group, source, ctx.partition, ctx.key, restore)
            _delete_window(group, source, session.connection, window, dataset)
        before = _existing_columns(session.connection, dataset)
        try:
            info = pipeline.run(source)
        except PipelineStepFailed as exc:
            _abort(pipeline)  # the next build starts over; the cursors did not advance
            cause, at = _root_cause(exc, group.assets.file)
            raise AssetError(
                f"dlt assets {decl.name!r} ({where}) failed in dlt's {exc.step} step"
                f"{at}: {type(cause).__name__}: {_first_line(cause)}. Tables keep what the last "
                "successful load wrote; fix the source and run `sqlorch build` again (the "
                "traceback is in `sqlorch logs`).",
                asset=ctx.key,
                file=decl.file,
                line=decl.line,
            ) from exc
    finally:
        for undo in reversed(restore):
            undo()
    normalize = pipeline.last_trace.last_normalize_info if pipeline.last_trace else None
    rows = {
        t: n
        for t, n in ((normalize.row_counts if normalize else {}) or {}).items()
        if t not in DLT_SYSTEM_TABLES
    }
    after = _existing_columns(session.connection, dataset)
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


def _existing_columns(con: Any, dataset: str) -> dict[str, list[str]]:
    rows = con.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = ? ORDER BY table_name, ordinal_position",
        [dataset],
    ).fetchall()
    out: dict[str, list[str]] = {}
    for table, column in rows:
        out.setdefault(str(table), []).append(str(column))
    return out


# ------------------------------------------------------------------ partitions


@dataclass(frozen=True, slots=True)
class _Cursor:
    """A resource's declared incremental: its cursor column and its initial value's type."""

    resource: str
    table: str
    path: str
    sample: Any


def _declared(resource: Any) -> Any:
    """The `dlt.sources.incremental` a resource declares (in hints or its signature), or None."""
    import dlt

    wrapper = getattr(resource, "incremental", None)
    found = getattr(wrapper, "incremental", None)
    if found is not None:
        return found
    gen = getattr(getattr(resource, "_pipe", None), "gen", None)  # dlt keeps the function here
    if not callable(gen):
        return None
    try:
        params = inspect.signature(gen).parameters.values()
    except (TypeError, ValueError):
        return None
    return next((p.default for p in params if isinstance(p.default, dlt.sources.incremental)), None)


def _cursors(group: DltGroup, source: Any, key: str) -> list[_Cursor]:
    decl = group.assets
    out = []
    for resource in source.selected_resources.values():
        inc = _declared(resource)
        if inc is None or not isinstance(inc.cursor_path, str):
            raise ConfigError(
                f"Partitioned dlt assets {decl.name!r} ({decl.where()}): resource "
                f'{resource.name!r} declares no `dlt.sources.incremental("column")`, so '
                "sqlorch cannot hand it a partition's window. Add one (e.g. "
                '`updated=dlt.sources.incremental("updated_at", initial_value=...)`) or drop '
                "`partitions=`.",
                asset=key,
                file=decl.file,
                line=decl.line,
            )
        table = resource.table_name if isinstance(resource.table_name, str) else resource.name
        out.append(_Cursor(resource.name, table, inc.cursor_path, inc.initial_value))
    return out


def _as_cursor(value: datetime, sample: Any) -> Any:
    """A window bound in the type of the cursor's declared initial value."""
    if isinstance(sample, datetime):
        return value
    if isinstance(sample, date):
        return value.date()
    if isinstance(sample, int | float) and not isinstance(sample, bool):
        return type(sample)(value.timestamp())
    return value.isoformat()


def _apply_window(
    group: DltGroup, source: Any, part: PartitionContext, key: str, restore: list[Any]
) -> tuple[str, str]:
    """Give each resource the partition's window as its incremental's initial/end value.

    A resource declared `replace` appends instead: sqlorch replaces the window itself.
    """
    import dlt

    decl = group.assets
    if part.start is None or part.end is None:
        raise ConfigError(
            f"Partitioned dlt assets {decl.name!r} ({decl.where()}) need time partitions "
            "(`daily(...)`, `hourly(...)`, ...): a static partition has no window to pass to "
            "dlt's incremental.",
            asset=key,
            file=decl.file,
            line=decl.line,
        )
    for cursor in _cursors(group, source, key):
        resource = source.resources[cursor.resource]
        wrapper = getattr(resource, "incremental", None)
        if wrapper is not None and hasattr(wrapper, "_incremental"):
            saved = (wrapper._incremental, getattr(wrapper, "_from_hints", False))

            def undo(w: Any = wrapper, s: tuple[Any, bool] = saved) -> None:
                # dlt keeps the incremental on a wrapper shared by every clone of the resource
                w._incremental, w._from_hints = s

            restore.append(undo)
        resource.apply_hints(
            incremental=dlt.sources.incremental(
                cursor.path,
                initial_value=_as_cursor(part.start, cursor.sample),
                end_value=_as_cursor(part.end, cursor.sample),
                range_end="open",
            )
        )
        if resource.write_disposition == "replace":
            resource.apply_hints(write_disposition="append")
    return part.start.isoformat(), part.end.isoformat()


def _delete_window(
    group: DltGroup, source: Any, con: Any, window: tuple[str, str], dataset: str
) -> None:
    """Delete the window's rows (and their nested rows) so the load replaces exactly it."""
    existing = _existing_columns(con, dataset)
    cursors = _cursors(group, source, "")
    con.execute("BEGIN TRANSACTION")
    try:
        for cursor in cursors:
            if cursor.path not in existing.get(cursor.table, ()):
                continue
            lo = _as_cursor(datetime.fromisoformat(window[0]), cursor.sample)
            hi = _as_cursor(datetime.fromisoformat(window[1]), cursor.sample)
            con.execute(
                f'DELETE FROM "{dataset}"."{cursor.table}" WHERE "{cursor.path}" >= ? '
                f'AND "{cursor.path}" < ?',
                [lo, hi],
            )
            children = sorted(
                (t for t in existing if t.startswith(cursor.table + "__")),
                key=lambda t: t.count("__"),
            )
            for child in children:
                parent = child.rsplit("__", 1)[0]
                if "_dlt_parent_id" not in existing[child] or parent not in existing:
                    continue
                con.execute(
                    f'DELETE FROM "{dataset}"."{child}" WHERE "_dlt_parent_id" NOT IN '
                    f'(SELECT "_dlt_id" FROM "{dataset}"."{parent}")'
                )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
