"""Built-in checks, their declarations, durations, retry policies and rate limits (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sqlorch.api.checks import check
from sqlorch.api.retries import (
    Backoff,
    RateLimiter,
    RetryPolicy,
    is_transient,
    next_delay,
    retry_policy,
)
from sqlorch.core.checks import Observed, builtin_check_configs, run_builtin
from sqlorch.errors import ConfigError
from sqlorch.settings import parse_duration

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def rows(n: int | None) -> Observed:
    return Observed(n, None, None)


def row_count(**options: object) -> dict[str, object]:
    return builtin_check_configs({"row_count": options or True}, "test")[0]


@pytest.mark.parametrize(
    ("before", "after", "passed"),
    [
        (1000, 400, False),  # a 60% drop
        (1000, 900, True),  # a 10% drop
        (1000, 500, True),  # exactly the limit is not more than it
        (1000, 5000, True),  # growth
        (None, 10, True),  # the first materialization
        (1000, 0, False),  # zero rows
        (None, 0, False),  # zero rows, first time
    ],
)
def test_row_count_anomaly(before: int | None, after: int, passed: bool) -> None:
    previous = rows(before) if before is not None else None
    result = run_builtin(row_count(), "raw.x", rows(after), previous, NOW)
    assert result.passed is passed, result.message
    if before and after and not passed:
        assert f"{before:,} -> {after:,}" in result.message
        assert result.metadata["drop_pct"] == pytest.approx((before - after) / before * 100)


def test_row_count_limit_and_minimum_are_configurable() -> None:
    strict = row_count(max_drop_pct=5, min_rows=100)
    assert not run_builtin(strict, "raw.x", rows(900), rows(1000), NOW).passed
    assert not run_builtin(strict, "raw.x", rows(99), None, NOW).passed
    assert run_builtin(row_count(min_rows=0), "raw.x", rows(0), None, NOW).passed
    # a view has no row count: nothing to judge
    assert run_builtin(row_count(), "raw.v", rows(None), rows(10), NOW).passed


def cols(*pairs: tuple[str, str]) -> Observed:
    return Observed(1, list(pairs), None)


def test_schema_change() -> None:
    config = builtin_check_configs({"schema_change": True}, "test")[0]
    before = cols(("id", "BIGINT"), ("amount", "DOUBLE"), ("note", "VARCHAR"))
    same = run_builtin(
        config, "k", cols(("ID", "bigint"), ("amount", "DOUBLE"), ("note", "VARCHAR")), before, NOW
    )
    assert same.passed
    added = run_builtin(config, "k", cols(*before.columns or (), ("extra", "INT")), before, NOW)
    assert added.passed and added.metadata["added"] == ["extra"]
    changed = run_builtin(config, "k", cols(("id", "VARCHAR"), ("amount", "DOUBLE")), before, NOW)
    assert not changed.passed
    assert changed.metadata["removed"] == ["note"]
    assert changed.metadata["type_changed"] == ["id BIGINT -> VARCHAR"]
    assert "note" in changed.message and "id BIGINT -> VARCHAR" in changed.message
    assert run_builtin(config, "k", before, None, NOW).passed  # nothing to compare with


def test_freshness_by_materialization_time_and_by_column() -> None:
    config = builtin_check_configs({"freshness": {"max_age": "26h"}}, "test")[0]
    assert config["max_age_s"] == 26 * 3600
    built = (NOW - timedelta(hours=25)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    old = (NOW - timedelta(hours=27)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert run_builtin(config, "k", None, Observed(1, None, built), NOW).passed
    stale = run_builtin(config, "k", None, Observed(1, None, old), NOW)
    assert not stale.passed and "1d3h" in stale.message and "26h" in stale.message
    assert not run_builtin(config, "k", None, None, NOW).passed  # nothing dates it

    by_column = builtin_check_configs({"freshness": {"max_age": "1d", "column": "ts"}}, "t")[0]

    def newest(column: str) -> datetime | None:
        assert column == "ts"
        return datetime(2026, 11, 21, 12, 0)  # naive: read as UTC

    result = run_builtin(by_column, "k", rows(5), None, NOW, newest)
    assert not result.passed and result.metadata["age_s"] == 2 * 86400
    assert not run_builtin(by_column, "k", rows(0), None, NOW, lambda c: None).passed


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ({"row_cnt": True}, "Unknown built-in check 'row_cnt'"),
        ({"row_count": {"max_drop": 5}}, "Unknown option(s) max_drop"),
        ({"row_count": {"max_drop_pct": 150}}, "0-100"),
        ({"freshness": {"max_age": "soon"}}, "not a duration"),
        ({"schema_change": {"severity": "fatal"}}, "error or warn"),
        (["row_count"], "must be a table"),
    ],
)
def test_bad_check_declarations_are_clear_errors(raw: object, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        builtin_check_configs(raw, "[tool.sqlorch.checks] of pyproject.toml ('marts')")
    assert needle in err.value.message
    assert "pyproject.toml" in err.value.message or "Unknown built-in" in err.value.message


def test_severity_warn_makes_a_builtin_non_blocking() -> None:
    (config,) = builtin_check_configs({"schema_change": {"severity": "warn"}}, "t")
    assert config["severity"] == "warn"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("26h", 93600), ("90m", 5400), ("1d12h", 129600), ("45s", 45), (30, 30), ("1.5h", 5400)],
)
def test_parse_duration(text: object, seconds: float) -> None:
    assert parse_duration(text, "x") == seconds


def test_check_decorator_needs_an_asset() -> None:
    with pytest.raises(TypeError, match="asset="):

        @check
        def nothing() -> bool:
            return True

    @check(asset="marts.fct", blocking=False)
    def positive(rows: object) -> bool:
        """Every amount is positive.

        More text."""
        return True

    assert positive.name == "positive" and not positive.blocking
    assert positive.description == "Every amount is positive."
    assert positive.params == ("rows",)


# --------------------------------------------------------------------------- retries and rates


def test_backoff_shapes() -> None:
    assert [RetryPolicy(3, Backoff.EXPONENTIAL, 1).delay(a) for a in (1, 2, 3)] == [1, 2, 4]
    assert [RetryPolicy(3, Backoff.LINEAR, 2).delay(a) for a in (1, 2, 3)] == [2, 4, 6]
    assert [RetryPolicy(3, Backoff.CONSTANT, 5).delay(a) for a in (1, 2, 3)] == [5, 5, 5]
    assert RetryPolicy(10, Backoff.EXPONENTIAL, 1, max_delay_s=10).delay(8) == 10


def test_next_delay_follows_the_policy_then_transient_errors() -> None:
    policy = retry_policy(2, "linear", "10s")
    boom = ValueError("the API said no")
    assert [next_delay(policy, a, boom) for a in (1, 2, 3)] == [10, 20, None]
    assert next_delay(None, 1, boom) is None
    lock = RuntimeError("IO Error: Could not set lock on file x.duckdb: Conflicting lock")
    assert [next_delay(None, a, lock) for a in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, None]


def test_transient_errors_are_found_through_the_cause_chain() -> None:
    try:
        try:
            raise ConnectionResetError(104, "Connection reset by peer")
        except ConnectionResetError as inner:
            raise ValueError("fetching page 3 failed") from inner
    except ValueError as outer:
        assert is_transient(outer)
    assert is_transient(RuntimeError("TransactionContext Error: write-write conflict on t"))
    assert not is_transient(ValueError("division by zero"))


@pytest.mark.parametrize(
    ("args", "needle"),
    [((-1,), "integer >= 0"), ((2, "fibonacci"), "constant, linear or exponential")],
)
def test_bad_retry_declarations(args: tuple[object, ...], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        retry_policy(*args)


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


def test_rate_limiter_spaces_requests_at_the_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(4.0, clock=clock, sleep=clock.sleep)
    stamps = []
    for _ in range(9):
        limiter.acquire()
        stamps.append(clock.t)
    assert stamps[0] == 0.0
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    assert all(g == pytest.approx(0.25) for g in gaps)
    # time that passed on its own is credited (up to one request's worth)
    clock.t += 10
    assert limiter.acquire() == 0.0
    assert limiter.acquire() == pytest.approx(0.25)


def test_freshness_without_max_age_needs_a_partitioned_asset() -> None:
    from sqlorch.core.graph import AssetGraph, AssetKind, AssetNode
    from sqlorch.core.partitions.definitions import daily
    from sqlorch.load.checks import attach_checks

    graph = AssetGraph(
        [
            AssetNode("main.plain", AssetKind.MODEL, "plain"),
            AssetNode("main.daily", AssetKind.MODEL, "daily", partitions=daily("2024-01-01")),
        ]
    )
    with pytest.raises(ConfigError, match=r"freshness check of main.plain .* needs `max_age`"):
        attach_checks(graph, [], {"main.plain": {"freshness": True}}, "pyproject.toml")
    with_checks, _ = attach_checks(graph, [], {"main.daily": {"freshness": True}})
    (node,) = with_checks.checks.values()
    assert node.name == "freshness_daily" and node.config == {
        "type": "freshness",
        "severity": "error",
    }
