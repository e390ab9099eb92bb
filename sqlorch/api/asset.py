"""The Python-asset API: `@asset` turns a plain function into an asset definition."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

if TYPE_CHECKING:
    from datetime import datetime

    from sqlorch.api.retries import RateLimiter, RetryPolicy
    from sqlorch.core.partitions.definitions import PartitionsDefinition
    from sqlorch.core.partitions.mappings import PartitionMapping

    # the one agreed api -> warehouse edge; api/checks.py takes the type from here
    from sqlorch.warehouse.base import Warehouse as Warehouse


#: the environment variable carrying `AssetContext.files` into a run automation launched:
#: JSON, asset key -> file paths
FILES_ENV = "SQLORCH_FILES"


@dataclass(frozen=True, slots=True)
class AssetDefinition:
    """A Python asset as declared by `@asset`; the loader turns it into an `AssetNode`."""

    fn: Callable[..., Any]
    name: str
    schema: str | None = None
    key: str | None = None
    deps: tuple[str, ...] = ()
    description: str = ""
    tags: tuple[str, ...] = ()
    code_version: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    pool: str | None = None
    partitions: PartitionsDefinition | None = None
    # dep (as written in `deps`) -> partition mapping, for deps given as a mapping
    dep_mappings: Mapping[str, PartitionMapping] = field(default_factory=dict)
    max_partitions_per_run: int | None = 1
    retry: RetryPolicy | None = None
    on_schema_change: str = "fail"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    @property
    def takes_context(self) -> bool:
        """True when the function declares a `context` parameter."""
        return "context" in inspect.signature(self.fn).parameters


@overload
def asset(fn: Callable[..., Any], /) -> AssetDefinition: ...


@overload
def asset(
    *,
    key: str | None = None,
    name: str | None = None,
    schema: str | None = None,
    deps: Iterable[str] | Mapping[str, PartitionMapping | None] = (),
    description: str | None = None,
    tags: Iterable[str] = (),
    code_version: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    pool: str | None = None,
    partitions: PartitionsDefinition | None = None,
    max_partitions_per_run: int | None = 1,
    retries: int | None = None,
    backoff: str = "exponential",
    retry_delay: float | str = 1.0,
    on_schema_change: str = "fail",
    automation: Any = None,
) -> Callable[[Callable[..., Any]], AssetDefinition]: ...


def asset(
    fn: Callable[..., Any] | None = None,
    *,
    key: str | None = None,
    name: str | None = None,
    schema: str | None = None,
    deps: Iterable[str] | Mapping[str, PartitionMapping | None] = (),
    description: str | None = None,
    tags: Iterable[str] = (),
    code_version: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    pool: str | None = None,
    partitions: PartitionsDefinition | None = None,
    max_partitions_per_run: int | None = 1,
    retries: int | None = None,
    backoff: str = "exponential",
    retry_delay: float | str = 1.0,
    on_schema_change: str = "fail",
    automation: Any = None,
) -> AssetDefinition | Callable[[Callable[..., Any]], AssetDefinition]:
    """Declare a Python asset.

    Use bare (`@asset`) or with arguments (`@asset(schema="raw", deps=["stg_flights"])`).
    The function returns the table's rows (a pyarrow Table or RecordBatchReader, anything with
    the Arrow PyCapsule interface such as a pandas or polars DataFrame, or a DuckDB relation),
    or takes a `context` argument and writes through `context.warehouse` itself.

    Args:
        key: the full `schema.name` key; default `<schema>.<function name>`.
        name: the table name; default the function's name.
        schema: the schema; default the `asset_schema` setting ("raw").
        deps: upstream asset keys or dbt node names this asset reads.
        description: shown by `sqlorch ls`; default the docstring's first paragraph.
        tags: selectable with `tag:NAME`.
        code_version: an explicit version; default a hash of the function's source.
        metadata: free-form values recorded with the asset.
        pool: a named concurrency pool (see the `pools` setting).
        partitions: how the asset is partitioned (`daily(...)`, `static(...)`, `multi(...)`);
            the function then receives `context.partition` and returns only its rows.
        max_partitions_per_run: partitions per call of a partitioned asset (default 1: one
            call per partition, run in parallel); None hands each contiguous range to one call.
        retries: attempts after the first when the asset fails (default: none, except for
            transient warehouse errors, which are retried 3 times).
        backoff: `exponential` (default), `linear` or `constant` growth of the wait.
        retry_delay: the first wait, in seconds or as a duration (`"30s"`, `"2m"`).
        on_schema_change: what a partition run whose columns differ from the table's does,
            as dbt's: `fail` (default: nothing written, nothing coerced),
            `append_new_columns` or `sync_all_columns`. `build --full` (or `--accept-schema`)
            accepts any change.
        automation: when the daemon (or `sqlorch tick`) materializes it: `eager()`,
            `on_cron("0 * * * *")`, `on_missing()`, `max_lag("2h")` (sqlorch.api.automation),
            a list of them, or the settings mapping (`{"eager": True}`).
    """
    _check_options(max_partitions_per_run, on_schema_change)
    mappings: dict[str, PartitionMapping] = {}
    if isinstance(deps, Mapping):
        mappings = {d: m for d, m in deps.items() if m is not None}
    policy = None
    if retries is not None:
        from sqlorch.api.retries import retry_policy

        policy = retry_policy(retries, backoff, retry_delay, "@asset")
    meta = _with_automation(dict(metadata or {}), automation)

    def wrap(f: Callable[..., Any]) -> AssetDefinition:
        doc = inspect.getdoc(f) or ""
        return AssetDefinition(
            fn=f,
            name=name or f.__name__,
            schema=schema,
            key=key,
            deps=tuple(deps),
            description=description if description is not None else doc.split("\n\n")[0],
            tags=tuple(tags),
            code_version=code_version,
            metadata=meta,
            pool=pool,
            partitions=partitions,
            dep_mappings=mappings,
            max_partitions_per_run=max_partitions_per_run,
            retry=policy,
            on_schema_change=on_schema_change,
        )

    if fn is not None:
        return wrap(fn)
    return wrap


def _check_options(max_partitions_per_run: int | None, on_schema_change: str) -> None:
    """Refuse `@asset` options outside their domain."""
    from sqlorch.errors import ConfigError

    if max_partitions_per_run is not None and max_partitions_per_run < 1:
        raise ConfigError("@asset(max_partitions_per_run=...) must be 1 or more, or None.")
    if on_schema_change not in ("fail", "append_new_columns", "sync_all_columns"):
        raise ConfigError(
            f"@asset(on_schema_change={on_schema_change!r}) is not one of 'fail', "
            "'append_new_columns', 'sync_all_columns'."
        )


def _with_automation(meta: dict[str, Any], automation: Any) -> dict[str, Any]:
    """Return the asset's metadata with its automation conditions under `sqlorch`."""
    if automation is None:
        return meta
    from sqlorch.api.automation import conditions_config

    own = dict(meta.get("sqlorch") or {})
    own["automation"] = conditions_config(automation)
    meta["sqlorch"] = own
    return meta


