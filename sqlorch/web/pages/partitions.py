"""The partitions page: an asset's partitions as proportional ranges; backfill or wipe a range."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sqlorch.app.partition_view import partition_grid
from sqlorch.errors import SqlorchError
from sqlorch.web.context import context_of
from sqlorch.web.responses import api, error_json, error_page, page


def _document(request: Request) -> dict[str, Any]:
    return partition_grid(context_of(request).settings, request.path_params["key"])


async def partitions_html(request: Request) -> Response:
    """The grid: one bar per row (static key), shaded by done / stale / missing / failed."""
    try:
        doc = await run_in_threadpool(_document, request)
    except SqlorchError as exc:
        return error_page(request, exc, 404)
    return page(request, "partitions.html", doc=doc)


async def partitions_api(request: Request) -> Response:
    """JSON twin of the partitions page."""
    try:
        doc = await run_in_threadpool(_document, request)
    except SqlorchError as exc:
        return error_json(exc, 404)
    return api(doc)


ROUTES = [
    Route("/api/partitions/{key:path}", partitions_api, name="partitions_api"),
    Route("/partitions/{key:path}", partitions_html, name="partitions"),
]
