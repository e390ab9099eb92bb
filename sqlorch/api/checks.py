"""Checks beyond dbt's tests: `@check` functions in Python and the built-in checks.

A `@check(asset=...)` function receives what it asks for by parameter name -- `context` (a
`CheckContext`), `connection` (the warehouse connection), `rows` (the asset's rows as a
pyarrow Table; for a partitioned asset, the partition's rows) -- and returns a bool or a
`CheckResult` with metadata. Built-in checks (`row_count`, `schema_change`, `freshness`) are
declared in settings or in a dbt node's `meta: {sqlorch: {checks: ...}}`.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, overload

from sqlorch.errors import ConfigError, SelectionError

if TYPE_CHECKING:
    from sqlorch.core.graph import AssetGraph, CheckNode
    from sqlorch.core.partitions import PartitionsDefinition
    from sqlorch.execute.policies import RunPolicies
    from sqlorch.load.discovery import FoundCheck
    from sqlorch.warehouse.base import Warehouse

CHECK_PARAMS = frozenset({"context", "connection", "rows"})
BUILTIN_TYPES = ("row_count", "schema_change", "freshness")


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of a check: passed or not, a short message and metadata to record."""

    passed: bool
    message: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CheckDefinition:
    """A Python check as declared by `@check`."""

    fn: Callable[..., Any]
    asset: str
    name: str
    blocking: bool = True
    description: str = ""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    @property
    def params(self) -> tuple[str, ...]:
        """The names of the function's parameters."""
        return tuple(inspect.signature(self.fn).parameters)


@overload
def check(fn: Callable[..., Any], /) -> CheckDefinition: ...


@overload
def check(
    *,
    asset: str,
    name: str | None = None,
    blocking: bool = True,
    description: str | None = None,
) -> Callable[[Callable[..., Any]], CheckDefinition]: ...


def check(
    fn: Callable[..., Any] | None = None,
    *,
    asset: str | None = None,
    name: str | None = None,
    blocking: bool = True,
    description: str | None = None,
) -> CheckDefinition | Callable[[Callable[..., Any]], CheckDefinition]:
    """Declare a Python check of one asset.

    Args:
        asset: the asset it checks: a key (`marts.fct_delays`), a dbt node name, or
            `source_name.table`.
        name: the check's name; default the function's name.
        blocking: a failure stops the asset's downstream in the run and keeps the asset
            stale until the check passes (default True); False only records and reports.
        description: default the docstring's first paragraph.

    The function may take `context` (a `CheckContext`), `connection` and `rows`; it returns
    True/False or a `CheckResult`. An exception counts as an error (a failure).
    """

    def wrap(f: Callable[..., Any]) -> CheckDefinition:
        if asset is None:
            raise TypeError("@check needs asset=: the key or name of the asset it checks")
        doc = inspect.getdoc(f) or ""
        return CheckDefinition(
            fn=f,
            asset=asset,
            name=name or f.__name__,
            blocking=blocking,
            description=description if description is not None else doc.split("\n\n")[0],
        )

    if fn is not None:
        if asset is None:
            raise TypeError("@check needs asset=: write @check(asset='schema.name')")
        return wrap(fn)
    return wrap


@dataclass(slots=True)
class CheckContext:
    """What a Python check receives as `context`."""

    asset: str
    run_id: str
    warehouse: Warehouse
    log: logging.Logger
    partition: Any = None
    partition_filter: str | None = None
    partition_params: Sequence[Any] = ()

    @property
    def connection(self) -> Any:
        """The warehouse connection (DuckDB: a cursor of the run's database)."""
        return self.warehouse.connection

    @property
    def table(self) -> str:
        """The asset's relation, quoted for SQL."""
        from sqlorch.warehouse.duckdb import quote_key

        return quote_key(self.asset)

    def rows(self) -> Any:
        """Return the asset's rows (the partition's, when partitioned) as a pyarrow Table."""
        where = f" WHERE {self.partition_filter}" if self.partition_filter else ""
        sql = f"SELECT * FROM {self.table}{where}"
        params = list(self.partition_params) or None
        return self.connection.sql(sql, params=params).to_arrow_table()


