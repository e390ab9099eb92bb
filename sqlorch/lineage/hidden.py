"""Hidden dependencies: relations a model's compiled SQL reads without a ref or a source.

They are found where compiled SQL is at hand (after dbt runs, and by `sqlorch lineage`) and
kept in `.sqlorch/lineage/hidden_deps.json`; loading a project adds the edges to known
assets from there, cheaply (no dbt, no sqlglot), so ordering is right on the next build.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from sqlorch.core.graph import AssetGraph
from sqlorch.errors import GraphError
from sqlorch.lineage.cache import read_hidden

log = logging.getLogger(__name__)


def add_hidden_edges(graph: AssetGraph, state_dir: Path) -> AssetGraph:
    """Return `graph` with the recorded hidden dependencies as edges (or `graph` itself).

    An entry counts only while the model's code version is the one it was found at. An edge
    that would close a cycle is left out (the model reads a table downstream of itself).
    """
    found = read_hidden(state_dir)
    if not found:
        return graph
    nodes = dict(graph.assets)
    changed = False
    for key, h in found.items():
        node = nodes.get(key)
        if node is None or node.code_version != h.code_version:
            continue
        extra = []
        for table in h.tables:
            if table not in graph or table == key or table in node.deps:
                continue
            if table in graph.descendants(key):
                log.warning("hidden dependency %s -> %s would close a cycle; ignored", table, key)
                continue
            extra.append(table)
        if extra:
            nodes[key] = dataclasses.replace(
                node, deps=(*node.deps, *extra), hidden_deps=(*node.hidden_deps, *extra)
            )
            changed = True
    if not changed:
        return graph
    try:
        return AssetGraph(nodes.values(), graph.checks.values())
    except GraphError:
        log.warning("hidden dependencies would make the graph cyclic; ignored", exc_info=True)
        return graph
