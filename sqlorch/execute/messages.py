"""What worker threads tell the scheduling thread: one frozen dataclass per kind of message.

Workers (Python assets, checks, dbt invocations, retry timers) never touch the run's state;
they put a message on the run's queue and the scheduling thread applies it, in order.
"""

from __future__ import annotations

import logging
import queue
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlorch.core.checks import CheckStatus

if TYPE_CHECKING:
    from sqlorch.core.graph import Column
    from sqlorch.dbt.runner import DbtNodeEvent, InvocationResult
    from sqlorch.execute.chunks import Chunk


@dataclass(frozen=True, slots=True)
class PythonDone:
    """A whole Python asset was written."""

    key: str
    rows: int | None
    seconds: float
    metadata: dict[str, Any]
    columns: list[Column] | None


@dataclass(frozen=True, slots=True)
class PythonFailed:
    """A whole Python asset failed for good (no retry left)."""

    key: str
    error: str
    traceback: str | None


@dataclass(frozen=True, slots=True)
class ChunkDone:
    """One partition run (chunk) of a partitioned Python asset was written."""

    key: str
    chunk: Chunk
    rows: int | None
    seconds: float
    metadata: dict[str, Any]
    #: the checks that already ran inside the write (write-audit-publish)
    audited: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ChunkFailed:
    """One partition run of a partitioned Python asset failed for good."""

    key: str
    chunk: Chunk
    error: str
    traceback: str | None


@dataclass(frozen=True, slots=True)
class Retrying:
    """An attempt of a Python asset failed; the next starts after `delay` seconds."""

    key: str
    attempt: int
    error: str
    delay: float


@dataclass(frozen=True, slots=True)
class RetryReady:
    """A failed dbt node waited out its back-off and may run again."""

    key: str


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """How a check sqlorch runs itself ended."""

    status: CheckStatus
    message: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CheckDone:
    """A `@check` or built-in check of a whole asset ended."""

    uid: str
    outcome: CheckOutcome


@dataclass(frozen=True, slots=True)
class ChunkCheckDone:
    """A Python check of one partition run ended."""

    key: str
    uid: str
    chunk: Chunk
    outcome: CheckOutcome


@dataclass(frozen=True, slots=True)
class Audited:
    """A blocking check ran inside an asset's (or a partition run's) write, before it committed."""

    key: str
    chunk: Chunk | None
    uid: str
    outcome: CheckOutcome


@dataclass(frozen=True, slots=True)
class AssetLog:
    """A line an asset or check logged (`context.log`)."""

    key: str
    level: str
    text: str


@dataclass(frozen=True, slots=True)
class DbtEvent:
    """A node of a running dbt invocation started, logged or finished."""

    event: DbtNodeEvent


@dataclass(frozen=True, slots=True)
class DbtDone:
    """A dbt invocation of a segment (unpartitioned nodes and their tests) ended."""

    steps: list[str]
    checks: list[str]
    result: InvocationResult


@dataclass(frozen=True, slots=True)
class DbtChunkDone:
    """A dbt invocation (or direct window writes) of partitioned models' chunks ended."""

    group: list[tuple[str, Chunk]]
    checks: list[str]
    result: InvocationResult


Message = (
    PythonDone
    | PythonFailed
    | ChunkDone
    | ChunkFailed
    | Retrying
    | RetryReady
    | CheckDone
    | ChunkCheckDone
    | Audited
    | AssetLog
    | DbtEvent
    | DbtDone
    | DbtChunkDone
)
Inbox = queue.Queue[Message]

_LEVELS = {"WARNING": "warning", "ERROR": "error", "CRITICAL": "error", "DEBUG": "debug"}


class LogForwarder(logging.Handler):
    """Send a Python asset's or check's log records to the scheduling thread."""

    def __init__(self, inbox: Inbox, key: str) -> None:
        super().__init__(logging.DEBUG)
        self._inbox = inbox
        self._key = key

    def emit(self, record: logging.LogRecord) -> None:
        level = _LEVELS.get(record.levelname, "info")
        self._inbox.put(AssetLog(self._key, level, self.format(record)))


def logger_for(name: str, inbox: Inbox, key: str) -> logging.Logger:
    """A logger whose records reach the run's events as `key`'s log lines."""
    logger = logging.Logger(name)
    logger.setLevel(logging.DEBUG)
    logger.addHandler(LogForwarder(inbox, key))
    return logger
