"""Asset status: each asset's last materialization and why it is stale (`sqlorch status`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlorch.app.plans import Warn, observe, select_assets, state_sets, state_snapshot
from sqlorch.core.plan.staleness import stale_reasons
from sqlorch.load.project import Project, load_project
from sqlorch.settings import Settings
from sqlorch.state.store import open_store


def asset_status(
    settings: Settings,
    select: Sequence[str] = (),
    exclude: Sequence[str] = (),
    warn: Warn | None = None,
    now: datetime | None = None,
    *,
    project: Project | None = None,
) -> list[dict[str, Any]]:
    """Return the status of each selected asset (default: all), as `status --json` prints it.

    Each: key, kind, stale, reasons, last_materialized_at, rows, duration_s, last_run_id,
    last_outcome, code_version, partitions (DESIGN.md §10) and presence_checked (False: whether
    its relation exists could not be checked). `project`: the project of
    `settings`, already loaded (the web UI's pages load it once per request).
    """
    project = project or load_project(settings)
    store = open_store(settings, readonly=True)
    states = store.asset_states()
    view = observe(project)
    snapshot = state_snapshot(store, view, project.graph, states)
    sets = state_sets(project.graph, store, snapshot) if (select or exclude) else None
    keys = (
        select_assets(project, select, exclude, warn, state=sets) if (select or exclude) else None
    )
    stale = stale_reasons(project.graph, snapshot)
    docs: dict[str, Any] = {}
    if any(n.partitions is not None for n in project.graph):
        from sqlorch.app.partitions import planned_docs
        from sqlorch.app.plans import plan_partitions
        from sqlorch.core.plan.builder import with_partitions

        now = now or datetime.now(UTC)
        planned = plan_partitions(
            project, store, list(project.graph.assets), now, snapshot=snapshot
        )
        stale = with_partitions(project.graph, list(project.graph.assets), stale, planned)
        # one computation: the partitions shown are the ones a build would run
        docs = {
            k: {f: v for f, v in d.items() if f != "counts"}
            for k, d in planned_docs(project, store, now, planned).items()
        }
    rows: list[dict[str, Any]] = []
    for n in project.graph:
        if keys is not None and n.key not in keys:
            continue
        st = states.get(n.key)
        reasons = stale.get(n.key, [])
        rows.append(
            {
                "key": n.key,
                "kind": n.kind.value,
                "stale": bool(reasons),
                "reasons": reasons,
                "last_materialized_at": st.last_materialized_at if st else None,
                "rows": st.rows if st else None,
                "duration_s": st.duration_s if st else None,
                "last_run_id": st.last_run_id if st else None,
                "last_outcome": st.last_status if st else None,
                "code_version": n.code_version,
                "partitions": docs.get(n.key),
                # False: whether its table exists could not be checked (a Spark view)
                "presence_checked": n.key.lower() not in view.unobserved,
            }
        )
    return rows
