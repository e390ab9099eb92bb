"""The runs list and the run page: timeline, event log (paged, filtered), live over SSE."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from sqlorch.app.run_view import events_page, run_page, runs_page
from sqlorch.errors import SqlorchError
from sqlorch.web.context import context_of
from sqlorch.web.responses import api, error_json, error_page, page

#: events per page of the log (the page shows one; older/newer pages on request)
PAGE = 500
#: how often a live run page looks for new events (seconds)
POLL = 0.5


def _runs(request: Request) -> list[dict[str, Any]]:
    params = request.query_params
    return runs_page(
        context_of(request).settings,
        limit=int(params.get("limit", "200") or 200),
        status=params.get("status") or None,
        asset=params.get("asset") or None,
    )


async def runs_html(request: Request) -> Response:
    """Runs, newest first, filtered by status and asset."""
    runs = await run_in_threadpool(_runs, request)
    params = request.query_params
    return page(
        request,
        "runs.html",
        runs=runs,
        status=params.get("status", ""),
        asset=params.get("asset", ""),
    )


async def runs_api(request: Request) -> Response:
    """JSON twin of the runs list (`sqlorch runs --json` documents)."""
    return api(await run_in_threadpool(_runs, request))


def _log(request: Request, run_id: str) -> dict[str, Any]:
    params = request.query_params
    return events_page(
        context_of(request).settings,
        run_id,
        after=int(params.get("after", "0") or 0),
        limit=min(int(params.get("limit", str(PAGE)) or PAGE), 5000),
        level=params.get("level", "debug") or "debug",
        asset=params.get("asset") or None,
    )


async def run_html(request: Request) -> Response:
    """One run: summary, timeline, the first page of its log (live while it runs)."""
    run_id = request.path_params["run_id"]
    settings = context_of(request).settings
    try:
        doc = await run_in_threadpool(run_page, settings, run_id)
        log = await run_in_threadpool(_log, request, doc["run"]["run_id"])
    except SqlorchError as exc:
        return error_page(request, exc, 404)
    params = request.query_params
    return page(
        request,
        "run.html",
        doc=doc,
        run=doc["run"],
        log=log,
        level=params.get("level", "debug"),
        asset=params.get("asset", ""),
        after=int(params.get("after", "0") or 0),
        timeline_json=doc["timeline"],
    )


async def run_api(request: Request) -> Response:
    """JSON twin of the run page (without the log: `/api/runs/ID/events`)."""
    try:
        doc = await run_in_threadpool(
            run_page, context_of(request).settings, request.path_params["run_id"]
        )
    except SqlorchError as exc:
        return error_json(exc, 404)
    return api(doc)


async def events_api(request: Request) -> Response:
    """A page of the run's log: `?after=ID&limit=N&level=L&asset=KEY`."""
    try:
        doc = await run_in_threadpool(_log, request, request.path_params["run_id"])
    except SqlorchError as exc:
        return error_json(exc, 404)
    return api(doc)


async def events_stream(request: Request) -> Response:
    """Server-Sent Events: the run's new events as they are recorded, then `done`."""
    run_id = request.path_params["run_id"]
    try:
        first = await run_in_threadpool(_log, request, run_id)
    except SqlorchError as exc:
        return error_json(exc, 404)

    async def stream() -> AsyncIterator[str]:
        doc = first
        while True:
            for ev in doc["events"]:
                yield f"id: {ev['id']}\nevent: log\ndata: {json.dumps(ev, default=str)}\n\n"
            if not doc["more"] and doc["status"] != "running":
                yield f"event: done\ndata: {json.dumps({'status': doc['status']})}\n\n"
                return
            if not doc["more"]:
                await anyio.sleep(POLL)
            if await request.is_disconnected():
                return
            doc = await run_in_threadpool(
                events_page,
                context_of(request).settings,
                run_id,
                after=doc["next"],
                limit=PAGE,
                level=request.query_params.get("level", "debug") or "debug",
                asset=request.query_params.get("asset") or None,
            )

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


ROUTES = [
    Route("/runs", runs_html, name="runs"),
    Route("/api/runs", runs_api, name="runs_api"),
    Route("/runs/{run_id}", run_html, name="run"),
    Route("/api/runs/{run_id}", run_api, name="run_api"),
    Route("/api/runs/{run_id}/events", events_api, name="events_api"),
    Route("/runs/{run_id}/stream", events_stream, name="events_stream"),
]
