"""The `sqlorch` command line: thin commands over the core, heavy imports deferred."""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import click

from sqlorch.errors import SqlorchError


def _common(fn: Callable[..., Any]) -> Callable[..., Any]:
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


def _selection(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option(
        "--exclude", multiple=True, help="Assets to leave out (same syntax as --select)."
    )(fn)
    fn = click.option(
        "--select",
        "-s",
        multiple=True,
        help="dbt selection syntax over all assets: name, +name, name+, tag:x, path:, "
        "source:, kind:python, '*'. Space = union, comma = intersection.",
    )(fn)
    return fn


def _handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = kwargs.get("debug", False)
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

            _err().print(f"[red]Error:[/] {escape(exc.message)}", highlight=False)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            _err().print("[yellow]Interrupted.[/]")
            sys.exit(130)

    return wrapper


def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def _err() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def _warn(message: str) -> None:
    from sqlorch.cli.render import escape

    _err().print(f"[yellow]Warning:[/] {escape(message)}", highlight=False)


def _settings(
    project_dir: str | None,
    profiles_dir: str | None,
    target: str | None,
    threads: int | None = None,
) -> Any:
    from sqlorch.settings import load_settings

    return load_settings(
        project_dir=project_dir, profiles_dir=profiles_dir, target=target, threads=threads
    )


def _print_table(
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


def _emit_json(doc: Any) -> None:
    click.echo(json.dumps(doc, indent=2, default=str))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sqlorch")
def cli() -> None:
    """sqlorch: build the tables of a dbt + Python analytics repo as one asset graph."""


@cli.command()
@_common
@_selection
@click.option("--threads", type=click.IntRange(min=1), help="Parallel workers (and dbt threads).")
@click.option("--full", is_flag=True, help="Rebuild every selected asset, stale or not.")
@click.option("--dry-run", is_flag=True, help="Print the plan and why; run nothing.")
@click.option("--json", "as_json", is_flag=True, help="With --dry-run: the plan as JSON.")
@click.option("--verbose", "-v", is_flag=True, help="Show asset log lines as they arrive.")
@click.option(
    "--skip-non-breaking",
    is_flag=True,
    help="Skip downstream assets that column lineage shows a non-breaking change "
    "(columns added, comments) does not affect.",
)
@_handle_errors
def build(
    project_dir: str | None,
    profiles_dir: str | None,
    target: str | None,
    debug: bool,
    select: tuple[str, ...],
    exclude: tuple[str, ...],
    threads: int | None,
    full: bool,
    dry_run: bool,
    as_json: bool,
    verbose: bool,
    skip_non_breaking: bool,
) -> None:
    """Materialize the stale selected assets (default: all) in dependency order.

    An asset is stale when it was never materialized, its code (SQL, macros, config, vars,
    target; a Python function's source) changed, an upstream asset was materialized after
    it, its last attempt or a blocking check failed, or its table is missing. `sqlorch
    status` shows why; `--full` rebuilds the selection regardless.
    """
    from sqlorch.app.build import plan_build
    from sqlorch.load.project import load_project
    from sqlorch.state.store import StateStore

    settings = _settings(project_dir, profiles_dir, target, threads)
    project = load_project(settings)
    store = StateStore(settings.state_path)
    plan = plan_build(project, store, select, exclude, _warn, full=full)
    if skip_non_breaking:
        from sqlorch.cli.render_lineage import skip_non_breaking_downstream

        plan = skip_non_breaking_downstream(project, plan, _warn, _err())
    selection = " ".join([*select, *(f"--exclude {e}" for e in exclude)])
    _run_plan(project, store, plan, "build", selection, threads, dry_run, as_json, verbose)


def _run_plan(
    project: Any,
    store: Any,
    plan: Any,
    command: str,
    selection: str,
    threads: int | None,
    dry_run: bool,
    as_json: bool,
    verbose: bool,
) -> None:
    """Print (`dry_run`) or execute a plan, and exit 1 when the run did not succeed."""
    from sqlorch.cli.render import TerminalRenderer, escape

    if dry_run:
        if as_json:
            _emit_json(
                {
                    "steps": [
                        {
                            "key": s.key,
                            "kind": s.kind.value,
                            "partitions": [list(r) for r in s.partitions] if s.partitions else None,
                            "reasons": list(s.reasons),
                        }
                        for s in plan.steps
                    ],
                    "checks": len(plan.checks),
                }
            )
        else:
            console = _console()
            console.print(f"Plan: {len(plan.steps)} assets, {len(plan.checks)} checks")
            for s in plan.steps:
                reasons = escape("; ".join(s.reasons))
                console.print(f"  {s.kind.value:<8} {escape(s.key):<44} [dim]{reasons}[/]")
                if s.partitions:
                    console.print(
                        f"  {'':<8} [dim]partitions: {escape(_ranges_text(s.partitions))}[/]"
                    )
        return
    if not plan.steps:
        fresh = sum(
            1
            for k in plan.selected
            if k in project.graph.assets and project.graph.assets[k].is_materializable
        )
        if fresh:
            _console().print(
                f"0 assets stale: nothing to do ({fresh} selected assets are up to date). "
                "`sqlorch status` shows each one; `--full` rebuilds anyway."
            )
        else:
            _console().print("Nothing to build: the selection holds only observed sources.")
        return
    from sqlorch.app.build import execute

    console = _console()
    renderer = TerminalRenderer(console, len(plan.steps), verbose=verbose)
    listeners: list[Any] = [renderer, *_ci_listeners()]
    outcome = None
    try:
        outcome = execute(
            project,
            plan,
            store,
            listeners,
            command=command,
            selection=selection,
            threads=threads,
        )
    except KeyboardInterrupt:
        # second Ctrl-C: the run is recorded as cancelled; threads still inside an asset or
        # dbt cannot be stopped, so leave without waiting for them (their writes roll back)
        renderer.close(summary=False)
        _err().print("[yellow]Interrupted: run recorded as cancelled.[/]")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    finally:
        renderer.close(summary=outcome is not None)
    from sqlorch.lineage.service import after_run

    found = after_run(project, project.settings.state_dir / "runs" / outcome.run_id)
    if found:
        from sqlorch.events import utcnow
        from sqlorch.state.store import event_row

        # into the run's log too: `sqlorch logs --level warning` shows them
        store.write_batch(
            [
                event_row(outcome.run_id, utcnow(), "hidden_dependency", key, message, "warning")
                for key, message in found
            ],
            [],
            [],
        )
    for _key, message in found:
        _warn(message)
    console.print(f"[dim]run {outcome.run_id} — `sqlorch logs {outcome.run_id}`[/]")
    if outcome.status != "success":
        sys.exit(1)


@cli.command()
@click.argument("select", nargs=-1, required=True)
@_common
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
@click.option("--threads", type=click.IntRange(min=1), help="Parallel workers (and dbt threads).")
@click.option("--dry-run", is_flag=True, help="Print the plan; run nothing.")
@click.option("--json", "as_json", is_flag=True, help="With --dry-run: the plan as JSON.")
@click.option("--verbose", "-v", is_flag=True, help="Show asset log lines as they arrive.")
@_handle_errors
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
    from sqlorch.app.build import plan_backfill
    from sqlorch.errors import ConfigError
    from sqlorch.load.project import load_project
    from sqlorch.state.store import StateStore

    if not (start or end or keys):
        raise ConfigError(
            "A backfill needs a range: --from DATE and/or --to DATE, or --partition KEY."
        )
    settings = _settings(project_dir, profiles_dir, target, threads)
    project = load_project(settings)
    store = StateStore(settings.state_path)
    plan = plan_backfill(
        project,
        store,
        list(select),
        list(exclude),
        start=start,
        end=end,
        keys=keys,
        downstream=downstream,
        warn=_warn,
    )
    selection = " ".join([*select, *(f"--exclude {e}" for e in exclude)])
    _run_plan(project, store, plan, "backfill", selection, threads, dry_run, as_json, verbose)


@cli.command()
@click.argument("asset")
@_common
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_handle_errors
def partitions(
    asset: str,
    project_dir: str | None,
    profiles_dir: str | None,
    target: str | None,
    debug: bool,
    as_json: bool,
) -> None:
    """Show an asset's partition ledger: done / missing / failed / stale ranges."""
    from sqlorch.app.partitions import partitions_report

    settings = _settings(project_dir, profiles_dir, target)
    doc = partitions_report(settings, asset)
    if as_json:
        _emit_json(doc)
        return
    from sqlorch.cli.render import escape

    console = _console()
    console.print(
        f"{escape(doc['key'])}: {doc['definition']['type']} partitions, "
        f"{doc['counts']['expected']:,} expected"
    )
    for label in ("done", "missing", "failed", "stale"):
        ranges = doc["partitions"].get(label) or []
        n = doc["counts"].get(label, 0)
        console.print(f"  {label:<8} {n:>8,}  " + escape(_ranges_text(ranges)))


def _ranges_text(ranges: Any, limit: int = 8) -> str:
    if not ranges:
        return "-"
    shown = ", ".join(a if a == b else f"{a}..{b}" for a, b in ranges[:limit])
    return shown + (f", ... ({len(ranges)} ranges)" if len(ranges) > limit else "")


@cli.command()
@click.argument("asset")
@_common
@click.option("--from", "start", help="First date (or key), inclusive.")
@click.option("--to", "end", help="Last date (or key), inclusive.")
@click.option("--partition", "keys", multiple=True, help="A partition key to wipe (repeatable).")
@click.option("--delete-data", is_flag=True, help="Also delete the partitions' rows.")
@_handle_errors
def wipe(
    asset: str,
    project_dir: str | None,
    profiles_dir: str | None,
    target: str | None,
    debug: bool,
    start: str | None,
    end: str | None,
    keys: tuple[str, ...],
    delete_data: bool,
) -> None:
    """Mark a range of an asset's partitions for rebuild (the next build runs them)."""
    from sqlorch.app.partitions import wipe_partitions
    from sqlorch.errors import ConfigError

    if not (start or end or keys):
        raise ConfigError("wipe needs --from DATE and/or --to DATE, or --partition KEY.")
    settings = _settings(project_dir, profiles_dir, target)
    n, rows = wipe_partitions(settings, asset, start, end, keys, delete_data)
    tail = f"; deleted {rows:,} rows" if delete_data else ""
    _console().print(f"Wiped {n:,} partitions of {asset}{tail}. `sqlorch build` rebuilds them.")


@cli.command()
@click.argument("run_id", required=False)
@_common
@click.option("--threads", type=click.IntRange(min=1), help="Parallel workers (and dbt threads).")
@click.option("--dry-run", is_flag=True, help="Print the plan and why; run nothing.")
@click.option("--json", "as_json", is_flag=True, help="With --dry-run: the plan as JSON.")
@click.option("--verbose", "-v", is_flag=True, help="Show asset log lines as they arrive.")
@_handle_errors
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
    from sqlorch.app.build import plan_retry
    from sqlorch.load.project import load_project
    from sqlorch.state.store import StateStore

    settings = _settings(project_dir, profiles_dir, target, threads)
    store = StateStore(settings.state_path)
    record = _find_run(store, settings, run_id)
    project = load_project(settings)
    plan = plan_retry(project, store, record.run_id, _warn)
    if not plan.steps:
        _console().print(
            f"Run {record.run_id} ({record.status}) left nothing failed or skipped: "
            "nothing to retry."
        )
        return
    _run_plan(
        project, store, plan, "retry", f"retry {record.run_id}", threads, dry_run, as_json, verbose
    )


def _find_run(store: Any, settings: Any, run_id: str | None) -> Any:
    from sqlorch.errors import ConfigError

    if run_id is None:
        last = store.runs(1)
        if not last:
            raise ConfigError("No runs yet: `sqlorch build` starts one.")
        return last[0]
    found = store.run(run_id)
    if found is None:
        raise ConfigError(
            f"No run {run_id!r} in {settings.state_path}. `sqlorch runs` lists the runs."
        )
    return found


@cli.command(name="check")
@_common
@_selection
@click.option("--threads", type=click.IntRange(min=1), help="Parallel workers (and dbt threads).")
@click.option("--verbose", "-v", is_flag=True, help="Show check log lines as they arrive.")
@_handle_errors
def check_cmd(
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
    from sqlorch.app.build import execute, select_assets
    from sqlorch.cli.render import TerminalRenderer
    from sqlorch.core.plan.definition import Plan
    from sqlorch.load.project import load_project
    from sqlorch.state.store import StateStore

    settings = _settings(project_dir, profiles_dir, target, threads)
    project = load_project(settings)
    store = StateStore(settings.state_path)
    keys = select_assets(project, select, exclude, _warn)
    checks = sorted(
        c.unique_id for c in project.graph.checks.values() if any(k in keys for k in c.asset_keys)
    )
    if not checks:
        _console().print("No checks test the selected assets.")
        return
    plan = Plan(steps=(), checks=tuple(checks), selected=frozenset(keys))
    console = _console()
    renderer = TerminalRenderer(console, 0, verbose=verbose)
    outcome = None
    try:
        outcome = execute(
            project,
            plan,
            store,
            [renderer, *_ci_listeners()],
            command="check",
            selection=" ".join([*select, *(f"--exclude {e}" for e in exclude)]),
            threads=threads,
        )
    finally:
        renderer.close(summary=outcome is not None)
    console.print(f"[dim]run {outcome.run_id} — `sqlorch logs {outcome.run_id}`[/]")
    if outcome.status != "success":
        sys.exit(1)


def _ci_listeners() -> list[Any]:
    """The GitHub Actions reporter when running in GitHub Actions (else nothing)."""
    if os.environ.get("GITHUB_ACTIONS") != "true":
        return []
    from sqlorch.cli.github import GithubReporter

    return [
        GithubReporter(
            lambda line: click.echo(line, err=False), os.environ.get("GITHUB_STEP_SUMMARY")
        )
    ]


@cli.command(name="ls")
@_common
@_selection
@click.option("--json", "as_json", is_flag=True, help="Print JSON (DESIGN.md §10).")
@_handle_errors
def ls_cmd(
    project_dir: str | None,
    profiles_dir: str | None,
    target: str | None,
    debug: bool,
    select: tuple[str, ...],
    exclude: tuple[str, ...],
    as_json: bool,
) -> None:
    """List assets: kind, key, upstream keys, partitions."""
    from sqlorch.app.build import select_assets
    from sqlorch.load.project import load_project

    settings = _settings(project_dir, profiles_dir, target)
    project = load_project(settings)
    keys = select_assets(project, select, exclude, _warn) if (select or exclude) else None
    nodes = [n for n in project.graph if keys is None or n.key in keys]
    if as_json:
        from sqlorch.core.graph import Column
        from sqlorch.core.partitions.mappings import describe_mapping
        from sqlorch.state.store import StateStore

        # columns as materialized (recorded with each materialization), else from dbt yml
        recorded = StateStore(settings.state_path, readonly=True).latest_columns()
        nodes = [
            dataclasses.replace(n, columns=tuple(Column(c, t) for c, t in recorded[n.key]))
            if recorded.get(n.key)
            else n
            for n in nodes
        ]
        _emit_json(
            [
                {
                    "key": n.key,
                    "kind": n.kind.value,
                    "deps": list(n.deps),
                    "partitions": n.partitions.describe() if n.partitions else None,
                    # upstream key -> mapping as declared (absent: the default, `same`)
                    "partition_mappings": {
                        k: describe_mapping(m) for k, m in sorted(n.partition_mappings.items())
                    },
                    "file": n.file,
                    "tags": list(n.tags),
                    "columns": [{"name": c.name, "type": c.type} for c in n.columns],
                    "description": n.description,
                    "materialized": n.materialized,
                }
                for n in nodes
            ]
        )
        return
    _print_table(
        ("kind", "key", "upstream", "partitions"),
        [
            (
                n.kind.value,
                n.key,
                ", ".join(n.deps) or "-",
                json.dumps(n.partitions.describe()) if n.partitions else "-",
            )
            for n in nodes
        ],
    )


@cli.command()
@_common
@_selection
@click.option("--json", "as_json", is_flag=True, help="Print JSON (DESIGN.md §10).")
@_handle_errors
def status(
    project_dir: str | None,
    profiles_dir: str | None,
    target: str | None,
    debug: bool,
    select: tuple[str, ...],
    exclude: tuple[str, ...],
    as_json: bool,
) -> None:
    """Show each asset's last materialization, rows, duration, last run, and why it is stale."""
    from sqlorch.app.build import observe_warehouse, select_assets, state_sets, state_snapshot
    from sqlorch.core.plan.staleness import stale_reasons
    from sqlorch.load.project import load_project
    from sqlorch.state.store import StateStore

    settings = _settings(project_dir, profiles_dir, target)
    project = load_project(settings)
    store = StateStore(settings.state_path, readonly=True)
    snapshot = state_snapshot(store, observe_warehouse(project), project.graph)
    sets = state_sets(project.graph, store, snapshot) if (select or exclude) else None
    keys = (
        select_assets(project, select, exclude, _warn, state=sets) if (select or exclude) else None
    )
    stale = stale_reasons(project.graph, snapshot)
    states = store.asset_states()
    docs: dict[str, Any] = {}
    if any(n.partitions is not None for n in project.graph):
        from sqlorch.app.build import plan_partitions
        from sqlorch.app.partitions import partition_docs
        from sqlorch.core.plan.builder import with_partitions

        now = datetime.now(UTC)
        planned = plan_partitions(
            project, store, list(project.graph.assets), now, snapshot=snapshot
        )
        stale = with_partitions(project.graph, list(project.graph.assets), stale, planned)
        docs = partition_docs(project.graph, store, now)
    rows: list[dict[str, Any]] = []
    for n in project.graph:
        if keys is not None and n.key not in keys:
            continue
        st = states.get(n.key)
        reasons = stale.get(n.key, [])
        rows.append(
            {
                "key": n.key,
                "kind": n.kind.value,
                "stale": bool(reasons),
                "reasons": reasons,
                "last_materialized_at": st.last_materialized_at if st else None,
                "rows": st.rows if st else None,
                "duration_s": st.duration_s if st else None,
                "last_run_id": st.last_run_id if st else None,
                "last_outcome": st.last_status if st else None,
                "code_version": n.code_version,
                "partitions": docs.get(n.key),
            }
        )
    if as_json:
        _emit_json(rows)
        return
    from sqlorch.cli.render import fmt_seconds

    colors = {"success": "green", "failed": "red", "skipped": "yellow"}
    _print_table(
        ("kind", "key", "last materialized", "rows", "duration", "last run", "outcome", "stale"),
        [
            (
                r["kind"],
                r["key"],
                (r["last_materialized_at"] or "-")[:19].replace("T", " "),
                f"{r['rows']:,}" if isinstance(r["rows"], int) else "-",
                fmt_seconds(r["duration_s"]) or "-",
                r["last_run_id"] or "-",
                r["last_outcome"] or "-",
                "; ".join(r["reasons"]) or "no",
            )
            for r in rows
        ],
        right={"rows", "duration"},
        color=lambda col, value: colors.get(value) if col == "outcome" else None,
    )


@cli.command()
@_common
@click.option("--json", "as_json", is_flag=True, help="Print JSON (DESIGN.md §10).")
@click.option("--limit", "-n", type=int, default=50, show_default=True, help="Newest N runs.")
@_handle_errors
def runs(
    project_dir: str | None,
    profiles_dir: str | None,
    target: str | None,
    debug: bool,
    as_json: bool,
    limit: int,
) -> None:
    """List runs: id, started, finished, status, counts."""
    from sqlorch.state.store import StateStore

    settings = _settings(project_dir, profiles_dir, target)
    records = StateStore(settings.state_path, readonly=True).runs(limit)
    docs: list[dict[str, Any]] = [
        {
            "run_id": r.run_id,
            "command": r.command,
            "selection": r.selection,
            "started_at": r.started_at,
            "finished_at": r.finished_at,
            "status": r.status,
            "assets": {"succeeded": r.succeeded, "failed": r.failed, "skipped": r.skipped},
        }
        for r in records
    ]
    if as_json:
        _emit_json(docs)
        return
    if not docs:
        _console().print("No runs yet. `sqlorch build` starts one.")
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for col in ("run", "started", "finished", "status", "ok", "failed", "skipped", "selection"):
        table.add_column(col)
    for d in docs:
        color = {"success": "green", "failed": "red", "running": "cyan"}.get(d["status"], "yellow")
        table.add_row(
            d["run_id"],
            d["started_at"][:19].replace("T", " "),
            (d["finished_at"] or "-")[:19].replace("T", " "),
            f"[{color}]{d['status']}[/]",
            str(d["assets"]["succeeded"]),
            str(d["assets"]["failed"]),
            str(d["assets"]["skipped"]),
            d["selection"] or "*",
        )
    _console().print(table)


_LEVELS = {"debug": 0, "info": 1, "warning": 2, "error": 3}


@cli.command()
@click.argument("run_id", required=False)
@_common
@click.option("--json", "as_json", is_flag=True, help="One JSON document per line (jq-ready).")
@click.option("--asset", "assets", multiple=True, help="Only events of this asset (key or name).")
@click.option(
    "--level",
    type=click.Choice(list(_LEVELS), case_sensitive=False),
    default="debug",
    show_default=True,
    help="Only events at or above this level.",
)
@_handle_errors
def logs(
    run_id: str | None,
    project_dir: str | None,
    profiles_dir: str | None,
    target: str | None,
    debug: bool,
    as_json: bool,
    assets: tuple[str, ...],
    level: str,
) -> None:
    """Print a run's structured event log (default: the last run), filtered."""
    from sqlorch.cli.render import escape
    from sqlorch.state.store import StateStore

    settings = _settings(project_dir, profiles_dir, target)
    store = StateStore(settings.state_path, readonly=True)
    record = _find_run(store, settings, run_id)
    console = None if as_json else _console()
    wanted = {a.lower() for a in assets}
    floor = _LEVELS[level.lower()]
    for ev in store.events(record.run_id):
        if wanted and not (
            ev.asset is not None and (ev.asset in wanted or ev.asset.rsplit(".", 1)[-1] in wanted)
        ):
            continue
        if _LEVELS.get(ev.level, 1) < floor:
            continue
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "ts": ev.ts,
                        "run_id": ev.run_id,
                        "kind": ev.kind,
                        "asset": ev.asset,
                        "level": ev.level,
                        "message": ev.message,
                        "data": ev.data,
                    },
                    default=str,
                )
            )
            continue
        assert console is not None
        color = {"error": "red", "warning": "yellow", "debug": "dim"}.get(ev.level, "")
        detail = ev.message
        if ev.kind == "asset_materialized":
            from sqlorch.cli.render import fmt_rows, fmt_seconds

            detail = f"{fmt_rows(ev.data.get('rows'))} {fmt_seconds(ev.data.get('duration_s'))}"
            if ev.data.get("metadata"):
                detail += " " + json.dumps(ev.data["metadata"], default=str)
        elif ev.kind in ("run_finished", "dbt_invocation_started", "dbt_invocation_finished"):
            detail = " ".join(
                f"{k}={v}" for k, v in ev.data.items() if k not in ("args",) and v is not None
            )
        line = f"{ev.ts[11:23]} {ev.kind:<24} {ev.asset or '':<40} {detail}"
        console.print(
            f"[{color}]{escape(line)}[/]" if color else line, highlight=False, markup=bool(color)
        )
        if debug and ev.data.get("traceback"):
            console.print(ev.data["traceback"], markup=False)


