"""What a run's executor is told beyond the plan: checks' inputs, retries, rates, the clock."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlorch.api.checks import CheckDefinition
from sqlorch.api.retries import RateLimiter, RetryPolicy
from sqlorch.core.checks import Observed


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class RunPolicies:
    """Per-run inputs of the executor besides the plan (defaults: none, real clock).

    Attributes:
        python_checks: `@check` definitions by check unique id.
        previous: each asset's materialization before this run (built-in checks compare).
        retries: retry policy by asset key (from settings; `@asset(retries=)` is on the
            definition and loses to settings).
        pool_rates: requests per second by pool name (`context.throttle()`).
        now: the wall clock (freshness checks).
        sleep: waits between attempts (None: real waiting, cut short by Ctrl-C).
        monotonic: the clock of rate limits.
        direct_windows: write partitioned dbt models' windows from their compiled SQL
            (sqlorch.dbt.templates) where eligible; False leaves every window to dbt.
        accept_schema: assets whose changed columns this run accepts (`--accept-schema`):
            their `schema_change` checks pass.
        evolve_schema: partitioned Python assets whose tables take the new columns of their
            data (`--full`, `--accept-schema`) whatever their `on_schema_change`.
        native: execute dbt's compiled SQL natively where sqlorch reproduces dbt exactly
            (sqlorch.dbt.native); False: dbt executes every dbt node (`execution = "dbt"`).
        forced_dbt: asset key -> why the settings say dbt executes it.
        target: the dbt target this run writes to (`type:name`), recorded with each
            materialization (metadata `target`) so that checks compare within one target.
    """

    python_checks: Mapping[str, CheckDefinition] = field(default_factory=dict)
    previous: Mapping[str, Observed] = field(default_factory=dict)
    retries: Mapping[str, RetryPolicy] = field(default_factory=dict)
    pool_rates: Mapping[str, float] = field(default_factory=dict)
    now: Callable[[], datetime] = _now
    sleep: Callable[[float], Any] | None = None
    monotonic: Callable[[], float] = time.monotonic
    direct_windows: bool = True
    accept_schema: frozenset[str] = frozenset()
    evolve_schema: frozenset[str] = frozenset()
    native: bool = True
    forced_dbt: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None

    def rate_limiters(self) -> dict[str, RateLimiter]:
        """One token bucket per rate-limited pool, for one run."""
        sleep = self.sleep or time.sleep
        return {
            pool: RateLimiter(rate, clock=self.monotonic, sleep=sleep)
            for pool, rate in self.pool_rates.items()
        }
