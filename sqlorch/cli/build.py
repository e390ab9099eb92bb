"""`sqlorch build`, `backfill`, `retry` and `check`: one call of `sqlorch.app.build.build` each."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import click

from sqlorch.cli.options import (
    common,
    console,
    err_console,
    handle_errors,
    load_settings,
    selection,
    threads_option,
    warn,
)
from sqlorch.errors import ConfigError

if TYPE_CHECKING:
    from rich.console import Console

    from sqlorch.app.build import BuildResult
    from sqlorch.app.plans import Request

_DRY_RUN_HELP = "Print the plan and why; run nothing."
_JSON_HELP = "With --dry-run: the plan as JSON."
_VERBOSE_HELP = "Show asset log lines as they arrive."


@click.command()
@common
@selection
@threads_option
@click.option("--full", is_flag=True, help="Rebuild every selected asset, stale or not.")
@click.option(
    "--accept-schema",
    is_flag=True,
    help="Accept the selected assets' changed columns: a failed schema_change check passes, "
    "and partitioned Python assets' tables take their new columns.",
)
@click.option("--dry-run", is_flag=True, help=_DRY_RUN_HELP)
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
@click.option("--verbose", "-v", is_flag=True, help=_VERBOSE_HELP)
@click.option(
    "--skip-non-breaking",
    is_flag=True,
    help="Skip downstream assets that column lineage shows a non-breaking change "
    "(columns added, comments) does not affect.",
)
@click.option(
    "--full-refresh",
    is_flag=True,
    help="As dbt: rebuild incremental models and seeds from scratch (implies --full: every "
    "partition of the selection is rebuilt).",
)
@click.option(
    "--defer",
    is_flag=True,
    help="Read unselected upstream models from the --state manifest's relations (slim CI).",
)
@click.option(
    "--state",
    "state_dir",
    metavar="PATH|TARGET",
    help="With --defer: a folder holding a production manifest.json, or a target (`prod`).",
)
@click.option(
    "--vars",
    "dbt_vars",
    metavar="YAML",
    help="dbt's --vars (a YAML/JSON mapping): over the project's vars, in every code version.",
)
@click.option(
    "--target-path",
    metavar="DIR",
    help="Also write the run's dbt artifacts (manifest.json, run_results.json) to DIR.",
)
@click.option(
    "--wait",
    type=float,
    is_flag=False,
    flag_value=3600.0,
    default=None,
    metavar="[SECONDS]",
    help="When another build holds these assets (or the DuckDB file), wait for it (default "
    "up to 3600 s), then plan again; without --wait such a build exits 2 naming the holder.",
)
@handle_errors
def build(
    project_dir: str | None,
    profiles_dir: str | None,
    target: str | None,
    debug: bool,
    select: tuple[str, ...],
    exclude: tuple[str, ...],
    threads: int | None,
    full: bool,
    accept_schema: bool,
    dry_run: bool,
    as_json: bool,
    verbose: bool,
    skip_non_breaking: bool,
    full_refresh: bool,
    defer: bool,
    state_dir: str | None,
    target_path: str | None,
    dbt_vars: str | None,
    wait: float | None,
) -> None:
    """Materialize the stale selected assets (default: all) in dependency order.

    An asset is stale when it was never materialized, its code (SQL, macros, config, vars,
    target; a Python function's source) changed, an upstream asset was materialized after
    it, its last attempt or a blocking check failed, or its table is missing. `sqlorch
    status` shows why; `--full` rebuilds the selection regardless.
    """
    from sqlorch.app.plans import BuildRequest

    if defer != bool(state_dir):
        raise ConfigError("--defer and --state go together: `--defer --state prod` (or a folder).")
    if wait is not None and wait < 0:
        raise ConfigError(f"--wait {wait:g}: give the seconds to wait, 0 or more (--wait 600).")
    request = BuildRequest(
        select,
        exclude,
        full=full,
        skip_non_breaking=skip_non_breaking,
        full_refresh=full_refresh,
        defer_state=state_dir,
        target_path=target_path,
        vars=dbt_vars,
        accept_schema=accept_schema,
        wait=wait,
    )
    _run(project_dir, profiles_dir, target, threads, request, dry_run, as_json, verbose)


@click.command()
@click.argument("select", nargs=-1, required=True)
@common
@click.option("--exclude", multiple=True, help="Assets to leave out (selection syntax).")
@click.option("--from", "start", help="First date (or key) of the range, inclusive.")
@click.option("--to", "end", help="Last date (or key) of the range, inclusive.")
@click.option("--partition", "keys", multiple=True, help="A partition key to rebuild (repeatable).")
@click.option(
    "--downstream/--no-downstream",
    default=True,
    show_default=True,
    help="Also rebuild the partitions (and assets) downstream that read the range.",
)
@threads_option
@click.option("--dry-run", is_flag=True, help="Print the plan; run nothing.")
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
@click.option("--verbose", "-v", is_flag=True, help=_VERBOSE_HELP)
@handle_errors
def backfill(
    select: tuple[str, ...],
    project_dir: str | None,
    profiles_dir: str | None,
    target: str | None,
    debug: bool,
    exclude: tuple[str, ...],
    start: str | None,
    end: str | None,
    keys: tuple[str, ...],
    downstream: bool,
    threads: int | None,
    dry_run: bool,
    as_json: bool,
    verbose: bool,
) -> None:
    """Rebuild a range of partitions of the selected assets (and downstream).

    SELECT uses the selection syntax (`fct_delays`, `+fct_delays`, `tag:x`); e.g.
    `sqlorch backfill fct_delays --from 2013-03-01 --to 2013-03-31`.
    """
    if not (start or end or keys):
        raise ConfigError(
            "A backfill needs a range: --from DATE and/or --to DATE, or --partition KEY."
        )
    from sqlorch.app.plans import BackfillRequest

    request = BackfillRequest(select, exclude, start, end, keys, downstream)
    _run(project_dir, profiles_dir, target, threads, request, dry_run, as_json, verbose)


@click.command()
@click.argument("run_id", required=False)
@common
@threads_option
@click.option("--dry-run", is_flag=True, help=_DRY_RUN_HELP)
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
@click.option("--verbose", "-v", is_flag=True, help=_VERBOSE_HELP)
@handle_errors
def retry(
    run_id: str | None,
    project_dir: str | None,
    profiles_dir: str | None,
    target: str | None,
    debug: bool,
    threads: int | None,
    dry_run: bool,
    as_json: bool,
    verbose: bool,
) -> None:
    """Re-run only the assets that failed or were skipped in a run (default: the last).

    Per asset, not per dbt invocation: what succeeded in that run is not run again, and an
    asset whose blocking check failed is rebuilt with its checks.
    """
    from sqlorch.app.plans import RetryRequest

    request = RetryRequest(run_id)
    _run(project_dir, profiles_dir, target, threads, request, dry_run, as_json, verbose)


@click.command(name="check")
@common
@selection
@threads_option
@click.option("--verbose", "-v", is_flag=True, help="Show check log lines as they arrive.")
@handle_errors
def check(
    project_dir: str | None,
    profiles_dir: str | None,
    target: str | None,
    debug: bool,
    select: tuple[str, ...],
    exclude: tuple[str, ...],
    threads: int | None,
    verbose: bool,
) -> None:
    """Run the checks of the selected assets on what the warehouse holds now; build nothing.

    dbt tests, @check functions and built-in checks (freshness is the usual reason: a
    scheduled `sqlorch check` notices sources that stopped arriving). Results are recorded
    as a run; exit 1 when a check failed.
    """
    from sqlorch.app.plans import CheckRequest

    request = CheckRequest(select, exclude)
    _run(project_dir, profiles_dir, target, threads, request, False, False, verbose)


def _run(
    project_dir: str | None,
    profiles_dir: str | None,
    target: str | None,
    threads: int | None,
    request: Request,
    dry_run: bool,
    as_json: bool,
    verbose: bool,
) -> None:
    """Build `request` with live progress on the terminal; exit 1 when the run failed."""
    from sqlorch.app.build import build
    from sqlorch.cli.github import ci_listeners
    from sqlorch.cli.render import TerminalRenderer, escape

    settings = load_settings(project_dir, profiles_dir, target, threads)
    out = console()
    renderer = TerminalRenderer(out, verbose=verbose)
    renderer.loading()
    try:
        result = build(
            settings,
            request,
            [renderer, *ci_listeners()],
            warn=warn,
            note=lambda line: err_console().print(f"[dim]{escape(line)}[/]"),
            dry_run=dry_run,
        )
    except KeyboardInterrupt:
        renderer.close(summary=False)
        if not renderer.run_started:
            raise
        # second Ctrl-C: the run is recorded as cancelled; threads still inside an asset or
        # dbt cannot be stopped, so leave without waiting for them (their writes roll back)
        err_console().print("[yellow]Interrupted: run recorded as cancelled.[/]")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    except BaseException:
        renderer.close(summary=False)
        raise
    renderer.close(summary=result.outcome is not None)
    if result.outcome is None:
        _print_without_run(out, request, result, dry_run=dry_run, as_json=as_json)
        return
    for found in result.hidden:
        warn(found.message)
    out.print(f"[dim]run {result.outcome.run_id} — `sqlorch logs {result.outcome.run_id}`[/]")
    if result.failed:
        sys.exit(1)


def _print_without_run(
    out: Console, request: Request, result: BuildResult, *, dry_run: bool, as_json: bool
) -> None:
    """Print the plan (`--dry-run`), or why nothing ran."""
    from sqlorch.app.plans import CheckRequest, RetryRequest
    from sqlorch.cli.render import print_plan

    plan = result.plan
    if dry_run and as_json:
        # a JSON document whatever the plan holds (an empty retry too)
        print_plan(out, plan, as_json=True, execution=result.execution)
    elif isinstance(request, RetryRequest) and not plan.steps:
        assert result.retried is not None
        out.print(
            f"Run {result.retried.run_id} ({result.retried.status}) left nothing failed or "
            "skipped: nothing to retry."
        )
    elif dry_run:
        print_plan(out, plan, as_json=as_json, execution=result.execution)
    elif isinstance(request, CheckRequest):
        out.print("No checks test the selected assets.")
    elif result.selected_materializable:
        out.print(
            f"0 assets stale: nothing to do ({result.selected_materializable} selected assets "
            "are up to date). `sqlorch status` shows each one; `--full` rebuilds anyway."
        )
    else:
        out.print("Nothing to build: the selection holds only observed sources.")