@dataclass(slots=True)
class MaterializeResult:
    """A Python asset's return value when it also reports metadata."""

    data: Any = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class AssetContext:
    """What a Python asset receives as its `context` argument."""

    key: str
    run_id: str
    warehouse: Warehouse
    log: logging.Logger
    partition: PartitionContext | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    rate_limiter: RateLimiter | None = None
    attempt: int = 1
    #: asset key -> the relation to read it from (the build's environment, else production)
    relations: Callable[[str], str] | None = None

    def relation(self, key: str) -> str:
        """The relation (`schema.name`) to read asset `key` from, for SQL you write.

        In production it is the key itself; in an environment (`SQLORCH_ENV`), the asset's
        own key is the environment's relation, and another asset's is the environment's
        relation when the environment has it, else production's (`--defer`).
        """
        return self.relations(key) if self.relations is not None else key

    @property
    def schema(self) -> str:
        """The schema of the asset's table."""
        return self.key.rsplit(".", 1)[0]

    @property
    def table(self) -> str:
        """The asset's table name (without schema)."""
        return self.key.rsplit(".", 1)[1]

    @property
    def files(self) -> tuple[Path, ...]:
        """The files a folder sensor (or a `@sensor` request) handed to this run of the asset.

        Empty outside runs that automation launched for new files.
        """
        import json
        import os

        handed = json.loads(os.environ.get(FILES_ENV) or "{}")
        return tuple(Path(p) for p in handed.get(self.key, ()))

    def add_metadata(self, **values: Any) -> None:
        """Record metadata with this materialization."""
        self.metadata.update(values)

    def throttle(self) -> float:
        """Wait for the asset's pool's request rate (`pools.NAME.rate`); call before each request.

        Returns the seconds waited (0 when the pool has no rate, or the asset no pool).
        """
        return self.rate_limiter.acquire() if self.rate_limiter is not None else 0.0


@dataclass(frozen=True, slots=True)
class PartitionContext:
    """The partition (or contiguous range of partitions) one call of an asset produces.

    `key` is the first partition's key and `keys` all of them; for time partitions `start`
    and `end` bound the window [start, end) (time-zone aware, in the definition's zone);
    `values` holds each static dimension's key by its column.
    """

    key: str
    keys: tuple[str, ...]
    start: datetime | None = None
    end: datetime | None = None
    values: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_range(self) -> bool:
        """True when this call covers more than one partition."""
        return len(self.keys) > 1
