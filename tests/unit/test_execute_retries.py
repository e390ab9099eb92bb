"""The executor's retry loop and worker slots (pure: no threads, no database, no waiting)."""

from __future__ import annotations

from collections.abc import Callable

from sqlorch.api.retries import Backoff, RetryPolicy
from sqlorch.core.checks import CheckStatus
from sqlorch.core.graph import AssetKind, AssetNode
from sqlorch.execute.cancellation import Cancellation
from sqlorch.execute.pools import Slots
from sqlorch.execute.retries import Failure, attempt_until_done


def failing(times: int, message: str = "boom") -> tuple[list[int], Callable[[int], Failure | None]]:
    calls: list[int] = []

    def attempt(n: int) -> Failure | None:
        calls.append(n)
        if n <= times:
            return Failure(f"{message} {n}", "tb", RuntimeError(message))
        return None

    return calls, attempt


def test_attempts_until_one_succeeds_within_the_policy() -> None:
    waits: list[float] = []
    retries: list[tuple[int, str, float]] = []
    calls, attempt = failing(2)
    policy = RetryPolicy(3, Backoff.LINEAR, 2.0)
    ended = attempt_until_done(
        attempt,
        policy,
        Cancellation(waits.append),
        lambda *a: retries.append(a),
    )
    assert ended is None
    assert calls == [1, 2, 3]
    assert waits == [2.0, 4.0]
    assert retries == [(1, "boom 1", 2.0), (2, "boom 2", 4.0)]


def test_gives_up_with_the_last_failure_when_no_retry_is_left() -> None:
    calls, attempt = failing(5)
    ended = attempt_until_done(
        attempt,
        RetryPolicy(1, Backoff.CONSTANT, 1.0),
        Cancellation(lambda s: None),
        lambda *a: None,
    )
    assert ended is not None
    failure, cancelled = ended
    assert (failure.message, cancelled, calls) == ("boom 2", False, [1, 2])


def test_ctrl_c_during_the_wait_ends_the_attempts() -> None:
    cancellation = Cancellation()
    calls, attempt = failing(5)
    # the wait is where Ctrl-C lands: cancelling wakes it at once
    cancellation.sleep = lambda s: cancellation.cancel()
    ended = attempt_until_done(
        attempt,
        RetryPolicy(3, Backoff.CONSTANT, 60.0),
        cancellation,
        lambda *a: None,
    )
    assert ended is not None and ended[1] is True
    assert calls == [1]
    # once cancelled, a failure is final without waiting
    calls, attempt = failing(5)
    ended = attempt_until_done(attempt, RetryPolicy(3), cancellation, lambda *a: None)
    assert ended is not None and ended[1] is False and calls == [1]


def test_a_transient_error_is_retried_without_a_policy() -> None:
    calls, attempt = failing(1, "could not set lock on file")
    ended = attempt_until_done(attempt, None, Cancellation(lambda s: None), lambda *a: None)
    assert ended is None and calls == [1, 2]


def test_slots_hold_the_thread_limit_and_each_pools_limit() -> None:
    slots = Slots(2, {"api": 1})
    api = AssetNode("raw.a", AssetKind.PYTHON, "a", pool="api")
    other = AssetNode("raw.b", AssetKind.PYTHON, "b", pool="api")
    free = AssetNode("raw.c", AssetKind.PYTHON, "c")
    assert slots.take_pool(api)
    assert not slots.take_pool(other)  # the pool is full
    assert slots.take_pool(free)  # no pool: only the thread limit applies
    slots.release_pool(api)
    assert slots.take_pool(other)
    slots.running = 2
    assert not slots.free


def test_check_statuses_keep_the_values_the_state_store_and_json_show() -> None:
    assert [s.value for s in CheckStatus] == [
        "pending",
        "running",
        "pass",
        "success",
        "warn",
        "fail",
        "error",
        "skipped",
    ]
    assert CheckStatus.of("runtime error") is CheckStatus.ERROR
    assert CheckStatus("warn").is_passed and CheckStatus("fail").is_failed
