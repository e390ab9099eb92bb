"""What a project declares for automation, read once into typed values (with clear errors).

Schedules and folder sensors come from `[tool.sqlorch.schedules.NAME]` and
`[tool.sqlorch.sensors.NAME]`; asset conditions from `[tool.sqlorch.automation."SELECTOR"]`,
dbt `meta: {sqlorch: {automation: {...}}}` and `@asset(automation=...)` (the asset's own
declaration wins over a selector's); Python sensors are `@sensor` functions in the ingest
modules.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlorch.api.automation import SensorDefinition
from sqlorch.automation.cron import Cron, parse_cron
from sqlorch.core.graph import AssetGraph
from sqlorch.errors import ConfigError, SelectionError
from sqlorch.settings import Settings, parse_duration

#: resolve (select, exclude) to asset keys; raises SelectionError when nothing matches
Resolve = Callable[[tuple[str, ...], tuple[str, ...]], frozenset[str]]


class CatchUp(StrEnum):
    """What a schedule does with the ticks it missed (the daemon was down, a tick was late)."""

    LATEST = "latest"  # one run for the newest missed tick
    ALL = "all"  # a tick record (and run key) per missed tick, up to a cap; one run


class SourceKind(StrEnum):
    """What kind of automation a source is."""

    SCHEDULE = "schedule"
    SENSOR = "sensor"
    ASSET = "asset"


@dataclass(frozen=True, slots=True)
class Schedule:
    """A cron schedule that builds the stale set of a selection."""

    name: str
    cron: Cron
    select: tuple[str, ...]
    exclude: tuple[str, ...]
    keys: frozenset[str]
    catch_up: CatchUp = CatchUp.LATEST
    max_catch_up: int = 10
    full: bool = False
    where: str = ""

    @property
    def source(self) -> str:
        """The source id (tick history, cursors, pauses)."""
        return f"schedule:{self.name}"


@dataclass(frozen=True, slots=True)
class FolderSensor:
    """Files matching a glob: each new, settled file is handed to a run of the selection."""

    name: str
    pattern: str
    root: Path
    select: tuple[str, ...]
    keys: frozenset[str]
    interval_s: float = 30.0
    settle_s: float = 2.0
    partition: re.Pattern[str] | None = None
    where: str = ""

    @property
    def source(self) -> str:
        """The source id."""
        return f"sensor:{self.name}"

    @property
    def folder(self) -> Path:
        """The folder the glob starts in (its part before the first wildcard)."""
        fixed: list[str] = []
        for part in Path(self.pattern).parts:
            if any(c in part for c in "*?["):
                break
            fixed.append(part)
        if fixed and len(fixed) == len(Path(self.pattern).parts):
            fixed.pop()  # a plain file name: its folder
        return self.root.joinpath(*fixed) if fixed else self.root


@dataclass(frozen=True, slots=True)
class FunctionSensor:
    """An `@sensor` function and the keys its selection resolves to."""

    definition: SensorDefinition
    keys: frozenset[str]
    interval_s: float
    where: str

    @property
    def name(self) -> str:
        """The sensor's name."""
        return self.definition.name

    @property
    def source(self) -> str:
        """The source id."""
        return f"sensor:{self.definition.name}"


@dataclass(frozen=True, slots=True)
class AssetConditions:
    """The declarative automation of one asset."""

    key: str
    eager: bool = False
    on_cron: Cron | None = None
    on_missing: bool = False
    max_lag_s: float | None = None
    where: str = ""

    @property
    def source(self) -> str:
        """The source id."""
        return f"asset:{self.key}"

    def describe(self) -> str:
        """Return the conditions as a short phrase."""
        parts = ["eager"] if self.eager else []
        if self.on_cron is not None:
            parts.append(f"on_cron({self.on_cron.expression!r}, {self.on_cron.timezone})")
        if self.on_missing:
            parts.append("on_missing")
        if self.max_lag_s is not None:
            parts.append(f"max_lag {_span(self.max_lag_s)}")
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class DaemonOptions:
    """`[tool.sqlorch.daemon]`: the run queue and the lease."""

    max_concurrent_runs: int = 1
    heartbeat_s: float = 3.0
    lease_ttl_s: float = 15.0
    shutdown_grace_s: float = 60.0


@dataclass(frozen=True, slots=True)
class AutomationSpec:
    """Everything a project automates."""

    schedules: tuple[Schedule, ...] = ()
    folder_sensors: tuple[FolderSensor, ...] = ()
    function_sensors: tuple[FunctionSensor, ...] = ()
    assets: Mapping[str, AssetConditions] = field(default_factory=dict)
    daemon: DaemonOptions = DaemonOptions()

    @property
    def sources(self) -> list[str]:
        """Every source id."""
        return [
            *(s.source for s in self.schedules),
            *(s.source for s in self.folder_sensors),
            *(s.source for s in self.function_sensors),
            *(a.source for a in self.assets.values()),
        ]

    @property
    def is_empty(self) -> bool:
        """True when nothing is automated."""
        return not self.sources