def run_python_check(defn: CheckDefinition, ctx: CheckContext) -> CheckResult:
    """Call a `@check` function with the arguments it asks for and read its result.

    Raises:
        Exception: whatever the function raises (the caller records it as an error).
    """
    kwargs: dict[str, Any] = {}
    for param in defn.params:
        if param == "context":
            kwargs["context"] = ctx
        elif param == "connection":
            kwargs["connection"] = ctx.connection
        elif param == "rows":
            rows = ctx.rows()
            kwargs["rows"] = rows.read_all() if hasattr(rows, "read_all") else rows
    value = defn.fn(**kwargs)
    if isinstance(value, CheckResult):
        return value
    if isinstance(value, bool):
        return CheckResult(passed=value)
    raise TypeError(
        f"returned {type(value).__name__} ({value!r:.60}); a check returns True/False or "
        "sqlorch.CheckResult(passed=..., metadata={...})"
    )


# --------------------------------------------------------------------------- built-in checks


@dataclass(frozen=True, slots=True)
class Observed:
    """What is known of one materialization of an asset when a built-in check runs."""

    rows: int | None
    columns: Sequence[tuple[str, str]] | None
    materialized_at: str | None


def builtin_check_configs(raw: Any, where: str) -> list[dict[str, Any]]:
    """Validate built-in check declarations (`{row_count: {...}, freshness: {...}}`).

    Each value may be `true` (defaults) or a table of options; `severity` is `error`
    (blocking, the default) or `warn`.

    Raises:
        ConfigError: an unknown check type or option, or a bad value.
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"Built-in checks in {where} must be a table like "
            "`{row_count = {max_drop_pct = 50}, schema_change = true}`."
        )
    out: list[dict[str, Any]] = []
    for kind, options in raw.items():
        if kind not in BUILTIN_TYPES:
            raise ConfigError(
                f"Unknown built-in check {kind!r} in {where}. Known: {', '.join(BUILTIN_TYPES)}."
            )
        if options is False:
            continue
        opts = {} if options is True else options
        if not isinstance(opts, Mapping):
            raise ConfigError(f"Check {kind!r} in {where} must be true or a table of options.")
        allowed = {
            "row_count": {"max_drop_pct", "min_rows", "severity"},
            "schema_change": {"severity"},
            "freshness": {"max_age", "column", "severity"},
        }[kind]
        unknown = sorted(set(opts) - allowed)
        if unknown:
            raise ConfigError(
                f"Unknown option(s) {', '.join(unknown)} of check {kind!r} in {where}. "
                f"Known: {', '.join(sorted(allowed))}."
            )
        config: dict[str, Any] = {"type": kind, "severity": str(opts.get("severity", "error"))}
        if config["severity"] not in ("error", "warn"):
            raise ConfigError(f"`severity` of check {kind!r} in {where} must be error or warn.")
        if kind == "row_count":
            pct = opts.get("max_drop_pct", 50)
            if not isinstance(pct, int | float) or not 0 <= pct <= 100:
                raise ConfigError(
                    f"`max_drop_pct` of check row_count in {where} must be 0-100 (percent)."
                )
            min_rows = opts.get("min_rows", 1)
            if not isinstance(min_rows, int) or min_rows < 0:
                raise ConfigError(f"`min_rows` of check row_count in {where} must be an int >= 0.")
            config.update(max_drop_pct=float(pct), min_rows=min_rows)
        elif kind == "freshness":
            # without max_age only a partitioned asset's check makes sense (its latest
            # complete partition must be present); attach_checks enforces that
            if "max_age" in opts:
                config["max_age_s"] = parse_duration(opts["max_age"], f"max_age in {where}")
                config["max_age"] = str(opts["max_age"])
            if "column" in opts:
                if not isinstance(opts["column"], str):
                    raise ConfigError(f"`column` of check freshness in {where} must be a name.")
                config["column"] = opts["column"]
        out.append(config)
    return out


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|m|s)")


def parse_duration(value: Any, where: str) -> float:
    """Return seconds of a duration like `26h`, `90m`, `1d12h`, `45s` (or a number of seconds).

    Raises:
        ConfigError: the value is not a duration.
    """
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    text = str(value).strip().lower().replace(" ", "")
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ConfigError(
            f"{where}: {value!r} is not a duration. Write e.g. 26h, 90m, 1d12h or 45s."
        )
    unit = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    return float(sum(float(n) * unit[u] for n, u in parts))


def run_builtin(
    config: Mapping[str, Any],
    key: str,
    current: Observed | None,
    previous: Observed | None,
    now: datetime,
    newest_value: Callable[[str], datetime | None] | None = None,
) -> CheckResult:
    """Evaluate one built-in check of `key` (pure: the caller supplies what was observed).

    Args:
        config: from `builtin_check_configs`.
        current: this run's materialization (None: the asset was not built in this run).
        previous: the materialization before it (None: the first one).
        now: the current time (UTC, aware).
        newest_value: returns the newest value of a column (freshness with `column`).
    """
    kind = config["type"]
    if kind == "row_count":
        return _row_count(config, current, previous)
    if kind == "schema_change":
        return _schema_change(current, previous)
    if kind == "freshness":
        return _freshness(config, key, current or previous, now, newest_value)
    raise ValueError(f"unknown built-in check {kind!r}")


def _row_count(
    config: Mapping[str, Any], current: Observed | None, previous: Observed | None
) -> CheckResult:
    rows = current.rows if current else None
    if rows is None:
        return CheckResult(True, "no row count (a view, or not built in this run)")
    meta: dict[str, Any] = {"rows": rows}
    min_rows = int(config.get("min_rows", 1))
    if rows < min_rows:
        return CheckResult(False, f"{rows:,} rows, fewer than the minimum {min_rows:,}", meta)
    before = previous.rows if previous else None
    if before:
        drop = (before - rows) / before * 100
        meta.update(previous_rows=before, drop_pct=round(drop, 2))
        limit = float(config.get("max_drop_pct", 50))
        if drop > limit:
            return CheckResult(
                False,
                f"rows dropped {drop:.1f}% ({before:,} -> {rows:,}), more than {limit:g}%",
                meta,
            )
    return CheckResult(True, "", meta)


def _schema_change(current: Observed | None, previous: Observed | None) -> CheckResult:
    if current is None or current.columns is None or previous is None or not previous.columns:
        return CheckResult(True, "nothing to compare with")
    now = {n.lower(): t for n, t in current.columns}
    removed = [n for n, _ in previous.columns if n.lower() not in now]
    changed = [
        f"{n} {t} -> {now[n.lower()]}"
        for n, t in previous.columns
        if n.lower() in now and now[n.lower()].upper() != t.upper()
    ]
    before = {n.lower() for n, _ in previous.columns}
    added = [n for n, _ in current.columns if n.lower() not in before]
    meta: dict[str, Any] = {"removed": removed, "type_changed": changed, "added": added}
    problems = []
    if removed:
        problems.append("column(s) removed: " + ", ".join(removed))
    if changed:
        problems.append("type(s) changed: " + ", ".join(changed))
    return CheckResult(not problems, "; ".join(problems), meta)


def _freshness(
    config: Mapping[str, Any],
    key: str,
    latest: Observed | None,
    now: datetime,
    newest_value: Callable[[str], datetime | None] | None,
) -> CheckResult:
    max_age = float(config["max_age_s"])
    column = config.get("column")
    newest: datetime | None
    if column:
        newest = newest_value(column) if newest_value is not None else None
        what = f"newest {column}"
        if newest is None:
            return CheckResult(False, f"{key} has no {column} values (empty or all null)")
    else:
        what = "last materialization"
        if latest is None or latest.materialized_at is None:
            return CheckResult(
                False,
                f"{key} has no materialization to date it by; give its freshness check a "
                "`column` (a timestamp in the table)",
            )
        newest = parse_ts(latest.materialized_at)
    if newest.tzinfo is None:
        newest = newest.replace(tzinfo=now.tzinfo)
    age = (now - newest).total_seconds()
    meta = {"age_s": round(age, 1), "max_age_s": max_age, "newest": newest.isoformat()}
    if age > max_age:
        return CheckResult(
            False,
            f"{what} is {format_age(age)} old ({newest.isoformat()}), older than "
            f"{config.get('max_age', format_age(max_age))}",
            meta,
        )
    return CheckResult(True, "", meta)


def parse_ts(text: str) -> datetime:
    """Parse the state store's ISO-8601 timestamps (with a Z suffix)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def format_age(seconds: float) -> str:
    """Format an age for people: 3d4h, 5h12m, 4m10s."""
    td = timedelta(seconds=int(seconds))
    days, rest = td.days, td.seconds
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes}m"
    return f"{minutes}m{secs}s"


