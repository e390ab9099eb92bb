"""The plan as data: the steps a run takes, in dependency order, and the checks it runs.

The builder (`sqlorch.core.plan.builder`) computes a plan; the executor walks it; the CLI
renders it (`--dry-run`, `--json`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlorch.core.graph import AssetKind


@dataclass(frozen=True, slots=True)
class Step:
    """Materialize one asset (all of it; partition ranges come with partitioned assets)."""

    key: str
    kind: AssetKind
    reasons: tuple[str, ...]
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
