"""The dlt API: `dlt_assets` turns a dlt source (or resource) into one asset per table.

The tables of a source are known before it runs from its resources (their table names and
`nested_hints`) and from the schema the pipeline stored at its last load (under
`.sqlorch/dlt/`): a nested child table a load creates for the first time becomes an asset from
the next command on. Every table of a source is produced by one dlt load (run by
`sqlorch.execute.dlt_steps`); each table is a Python asset keyed `dataset.table`.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlorch.api.asset import AssetDefinition
from sqlorch.errors import ConfigError

if TYPE_CHECKING:
    from sqlorch.api.asset import AssetContext
    from sqlorch.api.retries import RetryPolicy
    from sqlorch.core.graph import AssetNode
    from sqlorch.core.partitions.definitions import PartitionsDefinition

#: dlt's own tables, loaded with every package: never assets
DLT_SYSTEM_TABLES = frozenset({"_dlt_loads", "_dlt_version", "_dlt_pipeline_state"})
#: the target types dlt loads into (through sqlorch's connection, or with its credentials)
DLT_TARGETS = ("duckdb", "postgres")
#: the node metadata naming a dlt table's pipeline (it marks the asset as loaded by dlt)
DLT_PIPELINE_KEY = "dlt_pipeline"


def refusals(nodes: Iterable[AssetNode], target_type: str) -> list[str]:
    """Why each dlt-loaded declaration among `nodes` cannot load on a `target_type` target.

    One sentence per dlt source (its tables named together), empty on DuckDB and PostgreSQL.
    """
    if target_type in DLT_TARGETS:
        return []
    found: dict[str, list[AssetNode]] = {}
    for node in nodes:
        pipeline = node.metadata.get(DLT_PIPELINE_KEY) if node.metadata else None
        if isinstance(pipeline, str):
            found.setdefault(pipeline, []).append(node)
    out = []
    for tables in found.values():
        first = tables[0]
        where = f"{first.file}:{first.line}" if first.line else str(first.file or first.key)
        out.append(
            f"dlt assets {', '.join(n.key for n in tables)} ({where}) load with dlt, which "
            f"sqlorch runs against DuckDB and PostgreSQL targets only, not {target_type}. "
            f"Build them on a DuckDB or PostgreSQL target, or leave them out: `--exclude "
            f'"path:{first.file or ""}+"` (what reads them too).'
        )
    return out


@dataclass(frozen=True, slots=True)
class DltAssets:
    """A dlt source (or resource) declared as sqlorch assets, one per table it loads."""

    dataset: str
    source: Any = None
    fn: Callable[[], Any] | None = None
    name: str = ""
    pipeline_name: str | None = None
    destination: str | None = None
    deps: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    description: str = ""
    code_version: str | None = None
    pool: str | None = None
    partitions: PartitionsDefinition | None = None
    retry: RetryPolicy | None = None
    file: str = ""
    line: int | None = None

    def __call__(self, fn: Callable[[], Any]) -> DltAssets:
        """Decorate a function that returns the dlt source (or resource) to load."""
        code = getattr(fn, "_f", None) or inspect.unwrap(fn)  # dlt's source factories wrap it
        try:
            file: str | None = inspect.getsourcefile(code)
            line: int | None = inspect.getsourcelines(code)[1]
        except (OSError, TypeError):
            file, line = None, None
        return replace(
            self,
            fn=fn,
            name=self.name or getattr(fn, "__name__", "") or getattr(code, "__name__", ""),
            file=file or self.file,
            line=line,
            description=self.description or (inspect.getdoc(code) or "").split("\n\n")[0],
        )

    def where(self, root: Path | None = None) -> str:
        """`file:line` of the declaration (relative to `root` when inside it)."""
        file = self.file
        if root is not None:
            try:
                file = str(Path(file).resolve().relative_to(root.resolve()))
            except ValueError:
                pass
        return f"{file}:{self.line}" if self.line else file

    def load_source(self) -> Any:
        """Return a fresh dlt source to load (the decorated function is called each time).

        Raises:
            ConfigError: the function or `source=` is no dlt source or resource.
        """
        from dlt.extract import DltResource, DltSource

        value = self.fn() if self.fn is not None else self.source
        if isinstance(value, DltSource):
            return value.clone()
        if isinstance(value, DltResource):
            from dlt.common.schema import Schema

            return DltSource(Schema(value.name), value.section or value.name, [value])
        raise ConfigError(
            f"dlt assets {self.name!r} ({self.where()}) got a "
            f"{type(value).__module__}.{type(value).__qualname__}, not a dlt source or "
            "resource. Pass `source=my_source()` (a `@dlt.source` or `@dlt.resource` value) "
            "or decorate a function that returns one.",
            file=self.file,
            line=self.line,
        )

    def resolved_pipeline_name(self) -> str:
        """The dlt pipeline's name (its state lives in `.sqlorch/dlt/<name>`)."""
        return self.pipeline_name or f"sqlorch_{self.dataset}_{self.name}"

    def tables(self, pipelines_dir: Path) -> list[str]:
        """The tables this source loads, known now: resources, nested hints, the last load.

        Raises:
            ConfigError: a resource's table name is only known while it runs and no load
                recorded it yet.
        """
        source = self.load_source()
        names: dict[str, None] = {}
        for resource in source.selected_resources.values():
            table = resource.table_name
            if callable(table):
                continue  # dynamic names: only the stored schema knows them
            names[str(table)] = None
        schema = source.discover_schema()
        for table in schema.data_tables(include_incomplete=True):
            names[table["name"]] = None
        stored = pipelines_dir / self.resolved_pipeline_name() / "schemas"
        for path in sorted(stored.glob("*.schema.json")) if stored.is_dir() else []:
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            for tname, table in (data.get("tables") or {}).items():
                if tname in DLT_SYSTEM_TABLES or tname.startswith("_dlt"):
                    continue
                if table.get("columns") or table.get("parent"):
                    names[tname] = None
        dynamic = [r.name for r in source.selected_resources.values() if callable(r.table_name)]
        known_roots = {n for n in names if "__" not in n}
        if dynamic and not known_roots:
            raise ConfigError(
                f"dlt assets {self.name!r} ({self.where()}): resource(s) "
                f"{', '.join(dynamic)} name their tables while they run, and no load "
                "recorded them yet, so sqlorch cannot list them as assets. Give the resource "
                "a fixed `table_name`, or run the pipeline once.",
                file=self.file,
                line=self.line,
            )
        return sorted(names)

    def version(self) -> str:
        """A code version: the explicit one, else a hash of the function and resources' code."""
        if self.code_version:
            return self.code_version
        parts = [self.dataset, self.resolved_pipeline_name()]
        for fn in _code_of(self):
            try:
                parts.append(inspect.getsource(fn))
            except (OSError, TypeError):
                parts.append(getattr(fn, "__qualname__", repr(fn)))
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]

    def definitions(
        self, pipelines_dir: Path, tables: list[str] | None = None
    ) -> list[AssetDefinition]:
        """One asset definition per table (default: `tables()`), each run by the one load."""
        listed = tables if tables is not None else self.tables(pipelines_dir)
        group = DltGroup(self, pipelines_dir, tuple(listed))
        return [
            AssetDefinition(
                fn=DltTable(group, table),
                name=table,
                schema=self.dataset,
                deps=self.deps,
                description=self.description,
                tags=("dlt", *self.tags),
                code_version=self.version(),
                metadata={
                    "load_group": f"dlt:{group.pipeline_name}",
                    DLT_PIPELINE_KEY: group.pipeline_name,
                },
                pool=self.pool,
                partitions=self.partitions,
                retry=self.retry,
            )
            for table in group.tables
        ]


