"""Launch: build, backfill, retry or wipe, each after a confirmation that shows the plan.

GET /launch is the form; POST /launch/plan shows what would run (the `--dry-run` plan, or
the partitions a wipe forgets) with a confirm button; POST /launch starts a separate
`sqlorch` process and redirects to its launch page, which becomes the run page once the
run is recorded. Every POST carries the CSRF token.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from sqlorch.app.plans import BackfillRequest, BuildRequest, RetryRequest
from sqlorch.app.plans import Request as PlanRequest
from sqlorch.app.previews import plan_preview, warehouse_file, wipe_preview
from sqlorch.errors import ConfigError, SqlorchError
from sqlorch.web.context import WebContext, context_of
from sqlorch.web.launcher import Launch, running_runs, warehouse_holder
from sqlorch.web.responses import api, checked_form, error_json, error_page, page

COMMANDS = ("build", "backfill", "retry", "wipe")
FIELDS = (
    "command",
    "select",
    "exclude",
    "full",
    "start",
    "end",
    "run_id",
    "asset",
    "downstream",
    "delete_data",
)


@dataclass(frozen=True, slots=True)
class LaunchForm:
    """What the launch form asks for, validated."""

    command: str
    select: str = ""
    exclude: str = ""
    full: bool = False
    start: str = ""
    end: str = ""
    run_id: str = ""
    asset: str = ""
    downstream: bool = True
    delete_data: bool = False

    @classmethod
    def parse(cls, values: Mapping[str, Any]) -> LaunchForm:
        """Validate the form's values.

        Raises:
            ConfigError: an unknown command, or a field the command needs is empty.
        """
        text = {k: str(values.get(k) or "").strip() for k in FIELDS}
        command = text["command"] or "build"
        if command not in COMMANDS:
            raise ConfigError(f"Unknown command {command!r}: one of {', '.join(COMMANDS)}.")
        if command == "backfill" and not text["select"]:
            raise ConfigError(
                "A backfill needs a selection (the assets whose partitions to rebuild)."
            )
        if command == "backfill" and not (text["start"] or text["end"]):
            raise ConfigError("A backfill needs a range: a first and/or a last partition.")
        if command == "wipe" and not (text["asset"] and (text["start"] or text["end"])):
            raise ConfigError("A wipe needs an asset and a range (first and/or last partition).")
        return cls(
            command=command,
            select=text["select"],
            exclude=text["exclude"],
            full=text["full"] in ("1", "on", "true"),
            start=text["start"],
            end=text["end"],
            run_id=text["run_id"],
            asset=text["asset"],
            downstream=text["downstream"] not in ("0", "off", "false"),
            delete_data=text["delete_data"] in ("1", "on", "true"),
        )

    def request(self) -> PlanRequest | None:
        """The plan request (None: a wipe, which plans nothing)."""
        sel = (self.select,) if self.select else ()
        exc = (self.exclude,) if self.exclude else ()
        if self.command == "build":
            return BuildRequest(select=sel, exclude=exc, full=self.full)
        if self.command == "backfill":
            return BackfillRequest(
                select=sel,
                exclude=exc,
                start=self.start or None,
                end=self.end or None,
                downstream=self.downstream,
            )
        if self.command == "retry":
            return RetryRequest(run_id=self.run_id or None)
        return None

    def args(self) -> list[str]:
        """The command line arguments after `sqlorch COMMAND`."""
        out: list[str] = []
        if self.command == "build":
            out += ["-s", self.select] if self.select else []
            out += ["--full"] if self.full else []
        if self.command == "backfill":
            out.append(self.select)  # SELECT is an argument of backfill
        if self.command in ("build", "backfill") and self.exclude:
            out += ["--exclude", self.exclude]
        if self.command == "retry" and self.run_id:
            out.append(self.run_id)
        if self.command == "wipe":
            out.append(self.asset)
            out += ["--delete-data"] if self.delete_data else []
        if self.command in ("backfill", "wipe"):
            out += ["--from", self.start] if self.start else []
            out += ["--to", self.end] if self.end else []
        if self.command == "backfill" and not self.downstream:
            out.append("--no-downstream")
        return out

    def values(self) -> dict[str, str]:
        """The form's values, to carry into the confirmation's hidden fields."""
        return {
            "command": self.command,
            "select": self.select,
            "exclude": self.exclude,
            "full": "1" if self.full else "",
            "start": self.start,
            "end": self.end,
            "run_id": self.run_id,
            "asset": self.asset,
            "downstream": "1" if self.downstream else "0",
            "delete_data": "1" if self.delete_data else "",
        }


def busy(ctx: WebContext) -> str | None:
    """Why a launch must wait: a running build holds the DuckDB file (None: free)."""
    running = running_runs(ctx.settings)
    holder = warehouse_holder(warehouse_file(ctx.settings))
    if holder is not None:
        which = f" (run {running[0].run_id})" if running else ""
        return (
            f"A build is running{which}: process {holder} holds the DuckDB file, which takes "
            "one writer at a time. Launch again when it has finished; its run page shows it."
        )
    if running:
        return None  # recorded as running, but nothing holds the file: it died or is planning
    return None


def _preview(ctx: WebContext, form: LaunchForm) -> dict[str, Any]:
    warnings: list[str] = []
    request = form.request()
    if request is None:
        doc = wipe_preview(ctx.settings, form.asset, form.start or None, form.end or None)
        doc = {**doc, "headline": f"Wipe {doc['count']:,} partitions of {doc['key']}"}
    else:
        doc = plan_preview(ctx.settings, request, warn=warnings.append)
    return {
        **doc,
        "command": form.command,
        "args": ["sqlorch", form.command, *form.args()],
        "warnings": warnings,
        "busy": busy(ctx),
    }


async def launch_form(request: Request) -> Response:
    """The launch form, prefilled from the query (links from the asset, run, partitions pages)."""
    values = {k: request.query_params.get(k, "") for k in FIELDS}
    values["command"] = values["command"] or "build"
    return page(request, "launch.html", values=values, commands=COMMANDS)


async def launch_plan(request: Request) -> Response:
    """The confirmation: what would run, and the button that runs it."""
    form = await checked_form(request)
    ctx = context_of(request)
    try:
        parsed = LaunchForm.parse(form)
        doc = await run_in_threadpool(_preview, ctx, parsed)
    except SqlorchError as exc:
        return error_page(request, exc)
    return page(request, "confirm.html", doc=doc, values=parsed.values())


async def launch_start(request: Request) -> Response:
    """Start the launch (refused while a build holds the warehouse) and go to its page."""
    form = await checked_form(request)
    ctx = context_of(request)
    try:
        parsed = LaunchForm.parse(form)
        launch = await run_in_threadpool(_start, ctx, parsed)
    except SqlorchError as exc:
        if request.url.path.startswith("/api/"):
            return error_json(exc, 409 if "holds the DuckDB file" in exc.message else 400)
        return error_page(request, exc, 409 if "holds the DuckDB file" in exc.message else 400)
    if request.url.path.startswith("/api/"):
        return api(_launch_doc(launch))
    return RedirectResponse(f"/launches/{launch.launch_id}", status_code=303)


def _start(ctx: WebContext, form: LaunchForm) -> Launch:
    why = busy(ctx)
    if why is not None:
        raise ConfigError(why)
    request = form.request()
    from sqlorch.app.plans import selection_text

    selection = selection_text(request) if request is not None else ""
    if isinstance(request, RetryRequest):
        selection = ""  # found by command: the retried run's id is resolved by the process
    return ctx.launcher.start(form.command, form.args(), selection)


async def api_plan(request: Request) -> Response:
    """JSON twin of the confirmation."""
    form = await checked_form(request)
    try:
        doc = await run_in_threadpool(_preview, context_of(request), LaunchForm.parse(form))
    except SqlorchError as exc:
        return error_json(exc)
    return api(doc)


def _launch_doc(launch: Launch) -> dict[str, Any]:
    return {
        "launch_id": launch.launch_id,
        "command": launch.command,
        "args": list(launch.args),
        "started_at": launch.started_at,
        "exit_code": launch.exit_code,
        "run_id": launch.run_id,
        "output": launch.output(),
    }


async def launch_html(request: Request) -> Response:
    """A launch: its run page once the run is recorded, else its state and output."""
    ctx = context_of(request)
    launch = await run_in_threadpool(ctx.launcher.get, request.path_params["launch_id"])
    if launch is None:
        return error_page(request, ConfigError("No such launch (the UI was restarted?)."), 404)
    if launch.run_id is not None:
        return RedirectResponse(f"/runs/{launch.run_id}", status_code=303)
    return page(request, "launched.html", launch=_launch_doc(launch))


async def launch_api(request: Request) -> Response:
    """JSON twin of a launch."""
    ctx = context_of(request)
    launch = await run_in_threadpool(ctx.launcher.get, request.path_params["launch_id"])
    if launch is None:
        return api({"error": "no such launch"}, 404)
    return api(_launch_doc(launch))


ROUTES = [
    Route("/launch", launch_form, name="launch"),
    Route("/launch/plan", launch_plan, methods=["POST"], name="launch_plan"),
    Route("/launch/start", launch_start, methods=["POST"], name="launch_start"),
    Route("/api/launch/plan", api_plan, methods=["POST"], name="launch_plan_api"),
    Route("/api/launch/start", launch_start, methods=["POST"], name="launch_start_api"),
    Route("/launches/{launch_id}", launch_html, name="launched"),
    Route("/api/launches/{launch_id}", launch_api, name="launched_api"),
]
