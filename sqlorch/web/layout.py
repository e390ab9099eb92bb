"""Lay out the asset graph on the server (igraph's Sugiyama) and draw it as SVG.

The layout depends on the graph's shape only, so it is cached by a fingerprint of the nodes
and edges; the SVG (colours: stale, failed, failing checks) is drawn per request from it.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

NODE_W = 190
NODE_H = 34
GAP_X = 70
GAP_Y = 14

_KIND_FILL = {
    "python": "#e8f0fe",
    "model": "#e6f4ea",
    "seed": "#fef7e0",
    "snapshot": "#f3e8fd",
    "source": "#f1f3f4",
    "group": "#ffffff",
}


@dataclass(frozen=True, slots=True)
class Box:
    """A node's place in the drawing: its top-left corner."""

    x: float
    y: float


@dataclass(frozen=True, slots=True)
class Layout:
    """Where each node goes, and the drawing's size."""

    boxes: Mapping[str, Box]
    width: float
    height: float


def fingerprint(nodes: Sequence[str], edges: Sequence[tuple[str, str]]) -> str:
    """Return a hash of the graph's shape (what the layout depends on)."""
    digest = hashlib.sha256()
    for key in nodes:
        digest.update(key.encode() + b"\0")
    digest.update(b"\1")
    for a, b in sorted(edges):
        digest.update(a.encode() + b"\0" + b.encode() + b"\0")
    return digest.hexdigest()[:20]


def layered(nodes: Sequence[str], edges: Sequence[tuple[str, str]]) -> Layout:
    """Lay the graph out left to right in layers (upstream left), crossings reduced."""
    import igraph

    index = {k: i for i, k in enumerate(nodes)}
    pairs = [(index[a], index[b]) for a, b in edges if a in index and b in index and a != b]
    graph = igraph.Graph(n=len(nodes), edges=pairs, directed=True)
    coords = graph.layout_sugiyama(hgap=1, vgap=1).coords if nodes else []
    # igraph: y = layer, x = position in the layer; we draw layers as columns
    rows = sorted({round(c[0], 3) for c in coords})
    row_of = {v: i for i, v in enumerate(rows)}
    boxes = {
        key: Box(
            x=20 + coords[i][1] * (NODE_W + GAP_X),
            y=20 + row_of[round(coords[i][0], 3)] * (NODE_H + GAP_Y),
        )
        for key, i in index.items()
    }
    width = max((b.x for b in boxes.values()), default=0) + NODE_W + 40
    height = max((b.y for b in boxes.values()), default=0) + NODE_H + 40
    return Layout(boxes, width, height)


class LayoutCache:
    """Layouts by fingerprint (thread-safe; a few kept)."""

    def __init__(self, size: int = 16) -> None:
        self._size = size
        self._items: dict[str, Layout] = {}
        self._lock = threading.Lock()

    def get(self, nodes: Sequence[str], edges: Sequence[tuple[str, str]]) -> Layout:
        """Return the layout of this graph, computing it the first time."""
        key = fingerprint(nodes, edges)
        with self._lock:
            found = self._items.get(key)
        if found is not None:
            return found
        layout = layered(nodes, edges)
        with self._lock:
            if len(self._items) >= self._size:
                self._items.pop(next(iter(self._items)))
            self._items[key] = layout
        return layout


def render_svg(
    layout: Layout,
    nodes: Sequence[Mapping[str, Any]],
    edges: Sequence[tuple[str, str]],
    href: Mapping[str, str],
) -> str:
    """Draw the graph: one linked box per node (kind colour, state border, hover title)."""
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" '
        f'viewBox="0 0 {layout.width:.0f} {layout.height:.0f}" '
        f'width="{layout.width:.0f}" height="{layout.height:.0f}" data-testid="graph-svg">',
        '<g class="edges">',
    ]
    boxes = layout.boxes
    for a, b in edges:
        if a not in boxes or b not in boxes:
            continue
        p, q = boxes[a], boxes[b]
        x1, y1 = p.x + NODE_W, p.y + NODE_H / 2
        x2, y2 = q.x, q.y + NODE_H / 2
        mid = (x1 + x2) / 2
        out.append(
            f'<path d="M{x1:.0f},{y1:.0f} C{mid:.0f},{y1:.0f} {mid:.0f},{y2:.0f} '
            f'{x2:.0f},{y2:.0f}"/>'
        )
    out.append('</g><g class="nodes">')
    for node in nodes:
        key = node["key"]
        box = boxes.get(key)
        if box is None:
            continue
        out.append(_node_svg(node, box, href.get(key, "")))
    out.append("</g></svg>")
    return "".join(out)


def _node_svg(node: Mapping[str, Any], box: Box, link: str) -> str:
    kind = str(node.get("kind", ""))
    state = node_state(node)
    title = [f"{node['key']} ({kind})", f"state: {state}"]
    if node.get("reasons"):
        title.append("stale: " + "; ".join(node["reasons"]))
    if node.get("last_materialized_at"):
        title.append(f"last materialized {node['last_materialized_at'][:19].replace('T', ' ')}")
    if node.get("failing_checks"):
        title.append("failing checks: " + ", ".join(node["failing_checks"]))
    label = str(node.get("label") or node.get("name") or node["key"])
    if len(label) > 24:
        label = label[:23] + "…"
    sub = kind if not node.get("schema") else f"{kind} · {node['schema']}"
    badge = (
        f'<circle class="badge" cx="{box.x + NODE_W - 9:.0f}" cy="{box.y + 9:.0f}" r="5"/>'
        if node.get("failing_checks")
        else ""
    )
    return (
        f'<a href="{escape(link)}" class="node {state}" data-key="{escape(str(node["key"]))}">'
        f"<title>{escape(chr(10).join(title))}</title>"
        f'<rect x="{box.x:.0f}" y="{box.y:.0f}" width="{NODE_W}" height="{NODE_H}" rx="5" '
        f'fill="{_KIND_FILL.get(kind, "#fff")}"/>'
        f'<text x="{box.x + 8:.0f}" y="{box.y + 14:.0f}" class="label">{escape(label)}</text>'
        f'<text x="{box.x + 8:.0f}" y="{box.y + 28:.0f}" class="sub">{escape(sub)}</text>'
        f"{badge}</a>"
    )


def node_state(node: Mapping[str, Any]) -> str:
    """Return the class a node is drawn with: failed, stale, fresh, or observed (sources)."""
    if node.get("last_outcome") == "failed" or node.get("failing_checks"):
        return "failed"
    if node.get("kind") in ("source", "group"):
        return "observed"
    return "stale" if node.get("stale") else "fresh"
