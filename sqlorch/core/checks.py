"""Built-in checks (row_count, schema_change, freshness): their declarations and logic (pure).

Built-in checks are declared in settings or in a node's `meta: {sqlorch: {checks: ...}}`;
`run_builtin` evaluates one from what was observed of the asset, with `now` passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlorch.errors import ConfigError
from sqlorch.settings import parse_duration

BUILTIN_TYPES = ("row_count", "schema_change", "freshness")


class CheckStatus(StrEnum):
    """Where a check is, or how it ended (the values are dbt's test statuses)."""

    PENDING = "pending"
    RUNNING = "running"
    PASS = "pass"
    SUCCESS = "success"
    WARN = "warn"
    FAIL = "fail"
    ERROR = "error"
    SKIPPED = "skipped"

    @classmethod
    def of(cls, value: str) -> CheckStatus:
        """Read a status dbt reported; one sqlorch does not know counts as an error."""
        try:
            return cls(value)
        except ValueError:
            return cls.ERROR

    @property
    def is_open(self) -> bool:
        """True while the check has yet to end (pending or running)."""
        return self in (CheckStatus.PENDING, CheckStatus.RUNNING)

    @property
    def is_passed(self) -> bool:
        """True for an outcome that lets downstream run (pass, success or warn)."""
        return self in (CheckStatus.PASS, CheckStatus.SUCCESS, CheckStatus.WARN)

    @property
    def is_failed(self) -> bool:
        """True for a failed or errored check."""
        return self in (CheckStatus.FAIL, CheckStatus.ERROR)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of a check: passed or not, a short message and metadata to record."""

    passed: bool
    message: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)


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
    if not problems:
        return CheckResult(True, "", meta)
    return CheckResult(
        False,
        "; ".join(problems) + " (to accept the new columns, run `sqlorch build "
        "--accept-schema` on this asset; until then every build fails this check)",
        meta,
    )


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


def as_datetime(value: Any) -> datetime | None:
    """Read a column's newest value (a timestamp, a date or ISO text) as a datetime."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    return parse_ts(str(value))
