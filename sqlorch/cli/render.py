"""Terminal rendering of run events (rich): one line per finished asset and a summary."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlorch.events import Event, EventKind

if TYPE_CHECKING:
    from collections.abc import Mapping

    from rich.console import Console
    from rich.progress import Progress, TaskID

    from sqlorch.core.plan.definition import Plan
    from sqlorch.state.store import EventRecord


def escape(text: str) -> str:
    """Escape rich markup in text that comes from users, dbt or the database."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def fmt_rows(rows: Any) -> str:
    """Format a row count for people."""
    return f"{rows:,} rows" if isinstance(rows, int) else ""


def fmt_seconds(seconds: Any) -> str:
    """Format a duration for people."""
    if not isinstance(seconds, int | float):
        return ""
    return f"{seconds:.2f}s" if seconds < 60 else f"{int(seconds // 60)}m{seconds % 60:04.1f}s"


class TerminalRenderer:
    """Print a live progress view: finished assets scroll, a status bar shows what runs.

    The view starts with the run (`run_started` tells how many steps it has), and only on
    a terminal.
    """

    def __init__(self, console: Console, total: int = 0, *, verbose: bool = False) -> None:
        self.console = console
        self.total = total
        self.verbose = verbose
        self.done = 0
        self.running: dict[str, float] = {}
        self.counts = {"succeeded": 0, "failed": 0, "skipped": 0}
        self.checks = {"passed": 0, "warned": 0, "failed": 0}
        self.failures: list[tuple[str, str]] = []
        # the command's start: "Done in" counts loading the project (dbt's parse) too
        self.started = time.perf_counter()
        self.loaded_after: float | None = None
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._loading: Any = None
        self.run_started = False

    def loading(self) -> None:
        """On a terminal, show that the project loads (dbt parses), with the time elapsed."""
        if not self.console.is_terminal:
            return
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self._loading = Progress(
            SpinnerColumn(),
            TextColumn("loading the project (dbt parses what changed)"),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        self._loading.add_task("loading", total=None)
        self._loading.start()

    def _loaded(self) -> None:
        if self._loading is not None:
            self._loading.stop()
            self._loading = None

    def __call__(self, event: Event) -> None:
        kind = event.kind
        data = event.data
        if kind is EventKind.RUN_STARTED:
            self._start(data.get("steps"))
        elif kind is EventKind.ASSET_STARTED and event.asset:
            self.running[event.asset] = time.perf_counter()
        elif kind is EventKind.ASSET_MATERIALIZED and event.asset:
            self._finished(event.asset)
            self.counts["succeeded"] += 1
            parts = (data.get("metadata") or {}).get("partitions")
            self._line(
                "[green]OK  [/]",
                data.get("kind", ""),
                event.asset,
                f"{fmt_rows(data.get('rows')):>16}  {fmt_seconds(data.get('duration_s')):>8}"
                + (f"  [dim]{parts:,} partitions[/]" if isinstance(parts, int) else ""),
            )
        elif kind is EventKind.ASSET_FAILED and event.asset:
            self._finished(event.asset)
            self.counts["failed"] += 1
            self.failures.append((event.asset, event.message))
            self._line(
                "[red]FAIL[/]",
                data.get("kind", ""),
                event.asset,
                f"{fmt_seconds(data.get('duration_s')):>26}",
            )
        elif kind is EventKind.ASSET_SKIPPED and event.asset:
            self._finished(event.asset)
            self.counts["skipped"] += 1
            self._line(
                "[yellow]SKIP[/]", data.get("kind", ""), event.asset, f"[dim]{event.message}[/]"
            )
        elif kind is EventKind.ASSET_RETRY and event.asset:
            self.console.print(
                f"[yellow]RETRY[/] {escape(event.asset)}: {escape(event.message)}",
                highlight=False,
            )
        elif kind is EventKind.CHECK_PASSED:
            self.checks["passed"] += 1
        elif kind is EventKind.CHECK_WARNED:
            self.checks["warned"] += 1
            self.console.print(f"[yellow]WARN[/] check  {escape(event.message)}", highlight=False)
        elif kind is EventKind.CHECK_FAILED:
            self.checks["failed"] += 1
            self.failures.append((f"check {data.get('check')}", event.message))
            self.console.print(f"[red]FAIL[/] check  {escape(event.message)}", highlight=False)
        elif kind is EventKind.DBT_INVOCATION_FINISHED and not data.get("success", True):
            self._invocation_failed(data)
        elif kind is EventKind.ASSET_LOG and self.verbose:
            self.console.print(
                f"[dim]     {escape(event.asset or '')}: {escape(event.message)}[/]",
                highlight=False,
            )
        self._refresh()

    def _invocation_failed(self, data: Mapping[str, Any]) -> None:
        """A dbt invocation that failed: its error is said, unless a failure already says it."""
        error = str(data.get("error") or "")
        if not error or any(error in message for _what, message in self.failures):
            return
        self.failures.append(("dbt", f"{error} (dbt's log: {data.get('log')})"))

    def _start(self, steps: object) -> None:
        self._loaded()
        self.run_started = True
        self.loaded_after = time.perf_counter() - self.started
        if isinstance(steps, int):
            self.total = steps
        if not self.console.is_terminal:
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[running]}"),
            console=self.console,
            transient=True,
        )
        self._task = self._progress.add_task("building", total=self.total, running="")
        self._progress.start()

    def _finished(self, key: str) -> None:
        self.running.pop(key, None)
        self.done += 1

    def _line(self, mark: str, kind: str, key: str, tail: str) -> None:
        self.console.print(f"{mark} {kind:<8} {escape(key):<44} {tail}", highlight=False)

    def _refresh(self) -> None:
        if self._progress is None:
            return
        names = ", ".join(list(self.running)[:3])
        if len(self.running) > 3:
            names += f" +{len(self.running) - 3}"
        assert self._task is not None
        self._progress.update(self._task, completed=self.done, running=names)

    def close(self, *, summary: bool = True) -> None:
        """Stop the live view and print the summary (unless the run never started)."""
        self._loaded()
        if self._progress is not None:
            self._progress.stop()
        if not summary:
            return
        elapsed = time.perf_counter() - self.started
        c = self.counts
        parts = [f"[green]{c['succeeded']} succeeded[/]"]
        if c["failed"]:
            parts.append(f"[red]{c['failed']} failed[/]")
        if c["skipped"]:
            parts.append(f"[yellow]{c['skipped']} skipped[/]")
        checks = self.checks
        total_checks = sum(checks.values())
        tail = ""
        if total_checks:
            tail = f"; checks: {checks['passed']} passed"
            if checks["warned"]:
                tail += f", [yellow]{checks['warned']} warned[/]"
            if checks["failed"]:
                tail += f", [red]{checks['failed']} failed[/]"
        loading = ""
        if self.loaded_after is not None and self.loaded_after >= 0.1:
            loading = f" ({fmt_seconds(self.loaded_after)} loading the project)"
        self.console.print(
            f"\nDone in {fmt_seconds(elapsed)}{loading}: {', '.join(parts)}{tail}.",
            highlight=False,
        )
        for what, message in self.failures:
            self.console.print(f"\n[red]{escape(what)}[/]: {escape(message)}", highlight=False)


