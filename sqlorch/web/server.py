"""Build the web app and serve it with uvicorn (`sqlorch ui`)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from sqlorch.settings import Settings
from sqlorch.web.context import make_context
from sqlorch.web.routes import routes


def create_app(settings: Settings) -> Starlette:
    """Return the web app over the project of `settings`."""
    app = Starlette(routes=routes(), exception_handlers={HTTPException: _http_error})
    app.state.ctx = make_context(settings)
    return app


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)
    from html import escape

    body = f"<!doctype html><title>{exc.status_code}</title><p>{escape(str(exc.detail))}</p>"
    return HTMLResponse(body, status_code=exc.status_code)


def serve(settings: Settings, host: str, port: int) -> None:
    """Serve the app until Ctrl-C."""
    import uvicorn

    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")