_SCHEDULE_KEYS = {"cron", "timezone", "select", "exclude", "catch_up", "max_catch_up", "full"}
_SENSOR_KEYS = {"path", "select", "interval", "settle", "partition"}
_CONDITION_KEYS = {"eager", "on_cron", "timezone", "on_missing", "max_lag"}
_DAEMON_KEYS = {"max_concurrent_runs", "heartbeat", "lease_ttl", "shutdown_grace"}


def read_spec(
    settings: Settings,
    graph: AssetGraph,
    resolve: Resolve,
    sensors: Iterable[SensorDefinition] = (),
) -> AutomationSpec:
    """Read every automation declaration of a project.

    Raises:
        ConfigError: a bad cron string or time zone, a selection that matches nothing, a
            sensor folder that does not exist, an unknown key (the message names the
            setting and the file, or the asset's file).
    """
    file = settings.settings_file
    schedules = tuple(
        _schedule(name, raw, f"[tool.sqlorch.schedules.{name}] in {file}", resolve)
        for name, raw in sorted(settings.schedules.items())
    )
    folders = tuple(
        _folder(
            name, raw, f"[tool.sqlorch.sensors.{name}] in {file}", settings.project_dir, resolve
        )
        for name, raw in sorted(settings.sensors.items())
    )
    functions: list[FunctionSensor] = []
    for definition in sensors:
        where = f"@sensor {definition.name} ({definition.file}:{definition.line})"
        keys = _resolve(resolve, definition.select, (), where) if definition.select else frozenset()
        interval = parse_duration(definition.interval, f"{where}: interval")
        functions.append(FunctionSensor(definition, keys, max(interval, 0.1), where))
    names = [s.name for s in folders] + [s.name for s in functions]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(
            f"Sensor name(s) {', '.join(twice)} are declared twice (settings and @sensor, or two "
            "@sensor functions): give each sensor its own name."
        )
    return AutomationSpec(
        schedules=schedules,
        folder_sensors=folders,
        function_sensors=tuple(functions),
        assets=_asset_conditions(settings, graph, resolve),
        daemon=_daemon(settings.daemon, f"[tool.sqlorch.daemon] in {file}"),
    )


def _schedule(name: str, raw: Mapping[str, Any], where: str, resolve: Resolve) -> Schedule:
    _known(raw, _SCHEDULE_KEYS, where)
    cron = parse_cron(raw.get("cron"), raw.get("timezone"), where)
    select = _strings(raw.get("select"), "select", where, required=True)
    exclude = _strings(raw.get("exclude"), "exclude", where)
    catch_up = raw.get("catch_up", "latest")
    if catch_up not in ("latest", "all"):
        raise ConfigError(f'{where}: `catch_up` must be "latest" (default) or "all".')
    cap = raw.get("max_catch_up", 10)
    if not isinstance(cap, int) or isinstance(cap, bool) or cap < 1:
        raise ConfigError(f"{where}: `max_catch_up` must be a whole number >= 1.")
    full = raw.get("full", False)
    if not isinstance(full, bool):
        raise ConfigError(f"{where}: `full` must be true or false.")
    return Schedule(
        name,
        cron,
        select,
        exclude,
        _resolve(resolve, select, exclude, where),
        CatchUp(catch_up),
        cap,
        full,
        where,
    )


def _folder(
    name: str, raw: Mapping[str, Any], where: str, root: Path, resolve: Resolve
) -> FolderSensor:
    _known(raw, _SENSOR_KEYS, where)
    pattern = raw.get("path")
    if not isinstance(pattern, str) or not pattern.strip():
        raise ConfigError(f'{where}: `path` must be a glob such as "landing/orders/*.csv".')
    select = _strings(raw.get("select"), "select", where, required=True)
    partition = raw.get("partition")
    regex: re.Pattern[str] | None = None
    if partition is not None:
        if not isinstance(partition, str) or partition.count("{key}") != 1:
            raise ConfigError(
                f"{where}: `partition` must be a file name pattern with one {{key}}, such as "
                '"orders_{key}.csv" (the key is the partition key, e.g. 2013-03-01).'
            )
        before, after = partition.split("{key}")
        regex = re.compile(f"{_glob_regex(before)}(?P<key>.+?){_glob_regex(after)}$")
    sensor = FolderSensor(
        name,
        pattern,
        root,
        select,
        _resolve(resolve, select, (), where),
        parse_duration(raw.get("interval", "30s"), f"{where}: interval"),
        parse_duration(raw.get("settle", "2s"), f"{where}: settle"),
        regex,
        where,
    )
    if not sensor.folder.is_dir():
        raise ConfigError(
            f"{where}: the folder {sensor.folder} of `path = {pattern!r}` does not exist. "
            "Create it (files are picked up once they land there) or fix the path (relative "
            "to the dbt project folder)."
        )
    return sensor