def print_plan(
    console: Console,
    plan: Plan,
    *,
    as_json: bool = False,
    execution: Mapping[str, str] | None = None,
) -> None:
    """Print a plan as `--dry-run` shows it (`--json`: the DESIGN.md §10 document).

    `execution`: dbt step -> "native" or why dbt executes it (shown with the step).
    """
    from sqlorch.core.plan.explainer import explain_plan, plan_document, plan_headline

    execution = execution or {}
    if as_json:
        import click

        doc = plan_document(plan)
        for step in doc["steps"]:
            if step["key"] in execution:
                step["execution"] = execution[step["key"]]
        click.echo(json.dumps(doc, indent=2, default=str))
        return
    console.print(plan_headline(plan))
    keys = iter(s.key for s in plan.steps)
    for line in explain_plan(plan):
        how = ""
        if line.text.strip():  # a step's line (its partition ranges follow on blank ones)
            how = execution.get(next(keys, ""), "")
        why = "; ".join(x for x in (line.why, f"execution: {how}" if how else "") if x)
        console.print(f"{escape(line.text)}[dim]{escape(why)}[/]")


_LEVEL_COLORS = {"error": "red", "warning": "yellow", "debug": "dim"}


def print_event(console: Console, ev: EventRecord, *, debug: bool = False) -> None:
    """Print one recorded event as a line of `sqlorch logs`, with its traceback if it has one.

    (Errors say "the traceback is in `sqlorch logs`": it is, without --json or --debug.)
    """
    color = _LEVEL_COLORS.get(ev.level, "")
    detail = ev.message
    if ev.kind == EventKind.ASSET_MATERIALIZED:
        detail = f"{fmt_rows(ev.data.get('rows'))} {fmt_seconds(ev.data.get('duration_s'))}"
        if ev.data.get("metadata"):
            detail += " " + json.dumps(ev.data["metadata"], default=str)
    elif ev.kind in (
        EventKind.RUN_FINISHED,
        EventKind.DBT_INVOCATION_STARTED,
        EventKind.DBT_INVOCATION_FINISHED,
    ):
        detail = " ".join(
            f"{k}={v}" for k, v in ev.data.items() if k not in ("args",) and v is not None
        )
    line = f"{ev.ts[11:23]} {ev.kind:<24} {ev.asset or '':<40} {detail}"
    console.print(
        f"[{color}]{escape(line)}[/]" if color else line, highlight=False, markup=bool(color)
    )
    if ev.data.get("traceback") and (debug or ev.level == "error"):
        console.print(ev.data["traceback"], markup=False)
