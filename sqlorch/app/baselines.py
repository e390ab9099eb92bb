"""What a run's built-in checks compare with: each asset's previous materialization.

Only materializations written to the run's target count: the same asset built on another
target (DuckDB, then `-t spark`) has other column types and maybe other data.
"""

from __future__ import annotations

from sqlorch.core.checks import Observed
from sqlorch.state.store import MaterializationRecord, StateStore


def _on_target(m: MaterializationRecord, target: str | None) -> bool:
    """Whether `m` was written to `target` (records from before targets were kept: yes)."""
    written = m.metadata.get("target")
    return written is None or target is None or written == target


def previous_materializations(store: StateStore, target: str | None) -> dict[str, Observed]:
    """Each unpartitioned asset's newest materialization on `target` (the checks compare).

    The same asset built on another target (DuckDB, then `-t spark`) has other column types
    and maybe other data: a check never compares across targets.
    """
    out: dict[str, Observed] = {}
    for (asset, partition), m in store.last_materializations().items():
        if partition is not None:
            continue
        if not _on_target(m, target):
            found = next(
                (
                    o
                    for o in store.materializations(asset)
                    if o.partition is None and _on_target(o, target)
                ),
                None,
            )
            if found is None:
                continue
            m = found
        out[asset] = Observed(m.rows, m.columns, m.materialized_at)
    return out


def accepted_columns(store: StateStore, target: str | None) -> dict[str, Observed]:
    """For assets whose blocking schema_change check fails: their last accepted columns.

    dbt commits a model before its checks run: the next build must compare with the newest
    materialization whose schema_change check did not fail, not with the rejected columns
    (which would then pass silently).
    """
    out: dict[str, Observed] = {}
    for asset, failing in store.failing_blocking_checks().items():
        names = {
            r.name for r in failing if r.kind == "builtin" and r.name.startswith("schema_change")
        }
        if not names:
            continue
        rejected = {
            r.run_id
            for r in store.check_results(asset=asset)
            if r.name in names and r.status in ("fail", "error")
        }
        for m in store.materializations(asset):
            if m.partition is None and m.run_id not in rejected and _on_target(m, target):
                out[asset] = Observed(m.rows, m.columns, m.materialized_at)
                break
    return out
