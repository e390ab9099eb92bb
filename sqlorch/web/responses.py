"""How pages answer: HTML from templates, JSON twins, errors as pages, CSRF-checked forms."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse

from sqlorch.errors import SqlorchError
from sqlorch.web.context import context_of

#: the navigation bar: path -> label (issue 13 adds its automation page here)
NAV: tuple[tuple[str, str], ...] = (
    ("/", "Graph"),
    ("/runs", "Runs"),
    ("/automation", "Automation"),
    ("/launch", "Launch"),
)


def page(request: Request, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
    """Render `template` (autoescaped) with the values every page has."""
    ctx = context_of(request)
    html = ctx.templates.get_template(template).render(
        request=request,
        nav=NAV,
        csrf_token=ctx.csrf_token,
        project=str(ctx.settings.project_dir),
        **values,
    )
    return HTMLResponse(html, status_code=status_code)


def api(doc: Any, status_code: int = 200) -> JSONResponse:
    """Answer with one JSON document (the §10 shapes)."""
    return JSONResponse(json.loads(json.dumps(doc, default=str)), status_code=status_code)


def error_page(request: Request, exc: SqlorchError, status_code: int = 400) -> HTMLResponse:
    """Show a known error as its one paragraph."""
    return page(request, "error.html", status_code=status_code, message=exc.message)


def error_json(exc: SqlorchError, status_code: int = 400) -> JSONResponse:
    """A known error as `{"error": message}`."""
    return JSONResponse({"error": exc.message}, status_code=status_code)


async def checked_form(request: Request) -> FormData:
    """Return a POST's form after checking its CSRF token and origin.

    Raises:
        HTTPException: 403 when the token is missing or wrong, or the request comes from
            another origin.
    """
    ctx = context_of(request)
    origin = request.headers.get("origin") or request.headers.get("referer")
    if origin and origin != "null":
        got = urlsplit(origin)
        if got.netloc != request.headers.get("host", request.url.netloc):
            raise HTTPException(403, "Cross-origin request refused.")
    form = await request.form()
    token = str(form.get("csrf") or request.headers.get("x-csrf-token") or "")
    if not secrets.compare_digest(token.encode(), ctx.csrf_token.encode()):
        raise HTTPException(403, "Missing or wrong CSRF token: reload the page and try again.")
    return form


def query_list(params: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Split a space-separated query parameter (a selection) into its tokens."""
    value = params.get(name, "").strip()
    return (value,) if value else ()