@cli.command()
@click.argument("target_ref", metavar="KEY[.COLUMN]")
@_common
@click.option(
    "--upstream",
    "direction",
    flag_value="upstream",
    default=True,
    help="Trace the columns it is derived from (default).",
)
@click.option(
    "--downstream", "direction", flag_value="downstream", help="Trace the columns derived from it."
)
@click.option("--depth", type=click.IntRange(min=1), help="Stop after N hops.")
@click.option(
    "--keys",
    "with_keys",
    is_flag=True,
    help="Also follow the columns queries filter, join or group on.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (DESIGN.md §10).")
@_handle_errors
def lineage(
    target_ref: str,
    project_dir: str | None,
    profiles_dir: str | None,
    target: str | None,
    debug: bool,
    direction: str,
    depth: int | None,
    with_keys: bool,
    as_json: bool,
) -> None:
    """Column lineage: KEY.COLUMN as a tree, or every column of KEY with its direct upstream."""
    from sqlorch.cli.render_lineage import lineage_command

    lineage_command(
        _settings(project_dir, profiles_dir, target),
        target_ref,
        direction=direction,
        depth=depth,
        with_keys=with_keys,
        as_json=as_json,
        console=None if as_json else _console(),
        emit_json=_emit_json,
        warn=_warn,
    )


