"""The asset page: what an asset is, its state, neighbours, checks and history as plots."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sqlorch.app.graph_view import asset_page
from sqlorch.errors import SqlorchError
from sqlorch.web.context import context_of
from sqlorch.web.responses import api, error_json, error_page, page


def _document(request: Request) -> dict[str, Any]:
    return asset_page(context_of(request).settings, request.path_params["key"])


async def asset_html(request: Request) -> Response:
    """One asset: kind, file, code version, columns, checks, plots, materializations."""
    try:
        doc = await run_in_threadpool(_document, request)
    except SqlorchError as exc:
        return error_page(request, exc, 404)
    return page(request, "asset.html", doc=doc, a=doc["asset"])


async def asset_api(request: Request) -> Response:
    """JSON twin of the asset page."""
    try:
        doc = await run_in_threadpool(_document, request)
    except SqlorchError as exc:
        return error_json(exc, 404)
    return api(doc)


ROUTES = [
    Route("/api/assets/{key:path}", asset_api, name="asset_api"),
    Route("/assets/{key:path}", asset_html, name="asset"),
]