def run_side_check(
    check: CheckNode,
    policies: RunPolicies,
    session: Warehouse,
    run_id: str,
    log: logging.Logger,
    current: Observed | None,
    partitions: PartitionsDefinition | None = None,
) -> CheckResult:
    """Run a `@check` or built-in check of `check.asset_keys[0]` on a warehouse session.

    Args:
        current: the asset's materialization in this run (None: an observed source, read
            from the warehouse now).

    Raises:
        Exception: what a `@check` function raises, or a warehouse error.
    """
    from sqlorch.core.graph import CheckKind

    key = check.asset_keys[0]
    if check.kind == CheckKind.PYTHON:
        ctx = CheckContext(asset=key, run_id=run_id, warehouse=session, log=log)
        return run_python_check(policies.python_checks[check.unique_id], ctx)
    if current is None:
        cols = session.table_columns([key]).get(key)
        if cols is None:
            return CheckResult(False, f"{key} does not exist in the warehouse")
        rows = session.row_counts([key]).get(key)
        before = policies.previous.get(key)
        # as it is now; dated by its last materialization (none for an observed source)
        current = Observed(
            rows, [(c.name, c.type) for c in cols], before.materialized_at if before else None
        )

    def newest_value(column: str) -> datetime | None:
        from sqlorch.warehouse.duckdb import quote_key

        ident = '"' + column.replace('"', '""') + '"'
        value = session.connection.execute(f"SELECT max({ident}) FROM {quote_key(key)}").fetchone()
        return _as_datetime(value[0] if value else None)

    now = policies.now()
    if check.config["type"] == "freshness" and partitions is not None:
        latest = latest_partition_present(partitions, session, key, now)
        if not latest.passed or "max_age_s" not in check.config:
            return latest
    return run_builtin(check.config, key, current, policies.previous.get(key), now, newest_value)