@cli.command()
@_common
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_handle_errors
def diff(
    project_dir: str | None,
    profiles_dir: str | None,
    target: str | None,
    debug: bool,
    as_json: bool,
) -> None:
    """Changed models since their last materialization, and the downstream columns affected."""
    from sqlorch.app.lineage import compute_impact, impact_document
    from sqlorch.cli.render_lineage import render_impact
    from sqlorch.load.project import load_project

    project = load_project(_settings(project_dir, profiles_dir, target))
    impact, _index = compute_impact(project, _warn)
    doc = impact_document(impact)
    if as_json:
        _emit_json(doc)
    else:
        render_impact(_console(), doc)


@cli.command()
@_common
@click.option("--print", "to_stdout", is_flag=True, help="Print the macros instead of writing.")
@_handle_errors
def macros(
    project_dir: str | None,
    profiles_dir: str | None,
    target: str | None,
    debug: bool,
    to_stdout: bool,
) -> None:
    """Write sqlorch's dbt macros (sqlorch_window: a partition's filter) into the project."""
    from sqlorch.dbt.package import install_macros, macros_text

    if to_stdout:
        click.echo(macros_text(), nl=False)
        return
    settings = _settings(project_dir, profiles_dir, target)
    path, changed = install_macros(settings.project_dir)
    state = "written" if changed else "already up to date"
    _console().print(
        f"{path}: {state}. Use {{{{ sqlorch_window('your_time_column') }}}} in a model."
    )


