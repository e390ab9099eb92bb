"""How steps and runs end: step statuses, the run's status and its outcome."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from enum import StrEnum

from sqlorch.core.checks import CheckStatus


class Status(StrEnum):
    """Where a step is."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


class RunStatus(StrEnum):
    """How a run ended."""

    SUCCESS = "success"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(slots=True)
class RunOutcome:
    """How a run ended."""

    run_id: str
    status: RunStatus
    statuses: dict[str, Status]
    check_statuses: dict[str, CheckStatus]
    errors: dict[str, str] = field(default_factory=dict)

    def count(self, status: Status) -> int:
        """Return how many steps ended with `status`."""
        return sum(1 for s in self.statuses.values() if s is status)

    @property
    def failed_checks(self) -> list[str]:
        """The checks that failed or errored."""
        return [c for c, s in self.check_statuses.items() if s.is_failed]


def new_run_id() -> str:
    """Return a new, sortable run id."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]
