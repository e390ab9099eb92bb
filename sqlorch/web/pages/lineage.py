"""Column lineage: a column's upstream or downstream tree, as `sqlorch lineage --json` gives it.

The answer comes from a `sqlorch lineage` process, so the web server never compiles SQL,
imports dbt or sqlglot, or reads the warehouse's catalog itself: that process does what the
command does (and, while a build holds the DuckDB file, says which models it cannot compile).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sqlorch.errors import ConfigError, SqlorchError
from sqlorch.web.context import WebContext, context_of
from sqlorch.web.responses import api, error_json, error_page, page

#: how long a lineage answer may take (a cold one compiles the models dbt has not yet)
TIMEOUT = 300


def lineage_document(
    ctx: WebContext, ref: str, direction: str, depth: int | None
) -> dict[str, Any]:
    """Run `sqlorch lineage REF --json` for this project and return its document.

    Raises:
        ConfigError: the command failed (its one-paragraph error), or took too long.
    """
    if direction not in ("upstream", "downstream"):
        raise ConfigError(f"Unknown direction {direction!r}: upstream or downstream.")
    args = [sys.executable, "-m", "sqlorch.cli", "lineage", ref, "--json", f"--{direction}"]
    if depth is not None:
        args += ["--depth", str(depth)]
    args += ctx.launcher.base_args()
    try:
        done = subprocess.run(  # noqa: S603 - our own CLI, arguments as a list
            args,
            cwd=ctx.settings.project_dir,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ConfigError(f"`sqlorch lineage {ref}` took over {TIMEOUT} s.") from exc
    if done.returncode != 0:
        message = " ".join(done.stderr.replace("Error:", "", 1).split()) or "no output"
        raise ConfigError(message)
    doc: dict[str, Any] = json.loads(done.stdout)
    doc["warnings"] = [
        " ".join(line.replace("Warning:", "", 1).split())
        for line in done.stderr.splitlines()
        if line.startswith("Warning:")
    ]
    doc["direction"] = direction
    return doc


def _args(request: Request) -> tuple[str, str, int | None]:
    params = request.query_params
    depth = params.get("depth", "")
    return (
        request.path_params["ref"],
        params.get("direction", "upstream") or "upstream",
        int(depth) if depth.isdigit() else None,
    )


async def lineage_html(request: Request) -> Response:
    """A column's tree (`?direction=downstream`, `?depth=N`); `?fragment=1`: the tree alone."""
    ctx = context_of(request)
    ref, direction, depth = _args(request)
    try:
        doc = await run_in_threadpool(lineage_document, ctx, ref, direction, depth)
    except SqlorchError as exc:
        return error_page(request, exc)
    template = "lineage_fragment.html" if request.query_params.get("fragment") else "lineage.html"
    return page(request, template, doc=doc, ref=ref, direction=direction)


async def lineage_api(request: Request) -> Response:
    """JSON twin: `sqlorch lineage REF --json` (`--downstream` with `?direction=downstream`)."""
    try:
        doc = await run_in_threadpool(lineage_document, context_of(request), *_args(request))
    except SqlorchError as exc:
        return error_json(exc)
    return api(doc)


ROUTES = [
    Route("/api/lineage/{ref:path}", lineage_api, name="lineage_api"),
    Route("/lineage/{ref:path}", lineage_html, name="lineage"),
]
