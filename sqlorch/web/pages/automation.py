"""The automation page: is a daemon running, the run queue, and the tick history with reasons."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sqlorch.app.automation_view import automation_page
from sqlorch.web.context import context_of
from sqlorch.web.responses import api, page


def _doc(request: Request) -> dict[str, Any]:
    params = request.query_params
    return automation_page(
        context_of(request).settings,
        limit=min(int(params.get("limit", "200") or 200), 2000),
        source=params.get("source") or None,
        status=params.get("status") or None,
    )


async def automation_html(request: Request) -> Response:
    """The daemon's lease, the queue of automation runs, the decisions of each tick."""
    doc = await run_in_threadpool(_doc, request)
    params = request.query_params
    return page(
        request,
        "automation.html",
        doc=doc,
        source=params.get("source", ""),
        status=params.get("status", ""),
    )


async def automation_api(request: Request) -> Response:
    """JSON twin of the automation page."""
    return api(await run_in_threadpool(_doc, request))


ROUTES = [
    Route("/automation", automation_html, name="automation"),
    Route("/api/automation", automation_api, name="automation_api"),
]
