"""Retry policies, transient-error detection and per-pool request rates (pure; clock injected).

A Python asset retries when its policy allows (`@asset(retries=3, backoff="exponential")`
or the `retries` setting by selector), and on transient warehouse errors (a DuckDB lock or
write conflict, a reset connection) even without a policy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlorch.errors import ConfigError
from sqlorch.settings import parse_duration

TRANSIENT_RETRIES = 3
_TRANSIENT_TEXT = (
    "could not set lock",
    "conflicting lock",
    "write-write conflict",
    "database is locked",
    "connection reset",
    "connection aborted",
    "broken pipe",
    "server closed the connection unexpectedly",
)


class Backoff(StrEnum):
    """How the wait between attempts grows."""

    CONSTANT = "constant"
    LINEAR = "linear"
    EXPONENTIAL = "exponential"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often to retry a failed asset and how long to wait between attempts."""

    retries: int = 0
    backoff: Backoff = Backoff.EXPONENTIAL
    delay_s: float = 1.0
    max_delay_s: float = 300.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        if self.backoff is Backoff.CONSTANT:
            wait = self.delay_s
        elif self.backoff is Backoff.LINEAR:
            wait = self.delay_s * attempt
        else:
            wait = self.delay_s * 2 ** (attempt - 1)
        return float(min(wait, self.max_delay_s))


TRANSIENT_POLICY = RetryPolicy(TRANSIENT_RETRIES, Backoff.EXPONENTIAL, 0.5, 30.0)


def retry_policy(
    retries: Any = 0, backoff: Any = "exponential", delay: Any = 1.0, where: str = "@asset"
) -> RetryPolicy:
    """Validate a retry declaration and return the policy.

    Raises:
        ConfigError: a value is out of range or the backoff is unknown.
    """
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise ConfigError(f"`retries` of {where} must be an integer >= 0, not {retries!r}.")
    try:
        kind = Backoff(str(backoff).lower())
    except ValueError:
        raise ConfigError(
            f"`backoff` of {where} is {backoff!r}; use constant, linear or exponential."
        ) from None
    return RetryPolicy(retries, kind, parse_duration(delay, f"`delay` of {where}"))


def policy_from_settings(raw: Mapping[str, Any], where: str) -> RetryPolicy:
    """Read one `[tool.sqlorch.retries."SELECTOR"]` table.

    Raises:
        ConfigError: unknown keys or bad values.
    """
    unknown = sorted(set(raw) - {"retries", "backoff", "delay"})
    if unknown:
        raise ConfigError(
            f"Unknown option(s) {', '.join(unknown)} in {where}; known: backoff, delay, retries."
        )
    return retry_policy(
        raw.get("retries", 0), raw.get("backoff", "exponential"), raw.get("delay", 1.0), where
    )


def is_transient(exc: BaseException) -> bool:
    """True when `exc` (or what caused it) is a lock conflict or a dropped connection."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionResetError | ConnectionAbortedError | BrokenPipeError):
            return True
        text = str(current).lower()
        if any(t in text for t in _TRANSIENT_TEXT):
            return True
        current = current.__cause__ or current.__context__
    return False


def next_delay(policy: RetryPolicy | None, attempt: int, exc: BaseException) -> float | None:
    """Seconds to wait before attempt `attempt + 1`, or None to give up.

    The asset's policy applies to any error; a transient error is retried by the default
    transient policy when the asset's own policy has no retries left (or none is set).
    """
    if policy is not None and attempt <= policy.retries:
        return policy.delay(attempt)
    if is_transient(exc) and attempt <= TRANSIENT_POLICY.retries:
        return TRANSIENT_POLICY.delay(attempt)
    return None


class RateLimiter:
    """A token bucket: at most `rate` acquisitions per second, shared across threads.

    `clock` and `sleep` are injectable so tests never wait.
    """

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = time.sleep,
        burst: float = 1.0,
    ) -> None:
        self.rate = rate
        self.burst = max(1.0, burst)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token, waiting until one is free; return the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
                self._last = now
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return waited
                wait = (1.0 - self._tokens) / self.rate
            self._sleep(wait)
            waited += wait
