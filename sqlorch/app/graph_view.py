"""What the web UI's graph and asset pages show, from the same use cases as the CLI.

Read-only: the project (its cached graph), the state store, and what the last observation
of the warehouse remembered (the UI's settings say `warehouse_reads=False`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlorch.app.assets import asset_document
from sqlorch.app.history import asset_history
from sqlorch.app.plans import Warn, observe, select_assets, state_sets, state_snapshot
from sqlorch.app.status import asset_status
from sqlorch.errors import ConfigError
from sqlorch.load.project import load_project
from sqlorch.settings import Settings
from sqlorch.state.store import open_store


def graph_document(
    settings: Settings,
    select: Sequence[str] = (),
    exclude: Sequence[str] = (),
    *,
    warn: Warn | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Return every asset with its status, upstream keys and failing checks, and the selection.

    `{"assets": [{"key", "kind", "name", "schema", "folder", "file", "line", "deps",
    "stale", "reasons", "last_materialized_at", "rows", "last_outcome", "failing_checks",
    "partitions"}], "selected": [keys] | null}` (`selected` null: nothing was selected).

    Raises:
        SelectionError: the selection does not parse or matches nothing.
    """
    project = load_project(settings)
    status = {
        row["key"]: row for row in asset_status(settings, warn=warn, now=now, project=project)
    }
    store = open_store(settings, readonly=True)
    try:
        failing = {
            asset: sorted({r.name for r in results})
            for asset, results in store.failing_blocking_checks().items()
        }
        selected: list[str] | None = None
        if select or exclude:
            snapshot = state_snapshot(store, observe(project), project.graph)
            sets = state_sets(project.graph, store, snapshot)
            keys = select_assets(project, select, exclude, warn, state=sets)
            selected = [n.key for n in project.graph if n.key in keys]
    finally:
        store.close()
    assets = []
    for node in project.graph:
        row = status.get(node.key, {})
        assets.append(
            {
                "key": node.key,
                "kind": node.kind.value,
                "name": node.name,
                "schema": node.key.rsplit(".", 1)[0] if "." in node.key else "",
                "folder": node.file.rsplit("/", 1)[0] if node.file and "/" in node.file else "",
                "file": node.file,
                "line": node.line,
                "deps": list(node.deps),
                "stale": bool(row.get("stale")),
                "reasons": list(row.get("reasons", [])),
                "last_materialized_at": row.get("last_materialized_at"),
                "rows": row.get("rows"),
                "last_outcome": _text(row.get("last_outcome")),
                "failing_checks": failing.get(node.key, []),
                "partitions": row.get("partitions"),
            }
        )
    return {"assets": assets, "selected": selected}


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def asset_page(
    settings: Settings, key: str, *, limit: int = 200, now: datetime | None = None
) -> dict[str, Any]:
    """Return what the asset page shows: the asset, its status, neighbours, history and checks.

    `{"asset": <ls --json>, "line", "code_version", "status": <status --json row>,
    "upstream": [keys], "downstream": [keys], "history": <history --json>,
    "check_strips": [{"check", "blocking", "results": [{"status", "run_id", "checked_at",
    "partition", "message"}] oldest first}], "series": {"materialized_at": [...],
    "rows": [...], "duration_s": [...], "metadata": {name: [...]}}}`.

    Raises:
        ConfigError: the project has no asset `key`.
    """
    project = load_project(settings)
    graph = project.graph
    node = graph.assets.get(key)
    if node is None:
        raise ConfigError(f"No asset {key!r} in the project. `sqlorch ls` lists the assets.")
    rows = asset_status(settings, now=now, project=project)
    status = next((r for r in rows if r["key"] == key), {})
    store = open_store(settings, readonly=True)
    try:
        history = asset_history(store, key, limit)
    finally:
        store.close()
    document = asset_document(node)
    # the columns as last materialized (as `ls --json` shows them), else the dbt yml's
    columns = next((m["columns"] for m in history["materializations"] if m["columns"]), None)
    if columns:
        document["columns"] = columns
    children = sorted(k for k, n in graph.assets.items() if key in n.deps)
    return {
        "asset": document,
        "line": node.line,
        "code_version": node.code_version,
        "status": {**status, "last_outcome": _text(status.get("last_outcome"))},
        "upstream": list(node.deps),
        "downstream": children,
        "history": history,
        "check_strips": check_strips(history["checks"]),
        "series": series(history["materializations"]),
    }


def check_strips(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Group check results (newest first) by check: one pass/fail strip each, oldest first."""
    strips: dict[str, dict[str, Any]] = {}
    for r in reversed(results):
        strip = strips.setdefault(
            r["check"], {"check": r["check"], "blocking": r["blocking"], "results": []}
        )
        strip["results"].append(
            {
                "status": r["status"],
                "run_id": r["run_id"],
                "checked_at": r["checked_at"],
                "partition": r["partition"],
                "message": r["message"],
            }
        )
    return sorted(strips.values(), key=lambda s: s["check"])


def series(materializations: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Return the plots' columns, oldest first: time, rows, duration, numeric metadata."""
    mats = list(reversed(materializations))
    numeric: dict[str, list[float | None]] = {}
    for i, m in enumerate(mats):
        for name, value in (m.get("metadata") or {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                numeric.setdefault(name, [None] * len(mats))[i] = float(value)
    return {
        "materialized_at": [m["materialized_at"] for m in mats],
        "partition": [m["partition"] for m in mats],
        "rows": [m["rows"] for m in mats],
        "duration_s": [m["duration_s"] for m in mats],
        "metadata": numeric,
    }
