"""Hidden dependencies as recorded: relations a model's compiled SQL reads without a ref.

`sqlorch.lineage` finds them where compiled SQL is at hand (after dbt runs, and by `sqlorch
lineage`) and records them in `.sqlorch/lineage/hidden_deps.json`; loading a project adds
the edges to known assets from there, cheaply (no dbt, no sqlglot), so ordering is right on
the next build.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlorch.core.graph import AssetGraph
from sqlorch.errors import GraphError
from sqlorch.state.files import folder, read_json, write_json

log = logging.getLogger(__name__)

HIDDEN_FILE = "hidden_deps.json"


@dataclass(frozen=True, slots=True)
class HiddenDependency:
    """A model whose compiled SQL reads relations that are neither refs nor sources."""

    key: str
    code_version: str | None
    file: str | None
    tables: tuple[str, ...]


def read_hidden(state_dir: Path) -> dict[str, HiddenDependency]:
    """Return the hidden dependencies found so far, by model key (cheap: one small file)."""
    doc = read_json(folder(state_dir) / HIDDEN_FILE)
    out: dict[str, HiddenDependency] = {}
    for key, entry in (doc.get("assets") or {}).items():
        if not isinstance(entry, dict):
            continue
        out[key] = HiddenDependency(
            key=key,
            code_version=entry.get("code_version"),
            file=entry.get("file"),
            tables=tuple(str(t) for t in entry.get("tables") or ()),
        )
    return out


def write_hidden(state_dir: Path, found: Mapping[str, HiddenDependency]) -> None:
    """Replace the hidden dependencies file with `found`."""
    write_json(
        folder(state_dir) / HIDDEN_FILE,
        {
            "assets": {
                key: {"code_version": h.code_version, "file": h.file, "tables": list(h.tables)}
                for key, h in sorted(found.items())
            }
        },
    )


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
