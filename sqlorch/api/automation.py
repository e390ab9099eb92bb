"""The automation API: conditions for `@asset(automation=...)` and `@sensor` functions.

A condition is a plain value (`eager()`, `on_cron("0 * * * *")`, `on_missing()`,
`max_lag("2h")`); it is stored in the asset's `metadata["sqlorch"]["automation"]` as the
same mapping a dbt model writes in `meta: {sqlorch: {automation: {...}}}` and a selector in
`[tool.sqlorch.automation."SEL"]`, so one parser (`sqlorch.automation.definitions`) reads all
three. A `@sensor` function is called by `sqlorch tick` / `sqlorch daemon` with a
`SensorContext` and returns run requests (see `RunRequest`, `SensorResult`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, overload


@dataclass(frozen=True, slots=True)
class Condition:
    """One declarative automation condition of an asset, as its settings mapping."""

    config: Mapping[str, Any]


def eager() -> Condition:
    """Materialize the asset whenever it is stale: an upstream materialized after it, its code
    changed, it was never built (its last attempt failing is not enough: fix, then retry)."""
    return Condition({"eager": True})


def on_cron(cron: str, timezone: str = "UTC") -> Condition:
    """Materialize the asset once after each `cron` tick, once its upstreams updated since."""
    return Condition({"on_cron": cron, "timezone": timezone})


def on_missing() -> Condition:
    """Materialize the asset (or its partitions) when it was never materialized."""
    return Condition({"on_missing": True})


def max_lag(duration: str) -> Condition:
    """Rebuild the asset before its last materialization is older than `duration` ("2h")."""
    return Condition({"max_lag": duration})


def conditions_config(value: Condition | Iterable[Condition] | Mapping[str, Any]) -> dict[str, Any]:
    """Return the settings mapping of `@asset(automation=...)` (conditions merged)."""
    if isinstance(value, Mapping):
        return dict(value)
    items = [value] if isinstance(value, Condition) else list(value)
    merged: dict[str, Any] = {}
    for item in items:
        if not isinstance(item, Condition):
            raise TypeError(
                "@asset(automation=...) takes eager(), on_cron(...), on_missing(), max_lag(...), "
                f"a list of them, or a mapping; got {item!r}"
            )
        merged.update(item.config)
    return merged


@dataclass(frozen=True, slots=True)
class RunRequest:
    """Ask for a run of the sensor's selection (or `select`).

    `run_key` makes the request run once, ever: a later request with the same key (from this
    sensor) is skipped. `partition_key` builds that partition of the selected partitioned
    assets (and downstream); `files` reach the assets as `context.files`.
    """

    run_key: str | None = None
    select: tuple[str, ...] | None = None
    partition_key: str | None = None
    files: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SensorResult:
    """What a sensor returns when it also moves its cursor."""

    run_requests: tuple[RunRequest, ...] = ()
    cursor: str | None = None
    #: why nothing was requested (shown in the tick history)
    skip_reason: str | None = None


@dataclass(frozen=True, slots=True)
class SensorContext:
    """What a sensor function receives: its cursor (None at first) and the evaluation time."""

    name: str
    cursor: str | None
    now: datetime


@dataclass(frozen=True, slots=True)
class SensorDefinition:
    """A Python sensor as declared by `@sensor`."""

    fn: Callable[..., Any]
    name: str
    select: tuple[str, ...] = ()
    interval: str = "30s"
    description: str = ""
    file: str | None = None
    line: int | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)


@overload
def sensor(fn: Callable[..., Any], /) -> SensorDefinition: ...


@overload
def sensor(
    *,
    select: str | Iterable[str] = (),
    interval: str = "30s",
    name: str | None = None,
) -> Callable[[Callable[..., Any]], SensorDefinition]: ...


def sensor(
    fn: Callable[..., Any] | None = None,
    *,
    select: str | Iterable[str] = (),
    interval: str = "30s",
    name: str | None = None,
) -> SensorDefinition | Callable[[Callable[..., Any]], SensorDefinition]:
    """Declare a sensor: a function the daemon calls every `interval` for run requests.

    The function takes `context` (a `SensorContext`: `cursor`, `now`) and returns None, a
    `RunRequest`, a list of them, or a `SensorResult` (requests plus the new cursor). The
    requests and the cursor are committed together with the queued run: a run key is run once.

    Args:
        select: the assets a request builds (selection syntax) unless it names its own.
        interval: how often to call the function ("30s", "5m").
        name: the sensor's name; default the function's name.
    """
    selects = (select,) if isinstance(select, str) else tuple(select)

    def wrap(f: Callable[..., Any]) -> SensorDefinition:
        try:
            file: str | None = inspect.getsourcefile(f)
            line: int | None = inspect.getsourcelines(f)[1]
        except (OSError, TypeError):
            file, line = None, None
        doc = inspect.getdoc(f) or ""
        return SensorDefinition(
            fn=f,
            name=name or f.__name__,
            select=selects,
            interval=interval,
            description=doc.split("\n\n")[0],
            file=file,
            line=line,
        )

    if fn is not None:
        return wrap(fn)
    return wrap