@dataclass(frozen=True, slots=True)
class DltGroup:
    """The tables one dlt source loads together, and where its pipeline keeps its state."""

    assets: DltAssets
    pipelines_dir: Path
    tables: tuple[str, ...]

    @property
    def pipeline_name(self) -> str:
        """The dlt pipeline's name."""
        return self.assets.resolved_pipeline_name()


@dataclass(frozen=True, slots=True)
class DltTable:
    """The function of one dlt table's asset: sqlorch's executor runs its source's load."""

    group: DltGroup
    table: str

    def __call__(self, context: AssetContext) -> None:
        raise ConfigError(
            f"The dlt table {self.group.assets.dataset}.{self.table} is loaded by "
            "`sqlorch build`, not called directly."
        )


def _code_of(assets: DltAssets) -> list[Any]:
    """The functions whose code determines what a dlt source loads."""
    out: list[Any] = []
    if assets.fn is not None:
        out.append(getattr(assets.fn, "_f", None) or assets.fn)  # a dlt source factory's code
    value = assets.source
    resources: Iterable[Any] = ()
    if value is not None and hasattr(value, "resources"):
        resources = value.resources.values()
    elif value is not None:
        resources = [value]
    for resource in resources:
        gen = getattr(getattr(resource, "_pipe", None), "gen", None)
        if callable(gen):
            out.append(inspect.unwrap(gen))
    return out


