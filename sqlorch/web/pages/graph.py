"""The graph page: the merged asset graph as server-side SVG, selectable and collapsible."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sqlorch.app.graph_view import graph_document
from sqlorch.errors import SqlorchError
from sqlorch.web.context import context_of
from sqlorch.web.layout import fingerprint, node_state, render_svg
from sqlorch.web.responses import api, error_json, error_page, page, query_list

#: a graph larger than this opens on the selection's neighbourhood (or what needs attention)
LARGE = 300


def view(doc: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    """Choose what to draw: the selection's neighbourhood, groups collapsed, or everything."""
    assets = doc["assets"]
    by_key = {a["key"]: a for a in assets}
    selected = doc["selected"]
    show_all = params.get("all") == "1"
    note = ""
    if selected is not None and not show_all:
        wanted = set(selected)
        for a in assets:  # one step out: the selection's neighbourhood
            if a["key"] in wanted:
                wanted.update(d for d in a["deps"] if d in by_key)
            elif any(d in selected for d in a["deps"]):
                wanted.add(a["key"])
        shown = [a for a in assets if a["key"] in wanted]
    elif len(assets) > LARGE and not show_all:
        attention = {a["key"] for a in assets if node_state(a) in ("stale", "failed")}
        shown = [a for a in assets if a["key"] in attention][:LARGE] or assets[:LARGE]
        note = f"{len(assets):,} assets: showing {len(shown):,} " + (
            "that are stale or failed" if attention else "(the first in graph order)"
        )
    else:
        shown = assets
    grouping = "folder" if params.get("group") == "folder" else "schema"
    collapsed = {g for g in params.get("collapse", "").split(",") if g}
    return {**_collapse(shown, grouping, collapsed), "note": note, "grouping": grouping}


def _collapse(
    assets: Sequence[dict[str, Any]], grouping: str, collapsed: set[str]
) -> dict[str, Any]:
    def node_of(a: dict[str, Any]) -> str:
        group = a.get(grouping) or ""
        return f"group:{group}" if group in collapsed else a["key"]

    nodes: dict[str, dict[str, Any]] = {}
    groups: dict[str, int] = {}
    for a in assets:
        group = a.get(grouping) or ""
        groups[group] = groups.get(group, 0) + 1
        key = node_of(a)
        if key == a["key"]:
            nodes[key] = a
            continue
        g = nodes.setdefault(
            key,
            {
                "key": key,
                "kind": "group",
                "name": group,
                "schema": "",
                "stale": False,
                "reasons": [],
                "failing_checks": [],
                "last_outcome": None,
                "members": 0,
            },
        )
        g["members"] += 1
        g["label"] = f"{group} ({g['members']} assets)"
        g["stale"] = g["stale"] or a["stale"]
        g["failing_checks"] = g["failing_checks"] + a["failing_checks"]
        if a["last_outcome"] == "failed":
            g["last_outcome"] = "failed"
    keys = {a["key"]: node_of(a) for a in assets}
    edges = sorted(
        {
            (keys[d], keys[a["key"]])
            for a in assets
            for d in a["deps"]
            if d in keys and keys[d] != keys[a["key"]]
        }
    )
    return {
        "nodes": list(nodes.values()),
        "edges": edges,
        "groups": sorted(groups.items()),
        "collapsed": collapsed,
    }


def _svg(request: Request, drawn: dict[str, Any]) -> tuple[str, str]:
    ctx = context_of(request)
    keys = [n["key"] for n in drawn["nodes"]]
    layout = ctx.layouts.get(keys, drawn["edges"])
    href = {
        n["key"]: f"/assets/{quote(n['key'])}" if n["kind"] != "group" else _toggle(request, n)
        for n in drawn["nodes"]
    }
    return render_svg(layout, drawn["nodes"], drawn["edges"], href), fingerprint(
        keys, drawn["edges"]
    )


def _toggle(request: Request, node: dict[str, Any]) -> str:
    params = dict(request.query_params)
    collapsed = {g for g in params.get("collapse", "").split(",") if g}
    collapsed ^= {node["name"]}
    params["collapse"] = ",".join(sorted(collapsed))
    return "/?" + urlencode(params)


def _document(request: Request) -> dict[str, Any]:
    params = request.query_params
    warnings: list[str] = []
    doc = graph_document(
        context_of(request).settings,
        query_list(params, "select"),
        query_list(params, "exclude"),
        warn=warnings.append,
    )
    doc["warnings"] = warnings
    return doc


async def graph_page(request: Request) -> Response:
    """The graph: selection box, groups, the SVG."""
    try:
        doc = await run_in_threadpool(_document, request)
    except SqlorchError as exc:
        return error_page(request, exc)
    params = dict(request.query_params)
    drawn = view(doc, params)
    svg, fp = await run_in_threadpool(_svg, request, drawn)
    toggles = []
    for group, count in drawn["groups"]:
        link = _toggle(request, {"name": group})
        toggles.append(
            {
                "name": group or "(none)",
                "count": count,
                "href": link,
                "collapsed": group in drawn["collapsed"],
            }
        )
    return page(
        request,
        "graph.html",
        svg=svg,
        fingerprint=fp,
        select=params.get("select", ""),
        exclude=params.get("exclude", ""),
        grouping=drawn["grouping"],
        groups=toggles,
        note=drawn["note"],
        warnings=doc["warnings"],
        counts=_counts(doc["assets"]),
        shown=len(drawn["nodes"]),
        all_href="/?" + urlencode({**params, "all": "1"}),
    )


def _counts(assets: Sequence[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {"assets": len(assets)}
    for a in assets:
        state = node_state(a)
        counts[state] = counts.get(state, 0) + 1
    return counts


async def graph_api(request: Request) -> Response:
    """JSON twin of the graph page: every asset with its status, and the selection."""
    try:
        doc = await run_in_threadpool(_document, request)
    except SqlorchError as exc:
        return error_json(exc)
    return api(doc)


async def graph_svg(request: Request) -> Response:
    """The graph's SVG alone (same parameters as the page)."""
    try:
        doc = await run_in_threadpool(_document, request)
    except SqlorchError as exc:
        return error_json(exc)
    svg, _fp = await run_in_threadpool(_svg, request, view(doc, dict(request.query_params)))
    return Response(svg, media_type="image/svg+xml")


ROUTES = [
    Route("/", graph_page, name="graph"),
    Route("/graph.svg", graph_svg, name="graph_svg"),
    Route("/api/graph", graph_api, name="graph_api"),
]
