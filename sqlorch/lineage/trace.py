"""Trace a column through the asset graph: trees of upstream or downstream columns (pure).

The documents follow DESIGN.md §10: `{"column": "KEY.COLUMN", "upstream": [{"column",
"transform", "upstream": [...]}]}` (or `downstream`), with `kind` (the asset's kind) and,
where it applies, `note` (a Python asset's or a seed's column is a leaf) or `error` (why the
lineage of that column is unknown).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlorch.core.graph import AssetGraph
from sqlorch.errors import SelectionError
from sqlorch.lineage.model import ModelLineage, Transform


def split_column(graph: AssetGraph, ref: str) -> tuple[str, str | None]:
    """Split `KEY.COLUMN` (or `KEY`, or `name.COLUMN`) into an asset key and a column.

    Raises:
        SelectionError: no asset matches.
    """
    text = ref.strip().lower()
    if text in graph:
        return text, None
    if "." in text:
        head, column = text.rsplit(".", 1)
        if head in graph:
            return head, column
        matches = [k for k, n in graph.assets.items() if n.name.lower() == head]
        if len(matches) == 1:
            return matches[0], column
    matches = [k for k, n in graph.assets.items() if n.name.lower() == text]
    if len(matches) == 1:
        return matches[0], None
    hint = f" It names several assets: {', '.join(sorted(matches))}." if len(matches) > 1 else ""
    raise SelectionError(
        f"{ref!r} is not an asset or an asset's column.{hint} Give `schema.name.column` "
        "(`marts.fct_delays.avg_dep_delay`) or `name.column`; `sqlorch ls` lists the assets."
    )


def _leaf_info(
    graph: AssetGraph, lineage: ModelLineage | None, key: str, column: str
) -> dict[str, Any]:
    info: dict[str, Any] = {}
    node = graph.assets.get(key)
    info["kind"] = node.kind.value if node else "unknown"
    if node is None:
        info["note"] = "not an asset of this project (a hidden dependency)"
        return info
    if lineage is None:
        return info
    if lineage.error:
        info["error"] = lineage.error
        return info
    col = lineage.column(column)
    if col is None:
        if lineage.columns and not lineage.incomplete:
            info["error"] = f"{key} has no column {column!r}"
        elif lineage.notes:
            info["note"] = lineage.notes[0]
        return info
    if col.error:
        info["error"] = col.error
    elif not col.upstream and lineage.notes:
        info["note"] = lineage.notes[0]
    return info


def upstream_tree(
    graph: AssetGraph,
    assets: Mapping[str, ModelLineage],
    key: str,
    column: str,
    *,
    depth: int | None = None,
    with_keys: bool = False,
) -> dict[str, Any]:
    """Return the tree of columns that `key.column` is derived from."""

    def visit(k: str, c: str, level: int, path: frozenset[tuple[str, str]]) -> dict[str, Any]:
        lineage = assets.get(k)
        doc: dict[str, Any] = {"column": f"{k}.{c}"}
        doc.update(_leaf_info(graph, lineage, k, c))
        children: list[dict[str, Any]] = []
        if lineage is not None and (depth is None or level < depth):
            col = lineage.column(c)
            edges = list(col.upstream) if col else []
            if with_keys and col is not None:
                edges += [e for e in lineage.keys if e not in edges]
            for e in edges:
                if (e.table, e.column) in path:
                    continue
                child = visit(e.table, e.column, level + 1, path | {(e.table, e.column)})
                children.append({**_first(child), "transform": e.transform.value, **child})
        doc["upstream"] = children
        return doc

    root = visit(key, column, 0, frozenset({(key, column)}))
    return root


def downstream_tree(
    graph: AssetGraph,
    assets: Mapping[str, ModelLineage],
    key: str,
    column: str,
    *,
    depth: int | None = None,
    with_keys: bool = False,
) -> dict[str, Any]:
    """Return the tree of columns derived from `key.column` (filters/joins with `with_keys`)."""
    users = reverse_edges(assets, with_keys=with_keys)

    def visit(k: str, c: str, level: int, path: frozenset[tuple[str, str]]) -> dict[str, Any]:
        node = graph.assets.get(k)
        doc: dict[str, Any] = {"column": f"{k}.{c}", "kind": node.kind.value if node else "?"}
        children = []
        if depth is None or level < depth:
            for dk, dc, transform in users.get((k, c), ()):
                if (dk, dc) in path:
                    continue
                child = visit(dk, dc, level + 1, path | {(dk, dc)})
                children.append({**_first(child), "transform": transform.value, **child})
        doc["downstream"] = children
        return doc

    return visit(key, column, 0, frozenset({(key, column)}))


def _first(child: dict[str, Any]) -> dict[str, Any]:
    # keep "column" the first key of every node, "transform" the second
    return {"column": child["column"]}


def reverse_edges(
    assets: Mapping[str, ModelLineage], *, with_keys: bool = True
) -> dict[tuple[str, str], list[tuple[str, str, Transform]]]:
    """Return (asset, column) -> the (asset, column, transform) derived from it.

    With `with_keys`, a column a query filters, joins or groups on reaches every output
    column of that query.
    """
    out: dict[tuple[str, str], list[tuple[str, str, Transform]]] = {}
    for key in sorted(assets):
        lineage = assets[key]
        for col in lineage.columns:
            for e in col.upstream:
                out.setdefault((e.table, e.column), []).append((key, col.name, e.transform))
        if with_keys:
            for e in lineage.keys:
                bucket = out.setdefault((e.table, e.column), [])
                seen = {(k, c) for k, c, _ in bucket}
                for col in lineage.columns:
                    if (key, col.name) not in seen:
                        bucket.append((key, col.name, e.transform))
    return out


def leaves(tree: Mapping[str, Any], direction: str = "upstream") -> list[str]:
    """Return the columns at the ends of a tree (raw columns for an upstream tree)."""
    out: dict[str, None] = {}

    def walk(node: Mapping[str, Any]) -> None:
        children = node.get(direction) or []
        if not children:
            out.setdefault(node["column"], None)
        for child in children:
            walk(child)

    for child in tree.get(direction) or []:
        walk(child)
    return list(out)
