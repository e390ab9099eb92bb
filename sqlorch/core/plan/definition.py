"""The plan as data: the steps a run takes, in dependency order, and the checks it runs.

The builder (`sqlorch.core.plan.builder`) computes a plan; the executor walks it; the CLI
renders it (`--dry-run`, `--json`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlorch.core.graph import AssetKind


class ReasonKind(StrEnum):
    """Why a step (or some of its partitions) runs."""

    NEVER_MATERIALIZED = "never_materialized"
    TABLE_MISSING = "table_missing"
    CODE_CHANGED = "code_changed"  # code, config, macros, vars or target (see codeversion)
    LAST_ATTEMPT_FAILED = "last_attempt_failed"
    CHECK_FAILED = "check_failed"
    UPSTREAM_NEWER = "upstream_newer"  # an upstream asset (or source) got rows after this
    UPSTREAM_STALE = "upstream_stale"  # an upstream asset is rebuilt in this plan
    FULL = "full"  # --full
    PARTITIONS_MISSING = "partitions_missing"
    PARTITIONS_FAILED = "partitions_failed"
    PARTITIONS_UPSTREAM_NEWER = "partitions_upstream_newer"
    PARTITIONS_CODE_CHANGED = "partitions_code_changed"
    BACKFILL = "backfill"
    UPSTREAM_PLANNED = "upstream_planned"  # upstream partitions planned, so these are too
    UPSTREAM_REBUILT = "upstream_rebuilt"  # an unpartitioned upstream every partition reads
    PARTITIONS_TO_RUN = "partitions_to_run"
    LOADED_TOGETHER = "loaded_together"  # one load (a dlt source) writes it with a planned asset
    RETRY = "retry"  # failed, skipped or a blocking check failed in the run being retried


class Reason(str):
    """One reason a step runs: the sentence a person reads, and its kind for code to test.

    A `str`, so the plan's text (terminal, `--json`) is the sentence itself; compare kinds,
    never the text.
    """

    kind: ReasonKind

    def __new__(cls, text: str, kind: ReasonKind) -> Reason:
        self = super().__new__(cls, text)
        self.kind = kind
        return self

    def __getnewargs__(self) -> tuple[str, ReasonKind]:  # type: ignore[override]
        return str(self), self.kind


@dataclass(frozen=True, slots=True)
class Step:
    """Materialize one asset (all of it; partition ranges come with partitioned assets)."""

    key: str
    kind: AssetKind
    reasons: tuple[Reason, ...]
    partitions: tuple[tuple[str, str], ...] | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """What a run will do, in dependency order."""

    steps: tuple[Step, ...]
    checks: tuple[str, ...]
    selected: frozenset[str]

    @property
    def keys(self) -> list[str]:
        """The keys of the steps, in order."""
        return [s.key for s in self.steps]

    def __len__(self) -> int:
        return len(self.steps)
