"""The project's assets as `sqlorch ls` lists them."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from sqlorch.app.plans import Warn, select_assets
from sqlorch.core.graph import AssetNode, Column
from sqlorch.load.project import load_project
from sqlorch.settings import Settings


def list_assets(
    settings: Settings,
    select: Sequence[str] = (),
    exclude: Sequence[str] = (),
    warn: Warn | None = None,
    *,
    recorded_columns: bool = False,
) -> list[AssetNode]:
    """Return the selected assets (default: all) in graph order.

    With `recorded_columns`, each asset's columns are those recorded with its last
    materialization (else the dbt yml's).
    """
    project = load_project(settings)
    keys = select_assets(project, select, exclude, warn) if (select or exclude) else None
    nodes = [n for n in project.graph if keys is None or n.key in keys]
    if not recorded_columns:
        return nodes
    from sqlorch.state.store import open_store

    recorded = open_store(settings, readonly=True).latest_columns()
    return [
        dataclasses.replace(n, columns=tuple(Column(c, t) for c, t in recorded[n.key]))
        if recorded.get(n.key)
        else n
        for n in nodes
    ]


def asset_document(node: AssetNode) -> dict[str, Any]:
    """Return one asset as `sqlorch ls --json` prints it (DESIGN.md §10)."""
    from sqlorch.core.partitions.mappings import describe_mapping

    return {
        "key": node.key,
        "kind": node.kind.value,
        "deps": list(node.deps),
        "partitions": node.partitions.describe() if node.partitions else None,
        # upstream key -> mapping as declared (absent: the default, `same`)
        "partition_mappings": {
            k: describe_mapping(m) for k, m in sorted(node.partition_mappings.items())
        },
        "file": node.file,
        "tags": list(node.tags),
        "columns": [{"name": c.name, "type": c.type} for c in node.columns],
        "description": node.description,
        "materialized": node.materialized,
    }
