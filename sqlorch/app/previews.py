"""What a launch would do, shown before it runs: the plan `--dry-run` prints, or a wipe's range."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlorch.app.build import build
from sqlorch.app.plans import Request, Warn, selection_text
from sqlorch.settings import Settings


def plan_preview(settings: Settings, request: Request, warn: Warn | None = None) -> dict[str, Any]:
    """Plan `request` as `--dry-run` does; return the headline, the lines and the §10 plan.

    `{"headline", "lines": [{"text", "why"}], "plan": <build --dry-run --json>,
    "selection": how the run will record its selection, "runs_nothing": bool}`.

    Raises:
        SqlorchError: the request is invalid (selection, range, run id).
    """
    from sqlorch.core.plan.explainer import explain_plan, plan_document, plan_headline

    result = build(settings, request, warn=warn, dry_run=True)
    plan = result.plan
    return {
        "headline": plan_headline(plan),
        "lines": [{"text": line.text, "why": line.why} for line in explain_plan(plan)],
        "plan": plan_document(plan),
        "selection": selection_text(request, result.retried),
        "runs_nothing": not plan.steps,
    }


def wipe_preview(
    settings: Settings,
    asset: str,
    start: str | None,
    end: str | None,
    keys: Sequence[str] = (),
    now: datetime | None = None,
) -> dict[str, Any]:
    """Return which partitions `sqlorch wipe` would forget: `{"key", "count", "ranges"}`.

    Raises:
        PartitionError: the asset has no partitions, or the range or keys are invalid.
    """
    from sqlorch.app.partitions import partitions_report
    from sqlorch.load.project import load_project

    key = partitions_report(settings, asset, now)["key"]
    definition = load_project(settings).graph.assets[key].partitions
    assert definition is not None
    parts = definition.select(now or datetime.now(UTC), start, end, keys)
    return {"key": key, "count": len(parts), "ranges": definition.key_ranges(parts)}


def warehouse_file(settings: Settings) -> Path | None:
    """Return the DuckDB file the project's target writes (None: not a DuckDB file)."""
    from sqlorch.load.project import load_project

    return load_project(settings).invoker.duckdb_path
