"""Explain a plan for `--dry-run`: the §10 JSON document, and the lines a terminal prints."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlorch.core.plan.definition import Plan


@dataclass(frozen=True, slots=True)
class ExplainedLine:
    """One line of a plan's explanation: what runs, then why (shown dimmed)."""

    text: str
    why: str


def plan_document(plan: Plan) -> dict[str, Any]:
    """Return the plan as `sqlorch build --dry-run --json` prints it (DESIGN.md §10)."""
    return {
        "steps": [
            {
                "key": s.key,
                "kind": s.kind.value,
                "partitions": [list(r) for r in s.partitions] if s.partitions else None,
                "reasons": list(s.reasons),
            }
            for s in plan.steps
        ],
        "checks": len(plan.checks),
    }


def plan_headline(plan: Plan) -> str:
    """Return the first line of the explanation: how many assets and checks run."""
    steps, checks = len(plan.steps), len(plan.checks)
    return (
        f"Plan: {steps} asset{'' if steps == 1 else 's'}, "
        f"{checks} check{'' if checks == 1 else 's'}"
    )


def explain_plan(plan: Plan) -> list[ExplainedLine]:
    """Return one line per step (kind, key; its reasons), and one per partitioned step's ranges."""
    lines = []
    for s in plan.steps:
        lines.append(ExplainedLine(f"  {s.kind.value:<8} {s.key:<44} ", "; ".join(s.reasons)))
        if s.partitions:
            lines.append(ExplainedLine(f"  {'':<8} ", f"partitions: {ranges_text(s.partitions)}"))
    return lines


def ranges_text(ranges: Sequence[Sequence[str]] | None, limit: int = 8) -> str:
    """Return partition ranges as `a..b, c` (the first `limit` of them; `-` for none)."""
    if not ranges:
        return "-"
    shown = ", ".join(a if a == b else f"{a}..{b}" for a, b in ranges[:limit])
    return shown + (f", ... ({len(ranges)} ranges)" if len(ranges) > limit else "")