def _asset_conditions(
    settings: Settings, graph: AssetGraph, resolve: Resolve
) -> dict[str, AssetConditions]:
    out: dict[str, AssetConditions] = {}
    for selector, raw in sorted(settings.automation.items()):
        where = f'[tool.sqlorch.automation."{selector}"] in {settings.settings_file}'
        for key in sorted(_resolve(resolve, (selector,), (), where)):
            out[key] = conditions(key, raw, where)
    for node in graph:
        own = node.metadata.get("sqlorch") if isinstance(node.metadata, Mapping) else None
        declared = own.get("automation") if isinstance(own, Mapping) else None
        if declared is None:
            continue
        where = f"asset {node.key} ({node.file}{f':{node.line}' if node.line else ''})"
        if not node.is_materializable:
            raise ConfigError(f"{where}: a source is only observed; it cannot be automated.")
        out[node.key] = conditions(node.key, declared, f"{where}: automation")
    return out


def conditions(key: str, raw: object, where: str) -> AssetConditions:
    """Read one asset's conditions mapping (`{eager = true, max_lag = "2h"}`).

    Raises:
        ConfigError: the mapping is malformed (`where` names the setting or asset).
    """
    if isinstance(raw, str):
        raw = {raw: True}
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(
            f"{where}: automation must be a mapping of conditions, e.g. {{eager = true}}, "
            '{on_cron = "0 * * * *", timezone = "UTC"}, {on_missing = true}, {max_lag = "2h"}.'
        )
    _known(raw, _CONDITION_KEYS, where)
    for flag in ("eager", "on_missing"):
        if not isinstance(raw.get(flag, False), bool):
            raise ConfigError(f"{where}: `{flag}` must be true or false.")
    cron = None
    if raw.get("on_cron") is not None:
        cron = parse_cron(raw["on_cron"], raw.get("timezone"), where)
    lag = None
    if raw.get("max_lag") is not None:
        lag = parse_duration(raw["max_lag"], f"{where}: max_lag")
        if lag <= 0:
            raise ConfigError(f"{where}: `max_lag` must be longer than 0.")
    found = AssetConditions(
        key, bool(raw.get("eager")), cron, bool(raw.get("on_missing")), lag, where
    )
    if not found.describe():
        raise ConfigError(f"{where}: no condition is switched on (eager, on_cron, ...).")
    return found


def _daemon(raw: Mapping[str, Any], where: str) -> DaemonOptions:
    _known(raw, _DAEMON_KEYS, where)
    runs = raw.get("max_concurrent_runs", 1)
    if not isinstance(runs, int) or isinstance(runs, bool) or runs < 1:
        raise ConfigError(f"{where}: `max_concurrent_runs` must be a whole number >= 1.")
    return DaemonOptions(
        max_concurrent_runs=runs,
        heartbeat_s=parse_duration(raw.get("heartbeat", "3s"), f"{where}: heartbeat"),
        lease_ttl_s=parse_duration(raw.get("lease_ttl", "15s"), f"{where}: lease_ttl"),
        shutdown_grace_s=parse_duration(
            raw.get("shutdown_grace", "60s"), f"{where}: shutdown_grace"
        ),
    )


def _resolve(
    resolve: Resolve, select: tuple[str, ...], exclude: tuple[str, ...], where: str
) -> frozenset[str]:
    try:
        keys = resolve(select, exclude)
    except SelectionError as exc:
        raise ConfigError(f"{where}: {exc.message}") from exc
    if not keys:
        raise ConfigError(
            f"{where}: the selection {' '.join(select)!r} matches no asset sqlorch can build. "
            "`sqlorch ls -s ...` shows what a selection matches."
        )
    return keys


def _known(raw: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}. Known: {', '.join(sorted(known))}."
        )


def _strings(value: object, name: str, where: str, *, required: bool = False) -> tuple[str, ...]:
    if value is None and not required:
        return ()
    if isinstance(value, str) and value.strip():
        return tuple(value.split())
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f'{where}: `{name}` must be a selection such as "+marts" (or a list).')


def _glob_regex(text: str) -> str:
    return ".*".join(re.escape(part) for part in text.split("*"))


def _span(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"