@cli.command()
@click.argument("asset")
@_common
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("--limit", "-n", type=click.IntRange(min=1), default=30, show_default=True)
@_handle_errors
def history(
    asset: str,
    project_dir: str | None,
    profiles_dir: str | None,
    target: str | None,
    debug: bool,
    as_json: bool,
    limit: int,
) -> None:
    """Show an asset's materializations over time: rows, duration, checks, failures."""
    from sqlorch.app.history import asset_history, resolve_asset, sparkline
    from sqlorch.cli.render import escape, fmt_rows, fmt_seconds
    from sqlorch.state.store import StateStore

    settings = _settings(project_dir, profiles_dir, target)
    store = StateStore(settings.state_path, readonly=True)
    key = resolve_asset(store, asset)
    doc = asset_history(store, key, limit)
    if as_json:
        _emit_json(doc)
        return
    console = _console()
    mats = doc["materializations"]
    console.print(f"[bold]{escape(key)}[/]: {len(mats)} materializations (newest last)")
    if mats:
        chrono = list(reversed(mats))
        # a partitioned asset records each partition run and the whole table: plot the table
        whole = [m for m in chrono if m["partition"] is None] or chrono
        for label, field, fmt in (
            ("rows", "rows", fmt_rows),
            ("duration", "duration_s", fmt_seconds),
        ):
            values = [m[field] for m in whole]
            known = [v for v in values if v is not None]
            if not known:
                continue
            console.print(
                f"{label:<9} {sparkline(values)}  {fmt(values[-1]) or '-'} "
                f"[dim](min {fmt(min(known))}, max {fmt(max(known))})[/]",
                highlight=False,
            )
        from rich.table import Table

        partitioned = any(m["partition"] for m in chrono)
        table = Table(box=None, pad_edge=False)
        for col in ("materialized", "run", "partition", "rows", "duration", "checks"):
            if col != "partition" or partitioned:
                table.add_column(
                    col, no_wrap=col != "checks", justify="right" if col == "rows" else "left"
                )
        for m in chrono:
            counts: dict[str, int] = {}
            for c in m["checks"]:
                counts[c["status"]] = counts.get(c["status"], 0) + 1
            colors = {"pass": "green", "warn": "yellow", "fail": "red", "error": "red"}
            text = ", ".join(
                f"[{colors.get(st, 'dim')}]{n} {st}[/]" for st, n in sorted(counts.items())
            )
            cells = [
                m["materialized_at"][:16].replace("T", " "),
                m["run_id"],
                *([m["partition"] or "-"] if partitioned else []),
                f"{m['rows']:,}" if isinstance(m["rows"], int) else "-",
                fmt_seconds(m["duration_s"]) or "-",
                text or "-",
            ]
            table.add_row(*cells)
        console.print(table)
    failing = [c for c in doc["checks"] if c["status"] in ("fail", "error", "warn")]
    for c in failing[:10]:
        color = "yellow" if c["status"] == "warn" else "red"
        console.print(
            f"[{color}]{c['status'].upper():<5}[/] {c['checked_at'][:16].replace('T', ' ')} "
            f"{escape(c['message'] or c['check'])}",
            highlight=False,
        )
    for f in doc["failures"][:10]:
        console.print(
            f"[red]{f['status'].upper():<7}[/] {(f['at'] or '')[:16].replace('T', ' ')} "
            f"run {f['run_id']}: {escape(f['error'] or '')}",
            highlight=False,
        )


def main() -> None:
    """Entry point of the `sqlorch` console script."""
    cli(prog_name="sqlorch")


if __name__ == "__main__":
    main()