def latest_partition_present(
    definition: PartitionsDefinition, session: Warehouse, key: str, now: datetime
) -> CheckResult:
    """Pass when the table holds rows of the latest complete partition (of every prefix)."""
    from sqlorch.warehouse.duckdb import quote_key
    from sqlorch.warehouse.sql import filter_sql

    n = definition.count(now)
    if n <= 0:
        return CheckResult(True, "no partition is complete yet")
    missing: list[str] = []
    for prefix in definition.prefixes():
        where, params = filter_sql(definition, prefix, n - 1, n - 1)
        if not where:
            return CheckResult(
                False,
                f"{key} declares no partition column, so the latest partition cannot be looked "
                "up in its table; give the partitions a `column` or the check a `max_age`",
            )
        row = session.connection.execute(
            f"SELECT count(*) FROM {quote_key(key)} WHERE {where}", params
        ).fetchone()
        if not row or not row[0]:
            missing.append(definition.key(prefix, n - 1))
    latest = definition.key(definition.prefixes()[0], n - 1)
    meta = {"latest_partition": latest, "missing": missing}
    if missing:
        return CheckResult(
            False, f"the latest complete partition is missing: {', '.join(missing)}", meta
        )
    return CheckResult(True, "", meta)


def _as_datetime(value: Any) -> datetime | None:
    from datetime import date

    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    return parse_ts(str(value))


# --------------------------------------------------------------------------- the graph's checks


