"""What every command shares: options, error handling, consoles, tables and JSON output."""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import click

from sqlorch.errors import SqlorchError

if TYPE_CHECKING:
    from rich.console import Console

    from sqlorch.settings import Settings

P = ParamSpec("P")
R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])


def common(fn: F) -> F:
    """Add the options every project command takes."""
    fn = click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")(fn)
    fn = click.option("--target", "-t", help="dbt profile target (default: the profile's).")(fn)
    fn = click.option(
        "--profiles-dir", type=click.Path(file_okay=False), help="Folder of profiles.yml."
    )(fn)
    fn = click.option(
        "--project-dir", type=click.Path(file_okay=False), help="Folder of dbt_project.yml."
    )(fn)
    return fn


class GreedyOption(click.Option):
    """A multiple option that, as dbt's `-s a b`, also takes the words after its value.

    `-s a b --exclude c d` selects a and b and excludes c and d; `-s a -s b` still works.
    """

    def add_to_parser(self, parser: Any, ctx: click.Context) -> None:
        """Register the option, then make it consume the following non-option words."""
        super().add_to_parser(parser, ctx)
        for name in self.opts:
            opt = parser._long_opt.get(name) or parser._short_opt.get(name)
            if opt is None:
                continue
            process = opt.process

            def greedy(value: Any, state: Any, process: Any = process) -> None:
                process(value, state)
                while state.rargs and not str(state.rargs[0]).startswith("-"):
                    process(state.rargs.pop(0), state)

            opt.process = greedy


def selection(fn: F) -> F:
    """Add `--select` and `--exclude` (dbt's selection syntax over all assets)."""
    fn = click.option(
        "--exclude",
        multiple=True,
        cls=GreedyOption,
        help="Assets to leave out (same syntax as --select).",
    )(fn)
    fn = click.option(
        "--select",
        "-s",
        multiple=True,
        cls=GreedyOption,
        help="dbt selection syntax over all assets: name, +name, name+, tag:x, path:, "
        "source:, kind:python, '*'. Space = union, comma = intersection.",
    )(fn)
    return fn


def threads_option(fn: F) -> F:
    """Add `--threads`."""
    return click.option(
        "--threads", type=click.IntRange(min=1), help="Parallel workers (and dbt threads)."
    )(fn)


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Print a known error as one clear paragraph and exit with its code (traceback: --debug).

    Exit codes: 2 usage or configuration error, 1 run-time failure, 130 Ctrl-C.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        debug = bool(kwargs.get("debug", False))
        logging.basicConfig(
            level=logging.DEBUG if debug else logging.WARNING,
            format="%(levelname)s %(name)s: %(message)s",
        )
        try:
            return fn(*args, **kwargs)
        except SqlorchError as exc:
            if debug:
                import traceback

                traceback.print_exc()
            from sqlorch.cli.render import escape

            err_console().print(f"[red]Error:[/] {escape(exc.message)}", highlight=False)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            err_console().print("[yellow]Interrupted.[/]")
            sys.exit(130)

    return wrapper


def console() -> Console:
    """Return a console on stdout."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def err_console() -> Console:
    """Return a console on stderr."""
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def warn(message: str) -> None:
    """Print a warning on stderr."""
    from sqlorch.cli.render import escape

    err_console().print(f"[yellow]Warning:[/] {escape(message)}", highlight=False)


def load_settings(
    project_dir: str | None,
    profiles_dir: str | None,
    target: str | None,
    threads: int | None = None,
) -> Settings:
    """Resolve the settings from the shared options; work in the project's folder.

    Relative paths in the project (a profile's DuckDB `path`) then mean the same wherever the
    command starts, as the state does (`--project-dir` from another folder). A `profiles.yml`
    in the starting folder is still found first, as dbt finds it.
    """
    import dataclasses
    import os
    from pathlib import Path

    from sqlorch.settings import load_settings as load

    settings = load(
        project_dir=project_dir, profiles_dir=profiles_dir, target=target, threads=threads
    )
    here = Path.cwd().resolve()
    if project_dir and settings.project_dir != here:
        if settings.profiles_dir is None and (here / "profiles.yml").is_file():
            settings = dataclasses.replace(settings, profiles_dir=here)
        os.chdir(settings.project_dir)
    return settings


def print_table(
    headers: tuple[str, ...],
    rows: list[tuple[str, ...]],
    *,
    right: set[str] | frozenset[str] = frozenset(),
    color: Callable[[str, str], str | None] | None = None,
) -> None:
    """Print an aligned table, one line per row, fast for thousands of rows.

    (rich's Table measures every cell several times: 1,000 assets took over a second.)
    Colors only reach a terminal; the last column is not padded, and lines never fold.
    """
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: tuple[str, ...], style: bool) -> str:
        out = []
        for i, (head, cell) in enumerate(zip(headers, cells, strict=True)):
            last = i == len(headers) - 1
            text = (
                cell if last else cell.rjust(widths[i]) if head in right else cell.ljust(widths[i])
            )
            fg = color(head, cell) if (style and color is not None) else None
            out.append(click.style(text, fg=fg) if fg else text)
        return "  ".join(out).rstrip()

    click.echo(click.style(line(headers, False), bold=True))
    click.echo("\n".join(line(r, True) for r in rows))


def emit_json(doc: Any) -> None:
    """Print one JSON document."""
    click.echo(json.dumps(doc, indent=2, default=str))