def dlt_assets(
    source: Any = None,
    *,
    dataset: str,
    name: str | None = None,
    pipeline_name: str | None = None,
    destination: str | None = None,
    deps: Iterable[str] = (),
    tags: Iterable[str] = (),
    description: str | None = None,
    code_version: str | None = None,
    pool: str | None = None,
    partitions: PartitionsDefinition | None = None,
    retries: int | None = None,
    backoff: str = "exponential",
    retry_delay: float | str = 1.0,
) -> DltAssets:
    """Declare a dlt source (or resource) as assets: one per table it loads, `dataset.table`.

    Use as a value (`events = dlt_assets(events_source(), dataset="raw")`) or as a decorator
    of a function that returns the source (`@dlt_assets(dataset="raw")`). dlt writes through
    sqlorch's own warehouse connection; its pipeline state lives in `.sqlorch/dlt/`.

    Args:
        source: a `@dlt.source` or `@dlt.resource` value (omit it when decorating).
        dataset: the schema the tables land in (dlt's dataset).
        name: the declaration's name; default the function's, else the source's.
        pipeline_name: dlt's pipeline name; default `sqlorch_<dataset>_<name>`.
        destination: the destination the source is meant for (`duckdb`); a mismatch with the
            target is an error.
        deps: upstream asset keys or dbt node names the source reads.
        tags: selectable with `tag:NAME` (every table also gets `dlt`).
        description: shown by `sqlorch ls`.
        code_version: an explicit version; default a hash of the resources' code.
        pool: a named concurrency pool.
        partitions: time partitions: each partition's window becomes the resources'
            `dlt.sources.incremental` `initial_value`/`end_value`, and reruns replace it.
        retries: attempts after the first when the load fails.
        backoff: `exponential`, `linear` or `constant` growth of the wait.
        retry_delay: the first wait, in seconds or as a duration.
    """
    caller = sys._getframe(1)
    policy = None
    if retries is not None:
        from sqlorch.api.retries import retry_policy

        policy = retry_policy(retries, backoff, retry_delay, "@dlt_assets")
    if not dataset or "." in dataset:
        raise ConfigError(
            f"dlt_assets(dataset={dataset!r}) at {caller.f_code.co_filename}:{caller.f_lineno}: "
            'give the schema the tables land in, e.g. `dataset="raw"`.',
            file=caller.f_code.co_filename,
            line=caller.f_lineno,
        )
    default_name = name or str(getattr(source, "name", "") or "")
    return DltAssets(
        dataset=dataset,
        source=source,
        name=default_name,
        pipeline_name=pipeline_name,
        destination=destination,
        deps=tuple(deps),
        tags=tuple(tags),
        description=description or "",
        code_version=code_version,
        pool=pool,
        partitions=partitions,
        retry=policy,
        file=caller.f_code.co_filename,
        line=caller.f_lineno,
    )


def dlt_assets_of(dataset: str, value: Any, name: str, file: str) -> DltAssets:
    """Declare `value` (a dlt source or resource, or a function returning one) as assets.

    The form of one line of the `dlt` setting: `dataset = "module:function"`.
    """
    from dlt.extract import DltResource, DltSource

    if callable(value) and not isinstance(value, DltSource | DltResource):
        return DltAssets(dataset=dataset, file=file, name=name)(value)
    return DltAssets(dataset=dataset, source=value, name=name, file=file)