def attach_checks(
    graph: AssetGraph,
    found: Sequence[FoundCheck],
    declared: Mapping[str, Any],
    settings_file: str | None = None,
) -> tuple[AssetGraph, dict[str, CheckDefinition]]:
    """Add the `@check` functions and the declared built-in checks to `graph`.

    Built-ins come from the `checks` setting (selector -> checks; the selector's assets get
    them) and from each asset's `meta: {sqlorch: {checks: ...}}` (dbt) or
    `metadata={"sqlorch": {"checks": ...}}` (Python), which wins for the same check type.

    Returns:
        the graph with the new check nodes, and the Python checks by unique id.

    Raises:
        ConfigError: a check names an unknown or ambiguous asset, or is malformed.
    """
    from sqlorch.core.graph import AssetGraph, CheckKind, CheckNode

    nodes: dict[str, CheckNode] = {}
    python: dict[str, CheckDefinition] = {}
    for fc in found:
        d = fc.definition
        key = _resolve_asset(graph, d.asset, f"@check {d.name!r} ({fc.file}:{fc.line})")
        bad = [p for p in d.params if p not in CHECK_PARAMS]
        if bad:
            raise ConfigError(
                f"@check {d.name!r} ({fc.file}:{fc.line}) takes {', '.join(bad)}; a check may "
                f"take only {', '.join(sorted(CHECK_PARAMS))}.",
                asset=key,
                file=fc.file,
                line=fc.line,
            )
        uid = f"check.python.{fc.module}.{d.name}"
        if uid in nodes:
            raise ConfigError(
                f"Two @check functions are named {d.name!r} in {fc.module} ({fc.file}). "
                "Give one of them another `name=`.",
                file=fc.file,
                line=fc.line,
            )
        nodes[uid] = CheckNode(
            unique_id=uid,
            name=d.name,
            asset_keys=(key,),
            fqn=(*fc.module.split("."), d.name),
            file=fc.file,
            line=fc.line,
            severity="error" if d.blocking else "warn",
            kind=CheckKind.PYTHON,
        )
        python[uid] = d

    builtins: dict[tuple[str, str], tuple[dict[str, Any], str | None]] = {}
    if declared:
        from sqlorch.core.selection import resolve_selection

        where = f"[tool.sqlorch.checks] of {settings_file or 'the settings'}"
        for selector, raw in declared.items():
            configs = builtin_check_configs(raw, f"{where} ({selector!r})")
            try:
                keys = resolve_selection(graph, [selector], []).keys
            except SelectionError as exc:
                raise ConfigError(f"{where}: {exc.message}") from exc
            if not keys:
                raise ConfigError(
                    f"The selector {selector!r} under {where} matches no asset. "
                    "`sqlorch ls -s SELECTOR` shows what a selector matches."
                )
            for key in keys:
                for config in configs:
                    builtins[(key, config["type"])] = (config, settings_file)
    for node in graph:
        meta = node.metadata.get("sqlorch") if isinstance(node.metadata, Mapping) else None
        if not isinstance(meta, Mapping) or "checks" not in meta:
            continue
        where = f"meta.sqlorch.checks of {node.key} ({node.file})"
        for config in builtin_check_configs(meta["checks"], where):
            builtins[(node.key, config["type"])] = (config, node.file)
    for (key, kind), (config, file) in sorted(builtins.items()):
        if kind == "freshness" and "max_age_s" not in config and not graph.assets[key].partitions:
            raise ConfigError(
                f'The freshness check of {key} ({file}) needs `max_age` (e.g. "26h"): only a '
                "partitioned asset's freshness can do without (its latest complete partition "
                "must be present)."
            )
        table = key.rsplit(".", 1)[1]
        uid = f"check.builtin.{key}.{kind}"
        nodes[uid] = CheckNode(
            unique_id=uid,
            name=f"{kind}_{table}",
            asset_keys=(key,),
            fqn=("sqlorch", kind, key),
            file=file,
            severity=str(config["severity"]),
            kind=CheckKind.BUILTIN,
            config=config,
        )
    if not nodes:
        return graph, python
    return AssetGraph(graph.assets.values(), [*graph.checks.values(), *nodes.values()]), python


def _resolve_asset(graph: AssetGraph, name: str, what: str) -> str:
    wanted = name.lower()
    if wanted in graph.assets:
        return wanted
    matches = sorted(
        n.key
        for n in graph.assets.values()
        if n.name.lower() == wanted or wanted in (s.lower() for s in n.source_names)
    )
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise ConfigError(
            f"{what} checks {name!r}, which is no asset of this project. Use an asset key "
            "(`schema.name`), a dbt node name or `source_name.table`; `sqlorch ls` lists them."
        )
    raise ConfigError(
        f"{what} checks {name!r}, which names several assets: {', '.join(matches)}. "
        "Use the full `schema.name` key."
    )
