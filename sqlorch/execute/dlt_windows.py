"""Partition windows of dlt assets: the window reaches dlt's incremental, and lands atomically.

A partition run hands its window [start, end) to every resource's `dlt.sources.incremental`
(`initial_value`/`end_value`), and dlt loads it into a staging dataset of its own
(`<dataset>_sqlorch_window`, emptied first). Then, in ONE transaction on sqlorch's session,
the window's rows (and the nested rows under them) are deleted from the dataset's tables and
the staged rows inserted, new tables and columns created as dlt created them in staging. So a
window holds its old rows or its new ones, never none: a load that fails (in the source, in
dlt, or in the swap) leaves it as it was.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlorch.api.asset import PartitionContext
from sqlorch.api.dlt import DLT_SYSTEM_TABLES, DltGroup
from sqlorch.errors import ConfigError

#: Columns of a schema's tables: table -> [(column, SQL type)] in order.
Columns = dict[str, list[tuple[str, str]]]


@dataclass(frozen=True, slots=True)
class Cursor:
    """A resource's declared incremental: its table, cursor column and initial value's type."""

    resource: str
    table: str
    path: str
    sample: Any


def stage_dataset(dataset: str) -> str:
    """The dataset a partition's load lands in before it is swapped into `dataset`."""
    return f"{dataset}_sqlorch_window"


def declared(resource: Any) -> Any:
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


def cursors(group: DltGroup, source: Any, key: str) -> list[Cursor]:
    """Each selected resource's cursor.

    Raises:
        ConfigError: a resource declares no incremental with a column name.
    """
    decl = group.assets
    out = []
    for resource in source.selected_resources.values():
        inc = declared(resource)
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
        out.append(Cursor(resource.name, table, inc.cursor_path, inc.initial_value))
    return out


def as_cursor(value: datetime, sample: Any) -> Any:
    """A window bound in the type of the cursor's declared initial value."""
    if isinstance(sample, datetime):
        return value
    if isinstance(sample, date):
        return value.date()
    if isinstance(sample, int | float) and not isinstance(sample, bool):
        return type(sample)(value.timestamp())
    return value.isoformat()


def apply_window(
    group: DltGroup, source: Any, part: PartitionContext, key: str, restore: list[Any]
) -> tuple[str, str]:
    """Give each resource the partition's window as its incremental's initial/end value.

    A resource declared `replace` appends (into the emptied staging dataset) instead.
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
    for cursor in cursors(group, source, key):
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
                initial_value=as_cursor(part.start, cursor.sample),
                end_value=as_cursor(part.end, cursor.sample),
                range_end="open",
            )
        )
        if resource.write_disposition == "replace":
            resource.apply_hints(write_disposition="append")
    return part.start.isoformat(), part.end.isoformat()


def existing_columns(session: Any, dataset: str) -> Columns:
    """The columns (name, SQL type) of every table in `dataset`, in order."""
    if session.dialect == "postgres":
        sql = (
            "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod) "
            "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ? "
            "AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped "
            "ORDER BY c.relname, a.attnum"
        )
    else:
        sql = (
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = ? ORDER BY table_name, ordinal_position"
        )
    out: Columns = {}
    for table, column, dtype in session.execute(sql, [dataset]):
        out.setdefault(str(table), []).append((str(column), str(dtype)))
    return out


def drop_stage(session: Any, dataset: str) -> None:
    """Drop the staging datasets of `dataset`'s partition loads (dlt's merge staging too)."""
    stage = stage_dataset(dataset)
    for schema in (stage, f"{stage}_staging"):
        session.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def swap_window(
    session: Any,
    group: DltGroup,
    source: Any,
    window: tuple[str, str],
    dataset: str,
) -> None:
    """Replace the window's rows of `dataset`'s tables with the staged ones, in one transaction.

    The root tables lose the rows whose cursor lies in the window, the nested tables the rows
    left without a parent; then every staged table's rows are inserted (tables and columns the
    dataset lacks are created first). Any error rolls the whole swap back.
    """
    stage = stage_dataset(dataset)
    staged = {t: c for t, c in existing_columns(session, stage).items() if _is_data(t)}
    session.execute("BEGIN")
    try:
        have = existing_columns(session, dataset)
        for table in sorted(staged, key=lambda t: t.count("__")):
            _ensure_table(session, dataset, table, staged[table], have.get(table))
        have = existing_columns(session, dataset)
        for cursor in cursors(group, source, ""):
            if cursor.path not in {c for c, _ in have.get(cursor.table, ())}:
                continue
            lo = as_cursor(datetime.fromisoformat(window[0]), cursor.sample)
            hi = as_cursor(datetime.fromisoformat(window[1]), cursor.sample)
            session.execute(
                f'DELETE FROM "{dataset}"."{cursor.table}" WHERE "{cursor.path}" >= ? '
                f'AND "{cursor.path}" < ?',
                [lo, hi],
            )
            _delete_orphans(session, dataset, cursor.table, have)
        for table in sorted(staged, key=lambda t: t.count("__")):
            columns = [c for c, _ in staged[table]]
            insert_from(session, f'"{stage}"."{table}"', f'"{dataset}"."{table}"', columns)
        session.execute("COMMIT")
    except BaseException:
        session.execute("ROLLBACK")
        raise


def _is_data(table: str) -> bool:
    return table not in DLT_SYSTEM_TABLES and not table.startswith("_dlt")


def _ensure_table(
    session: Any,
    dataset: str,
    table: str,
    columns: list[tuple[str, str]],
    have: list[tuple[str, str]] | None,
) -> None:
    """Create `dataset.table` like its staged copy, or add the staged columns it lacks."""
    if have is None:
        body = ", ".join(f'"{c}" {t}' for c, t in columns)
        session.execute(f'CREATE TABLE "{dataset}"."{table}" ({body})')
        return
    known = {c for c, _ in have}
    for column, dtype in columns:
        if column not in known:
            session.execute(f'ALTER TABLE "{dataset}"."{table}" ADD COLUMN "{column}" {dtype}')


def _delete_orphans(session: Any, dataset: str, root: str, have: Columns) -> None:
    """Delete the nested rows of `root`'s child tables whose parent row is gone."""
    children = sorted((t for t in have if t.startswith(root + "__")), key=lambda t: t.count("__"))
    for child in children:
        parent = child.rsplit("__", 1)[0]
        if "_dlt_parent_id" not in {c for c, _ in have[child]} or parent not in have:
            continue
        session.execute(
            f'DELETE FROM "{dataset}"."{child}" WHERE "_dlt_parent_id" NOT IN '
            f'(SELECT "_dlt_id" FROM "{dataset}"."{parent}")'
        )


def insert_from(session: Any, source: str, target: str, columns: list[str]) -> None:
    """Insert `columns` of every row of table `source` into table `target`."""
    names = ", ".join(f'"{c}"' for c in columns)
    session.execute(f"INSERT INTO {target} ({names}) SELECT {names} FROM {source}")
