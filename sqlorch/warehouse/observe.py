"""Open the warehouse a dbt target points at, and observe what it holds (remembered on disk).

Takes the values it needs (the target's settings, the DuckDB file, the graph), never a
loaded project: the use cases in `sqlorch.app` hand them over.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import logging
import os
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sqlorch.core.graph import AssetGraph, AssetKind
from sqlorch.errors import ConfigError, WarehouseError
from sqlorch.warehouse.base import Warehouse

if TYPE_CHECKING:
    # (a type only: defining a Protocol costs start-up time on every command)
    class WarehouseTarget(Protocol):
        """What opening a warehouse reads of a resolved dbt target (`dbt.profiles.Target`)."""

        @property
        def profile(self) -> str: ...
        @property
        def name(self) -> str: ...
        @property
        def type(self) -> str: ...
        @property
        def profiles_file(self) -> Path: ...
        @property
        def path(self) -> str | None: ...
        @property
        def config(self) -> Mapping[str, Any]: ...


log = logging.getLogger(__name__)


#: dbt adapter type -> the module of `sqlorch.warehouse` that opens it (see `warehouse.base`)
WAREHOUSE_MODULES: dict[str, str] = {
    "duckdb": "sqlorch.warehouse.duckdb",
    "postgres": "sqlorch.warehouse.postgres",
    "spark": "sqlorch.warehouse.spark",
}


def open_warehouse(
    target: WarehouseTarget, *, needs_file: bool, environment: str | None = None
) -> Warehouse | None:
    """Open the warehouse `target` points at (None when nothing needs one).

    Args:
        target: the dbt target.
        needs_file: Python assets will be written, so a warehouse sqlorch can write to
            is required.
        environment: the environment (`SQLORCH_ENV`) whose relations asset keys name.

    Raises:
        ConfigError: the target cannot be opened, or cannot hold Python assets.
    """
    import importlib

    where = f"Target {target.name!r} of profile {target.profile!r} ({target.profiles_file})"
    module = WAREHOUSE_MODULES.get(target.type)
    if module is None:
        if not needs_file:
            return None
        raise ConfigError(
            f"{where} is a {target.type!r} warehouse, which sqlorch cannot write Python assets "
            f"to. Python assets need one of: {', '.join(sorted(WAREHOUSE_MODULES))}."
        )
    if target.type == "duckdb" and (not target.path or target.path == ":memory:"):
        if not needs_file:
            return None
        raise ConfigError(
            f"{where} is an in-memory DuckDB database, which sqlorch cannot share with dbt. "
            "Python assets need a DuckDB file: set `path:` to a .duckdb file."
        )
    try:
        warehouse: Warehouse = importlib.import_module(module).open_target(target)
    except WarehouseError as exc:
        raise ConfigError(f"{where} could not be opened: {_why(target, exc)}") from exc
    from sqlorch.warehouse.environment import in_environment

    return in_environment(warehouse, environment)


def _why(target: WarehouseTarget, exc: WarehouseError) -> str:
    """The reason a target could not be opened, with what to do."""
    if target.type != "duckdb":
        return str(exc)
    cause = str(exc.__cause__ or exc)
    hint = (
        " The file is held by another process (a second sqlorch, dbt, or a DuckDB "
        "shell): close it and run again."
        if "lock" in cause.lower()
        else " Check `path:` (its folder must exist) and the other settings of the target."
    )
    return f"DuckDB file {str(Path(target.path or '').resolve())!r}: {cause}.{hint}"


@dataclasses.dataclass(frozen=True, slots=True)
class WarehouseView:
    """What the planner reads from the warehouse itself.

    `relations`: the `schema.name` relations that exist (None: unknown). `loaded_at`: for
    observed sources with a dbt `loaded_at_field`, the newest value of it (UTC, ISO-8601).
    `unobserved`: relations counted in `relations` whose presence could not be checked (a
    Spark view without an open session): `status` says so instead of calling them fresh.
    """

    relations: frozenset[str] | None
    loaded_at: dict[str, str] = dataclasses.field(default_factory=dict)
    # views over files (dbt-duckdb `external` models): relation -> the paths they read
    files: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    unobserved: frozenset[str] = frozenset()

    def present(self) -> WarehouseView:
        """This view less the relations whose files are gone (an external model's parquet
        or csv deleted: its view still exists, its data does not)."""
        if self.relations is None or not self.files:
            return self
        gone = {key for key, paths in self.files.items() if not all(map(_exists, paths))}
        if not gone:
            return self
        return dataclasses.replace(self, relations=self.relations - gone)


def loaded_at_fields(graph: AssetGraph) -> dict[str, str | None]:
    """Observed sources that say when their rows arrived: key -> dbt `loaded_at_field`."""
    return {
        n.key: n.loaded_at_field for n in graph if n.kind is AssetKind.SOURCE and n.loaded_at_field
    }


def observe_warehouse(
    path: Path | None,
    config: Mapping[str, Any],
    wanted: Mapping[str, str | None],
    memo: Path,
    warehouse: Warehouse | None = None,
    *,
    open_file: bool = True,
    environment: str | None = None,
) -> WarehouseView:
    """Read which relations the DuckDB file `path` holds and when sources last got rows.

    A file that does not exist holds nothing; no file (`path` None: not DuckDB) is unknown.
    The answer is remembered in `memo` with the size and modification time of the file and
    its WAL: while neither changed (a DROP, an INSERT, a checkpoint all change one), the file
    is not opened at all, so a no-op build does not even import DuckDB (the files views read
    are checked by `WarehouseView.present`, not here). Otherwise, without
    an open `warehouse`, the file is opened read-only for a moment; when another process
    holds it (a build), nothing is known (None) rather than waited for.

    Args:
        path: the target's DuckDB file (None: not a DuckDB file).
        config: the target's DuckDB settings.
        wanted: the sources' `loaded_at_field`s (`loaded_at_fields`).
        memo: the file remembering the last observation.
        warehouse: an open connection to the file, read instead of opening one.
        open_file: False: never open the file (the web UI); without a memo, nothing is known.
        environment: the environment (`SQLORCH_ENV`) whose relations count.
    """
    if path is None:
        return _observe(warehouse, wanted) if warehouse is not None else WarehouseView(None)
    if not path.exists():
        return WarehouseView(frozenset())
    if warehouse is not None:
        return _observe(warehouse, wanted)
    cached = _read_memo(memo, path, wanted)
    if cached is not None:
        return cached
    if not open_file:
        return WarehouseView(None)
    import duckdb

    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error:
        try:
            # this process already has the file open (dbt-duckdb, a long-lived process):
            # a connection with the same configuration shares that instance
            con = duckdb.connect(str(path), config=dict(config))
        except duckdb.Error:
            log.debug("warehouse busy; table presence not checked", exc_info=True)
            return WarehouseView(None)
    from sqlorch.warehouse.duckdb import DuckDBWarehouse
    from sqlorch.warehouse.environment import in_environment

    try:
        opened = in_environment(DuckDBWarehouse(str(path), _parent=con), environment)
        assert opened is not None
        view = _observe(opened, wanted)
    finally:
        con.close()
    remember_view(memo, path, wanted, view)
    return view


# a view reading a file by a literal path: read_parquet('x.parquet'), read_csv_auto('y.csv')
_FILE_READ = re.compile(
    r"\bread_(?:parquet|csv|csv_auto|json|json_auto|ndjson)\(\s*'([^']+)'", re.IGNORECASE
)


def _exists(path: str) -> bool:
    """Whether a file a view reads is there (remote URLs are taken as there)."""
    if "://" in path:
        return True
    if any(c in path for c in "*?["):
        return bool(glob.glob(path, recursive=True))
    return os.path.exists(path)


def _view_files(warehouse: Warehouse) -> dict[str, list[str]]:
    """The files each DuckDB view reads by a literal path, from the catalog in one query."""
    from sqlorch.warehouse.duckdb import DuckDBWarehouse
    from sqlorch.warehouse.environment import unwrap

    if not isinstance(unwrap(warehouse), DuckDBWarehouse):
        return {}
    rows = warehouse.execute(
        "SELECT lower(schema_name || '.' || view_name), sql FROM duckdb_views() "
        "WHERE NOT internal AND database_name = current_database()"
    )
    return {str(key): paths for key, sql in rows if sql and (paths := _FILE_READ.findall(str(sql)))}


def _observe(warehouse: Warehouse, wanted: Mapping[str, str | None]) -> WarehouseView:
    from sqlorch.warehouse.environment import physical
    from sqlorch.warehouse.sql import quote_key

    relations = warehouse.relations()
    files = _view_files(warehouse)
    loaded: dict[str, str] = {}
    for key, field in wanted.items():
        if key not in relations:
            continue
        try:
            table = quote_key(physical(warehouse, key))
            rows = warehouse.execute(f"SELECT max({field}) FROM {table}")
        except Exception as exc:  # noqa: BLE001 - a bad loaded_at_field only loses freshness
            log.warning("source %s: loaded_at_field %r could not be read: %s", key, field, exc)
            continue
        stamp = _utc_iso(rows[0][0] if rows else None)
        if stamp is not None:
            loaded[key] = stamp
    return WarehouseView(relations, loaded, files)


def _utc_iso(value: Any) -> str | None:
    """A timestamp (naive = UTC), date or ISO string as `events.utcnow()` formats it."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if isinstance(value, datetime):
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    elif isinstance(value, date):
        value = datetime(value.year, value.month, value.day, tzinfo=UTC)
    else:
        return None
    return str(value.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


def _stamp(path: Path) -> list[list[int]]:
    out = []
    for p in (path, path.with_name(path.name + ".wal")):
        try:
            st = p.stat()
            out.append([st.st_size, st.st_mtime_ns])
        except OSError:
            out.append([])
    return out


def _read_memo(memo: Path, path: Path, wanted: Mapping[str, str | None]) -> WarehouseView | None:
    try:
        doc = json.loads(memo.read_text())
    except (OSError, ValueError):
        return None
    if (
        doc.get("path") != str(path)
        or doc.get("stamp") != _stamp(path)
        or doc.get("wanted") != wanted
    ):
        return None
    return WarehouseView(
        frozenset(doc.get("relations", ())),
        dict(doc.get("loaded_at", {})),
        {str(k): list(v) for k, v in doc.get("files", {}).items()},
    )


def remember_view(
    memo: Path, path: Path, wanted: Mapping[str, str | None], view: WarehouseView
) -> None:
    """Remember what the DuckDB file `path` holds as of its current size and time."""
    if view.relations is None:
        return
    doc = {
        "path": str(path),
        "stamp": _stamp(path),
        "wanted": wanted,
        "relations": sorted(view.relations),
        "loaded_at": view.loaded_at,
        "files": view.files,
    }
    tmp = memo.with_suffix(f".{os.getpid()}.tmp")
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, memo)
    except OSError:
        log.debug("could not write %s", memo, exc_info=True)
