"""Retrying failed steps: a Python asset's attempts in its worker, a dbt node back in line.

What users declare (`RetryPolicy`, the back-off) is in `sqlorch.api.retries`; this module
applies it. Waiting between attempts is cut short by Ctrl-C (see `cancellation`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlorch.api.retries import RetryPolicy, next_delay
from sqlorch.events import EventKind
from sqlorch.execute.cancellation import Cancellation
from sqlorch.execute.messages import Inbox, RetryReady
from sqlorch.execute.progress import Progress
from sqlorch.execute.status import Status


@dataclass(frozen=True, slots=True)
class Failure:
    """A failed attempt: the message for people, the traceback, the exception."""

    message: str
    traceback: str
    exc: BaseException


def attempt_until_done(
    attempt: Callable[[int], Failure | None],
    policy: RetryPolicy | None,
    cancellation: Cancellation,
    on_retry: Callable[[int, str, float], None],
) -> tuple[Failure, bool] | None:
    """Call `attempt(1)`, `attempt(2)`, ... while it fails and the policy allows another.

    A transient error is retried even without a policy (see `next_delay`).

    Returns:
        None when an attempt succeeded; else the last failure and whether Ctrl-C ended
        the wait before the next attempt.
    """
    number = 1
    while True:
        failure = attempt(number)
        if failure is None:
            return None
        delay = None if cancellation.cancelled else next_delay(policy, number, failure.exc)
        if delay is None:
            return failure, False
        on_retry(number, failure.message, delay)
        cancellation.sleep(delay)
        if cancellation.cancelled:
            return failure, True
        number += 1


class DbtRetries:
    """Puts failed dbt nodes back in line when their policy (or a transient error) allows."""

    def __init__(
        self,
        progress: Progress,
        policies: Mapping[str, RetryPolicy],
        cancellation: Cancellation,
        inbox: Inbox,
    ) -> None:
        self.progress = progress
        self.policies = policies
        self.cancellation = cancellation
        self.inbox = inbox

    def retry(self, key: str, message: str, error: str) -> bool:
        """Retry `key`, which failed with dbt's `message` (`error`: the message for people).

        Returns False when `key` gets no other attempt.
        """
        if self.cancellation.cancelled:
            return False
        progress = self.progress
        attempt = progress.attempts.get(key, 1)
        delay = next_delay(self.policies.get(key), attempt, RuntimeError(message))
        if delay is None:
            return False
        progress.attempts[key] = attempt + 1
        progress.status[key] = Status.PENDING
        progress.retry_wait.add(key)
        progress.emit(
            EventKind.ASSET_RETRY,
            key,
            f"attempt {attempt} failed, retrying in {delay:g}s: {error}",
            level="warning",
            data={"attempt": attempt, "delay_s": delay, "error": error},
        )
        sleep = self.cancellation.sleep

        def wake() -> None:
            sleep(delay)
            self.inbox.put(RetryReady(key))

        threading.Thread(target=wake, name=f"sqlorch-retry-{key}", daemon=True).start()
        return True
