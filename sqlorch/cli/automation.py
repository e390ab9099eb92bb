"""`sqlorch daemon`, `sqlorch tick` and `sqlorch schedules|sensors|automation ...`."""

from __future__ import annotations

import sys
from typing import Any

import click

from sqlorch.cli.options import (
    common,
    emit_json,
    err_console,
    handle_errors,
    load_settings,
    print_table,
)


def _echo(line: str) -> None:
    from datetime import UTC, datetime

    click.echo(f"{datetime.now(UTC):%H:%M:%S} {line}", err=True)


@click.command()
@common
@handle_errors
def daemon(
    project_dir: str | None, profiles_dir: str | None, target: str | None, debug: bool
) -> None:
    """Run schedules, sensors and declarative automation until stopped (SIGTERM: exit 0).

    One daemon per state store: a second one says who holds it and exits 2. Runs are
    launched as their own processes, at most `[tool.sqlorch.daemon] max_concurrent_runs` at
    once (default 1). SIGTERM or Ctrl-C stops launching and lets running builds finish.
    """
    from sqlorch.automation.daemon import Daemon

    settings = load_settings(project_dir, profiles_dir, target)
    sys.exit(Daemon(settings, _echo).run())


@click.command()
@common
@click.option("--port", type=click.IntRange(0, 65535), default=3000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="The UI's address.")
@click.option(
    "--warm/--no-warm",
    default=True,
    show_default=True,
    help="Keep dbt parsed here and compile each edited model ahead of the next build.",
)
@handle_errors
def dev(
    project_dir: str | None,
    profiles_dir: str | None,
    target: str | None,
    debug: bool,
    port: int,
    host: str,
    warm: bool,
) -> None:
    """Start the web UI and the automation daemon together; Ctrl-C or SIGTERM stops both.

    Two processes (`sqlorch ui` and `sqlorch daemon`): the UI never blocks a build and the
    daemon's builds never wait for the UI. The UI's Automation page shows the ticks. This
    process stays warm (`--warm`): dbt imported and parsed once, it parses and compiles each
    edited model as the file changes, so the next `sqlorch build` imports no dbt.
    """
    import signal
    import subprocess
    import time

    settings = load_settings(project_dir, profiles_dir, target)
    base = [sys.executable, "-m", "sqlorch.cli"]
    shared = ["--project-dir", str(settings.project_dir)]
    if profiles_dir:
        shared += ["--profiles-dir", profiles_dir]
    if target:
        shared += ["--target", target]
    from sqlorch.app.precompiler import start_warm

    # announced before the UI and the daemon start loading: they wait for its parse
    warm_thread = start_warm(settings, _echo) if warm else None
    ui = subprocess.Popen([*base, "ui", *shared, "--port", str(port), "--host", host, "--no-warm"])
    daemon_proc = subprocess.Popen([*base, "daemon", *shared])
    children = (ui, daemon_proc)
    stop = {"signal": 0}

    def forward(signum: int, frame: object) -> None:
        stop["signal"] = signum

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while not stop["signal"] and all(c.poll() is None for c in children):
        time.sleep(0.2)
    if warm_thread is not None:
        warm_thread.stop()
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    codes = [c.wait() for c in children]
    failed = [c for c in codes if c not in (0, -signal.SIGTERM)]
    sys.exit(0 if stop["signal"] or not failed else failed[0])


@click.command()
@common
@click.option("--json", "as_json", is_flag=True, help="Print the decisions and runs as JSON.")
@handle_errors
def tick(
    project_dir: str | None,
    profiles_dir: str | None,
    target: str | None,
    debug: bool,
    as_json: bool,
) -> None:
    """Evaluate all automation once, launch what is due, wait for it, and exit.

    For cron or a CI `schedule:` with no server: run keys and catch-up make a late or
    repeated tick harmless (two ticks in a row never duplicate a run). Exit 1 when a run
    failed, 2 when a daemon holds the state store.
    """
    from sqlorch.automation.daemon import run_tick

    settings = load_settings(project_dir, profiles_dir, target)
    report = run_tick(settings, echo=None if as_json else _echo)
    decisions = [
        {
            "source": d.source,
            "status": str(d.status),
            "assets": list(d.assets),
            "reasons": list(d.reasons),
            "run_key": d.run_key,
            "error": d.error,
        }
        for d in report.evaluation.decisions
    ]
    runs = [
        {
            "request_id": r.request_id,
            "status": str(r.status),
            "run_id": r.run_id,
            "error": r.error,
            "reasons": list(r.reasons),
        }
        for r in report.requests
    ]
    if as_json:
        emit_json({"decisions": decisions, "runs": runs})
    else:
        for d in decisions:
            click.echo(f"{d['status']:<9}  {d['source']}  {_why(d)}")
        if not decisions:
            click.echo("Nothing due.")
        for r in runs:
            what = f"run {r['run_id']}" if r["run_id"] else "no run (nothing was stale)"
            click.echo(f"{r['status']:<9}  {r['request_id']}  {what}  {r['error'] or ''}".rstrip())
    if report.failed:
        sys.exit(1)


def _family(kind_name: str, summary: str) -> click.Group:
    """Build the `ls / preview / pause / resume / ticks` group of one kind of source."""

    @click.group(name=kind_name, help=summary)
    def group() -> None:
        pass

    group.add_command(_ls_command(kind_name))
    group.add_command(_preview_command(kind_name))
    group.add_command(_ticks_command(kind_name))
    for paused, verb in ((True, "pause"), (False, "resume")):
        group.add_command(_pause_command(kind_name, verb, paused))
    return group


def _ls_command(kind_name: str) -> click.Command:
    @click.command(name="ls")
    @common
    @click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
    @handle_errors
    def ls(
        project_dir: str | None,
        profiles_dir: str | None,
        target: str | None,
        debug: bool,
        as_json: bool,
    ) -> None:
        """List what is declared, when it fires next, and its last decision and why."""
        from sqlorch.automation.definitions import SourceKind
        from sqlorch.automation.listing import source_documents

        kind = SourceKind(_kind(kind_name))
        docs = source_documents(load_settings(project_dir, profiles_dir, target), kind)
        if as_json:
            emit_json(docs)
            return
        if not docs:
            click.echo(f"No {kind_name} declared.")
            return
        rows = [_ls_row(kind_name, d) for d in docs]
        print_table(("name", "what", "next", "paused", "last decision"), rows)

    return ls


def _preview_command(kind_name: str) -> click.Command:
    @click.command(name="preview")
    @common
    @click.option("--json", "as_json", is_flag=True, help="Print the decisions as JSON.")
    @handle_errors
    def preview(
        project_dir: str | None,
        profiles_dir: str | None,
        target: str | None,
        debug: bool,
        as_json: bool,
    ) -> None:
        """Evaluate now without recording or launching anything: what would run, and why."""
        from sqlorch.automation.listing import preview as evaluate_preview

        doc = evaluate_preview(load_settings(project_dir, profiles_dir, target))
        prefix = _kind(kind_name) + ":"
        doc["decisions"] = [d for d in doc["decisions"] if d["source"].startswith(prefix)]
        if as_json:
            emit_json(doc)
            return
        for d in doc["decisions"]:
            text = "; ".join(d["reasons"]) or d["error"] or ""
            click.echo(f"{d['status']:<9}  {d['source']}  {text}")
        run = doc["run"]
        if run:
            keys = sorted({*run["select"], *run["full"]})
            click.echo(f"would run ONE run over: {', '.join(keys)}")
        else:
            click.echo("Nothing would run now.")

    return preview


def _ticks_command(kind_name: str) -> click.Command:
    @click.command(name="ticks")
    @click.argument("name", required=False)
    @common
    @click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
    @click.option("-n", "limit", type=int, default=20, show_default=True, help="How many.")
    @handle_errors
    def ticks(
        name: str | None,
        project_dir: str | None,
        profiles_dir: str | None,
        target: str | None,
        debug: bool,
        as_json: bool,
        limit: int,
    ) -> None:
        """Show the newest decisions (of NAME, or all): requested what and why, skipped why."""
        from sqlorch.automation.definitions import SourceKind
        from sqlorch.automation.listing import tick_documents

        settings = load_settings(project_dir, profiles_dir, target)
        docs = tick_documents(settings, SourceKind(_kind(kind_name)), name, limit)
        if as_json:
            emit_json(docs)
            return
        if not docs:
            click.echo("No ticks recorded yet.")
            return
        rows: list[tuple[str, ...]] = [
            (
                str(d["at"]),
                str(d["source"]).split(":", 1)[1],
                str(d["status"]),
                str(d["run_id"] or ""),
                _why(d),
            )
            for d in docs
        ]
        print_table(("at", "name", "status", "run", "why"), rows)

    return ticks


def _pause_command(kind_name: str, verb: str, paused: bool) -> click.Command:
    @click.command(name=verb)
    @click.argument("name")
    @common
    @handle_errors
    def command(
        name: str,
        project_dir: str | None,
        profiles_dir: str | None,
        target: str | None,
        debug: bool,
    ) -> None:
        from sqlorch.automation.definitions import SourceKind
        from sqlorch.automation.listing import set_paused

        settings = load_settings(project_dir, profiles_dir, target)
        source = set_paused(settings, SourceKind(_kind(kind_name)), name, paused)
        err_console().print(f"{source} {'paused' if paused else 'resumed'}.")

    command.help = f"{verb.capitalize()} one {_kind(kind_name)} by name" + (
        " (a resumed schedule starts from now: no flood of missed ticks)." if not paused else "."
    )
    return command


def _why(d: dict[str, Any]) -> str:
    return "; ".join(d["reasons"]) or d["error"] or ""


def _kind(kind_name: str) -> str:
    return {"schedules": "schedule", "sensors": "sensor", "automation": "asset"}[kind_name]


def _ls_row(kind_name: str, d: dict[str, Any]) -> tuple[str, ...]:
    last = d.get("last_tick")
    decision = ""
    if last:
        decision = f"{last['at']} {last['status']}: " + (
            "; ".join(last["reasons"]) or last["error"] or ""
        )
    if kind_name == "schedules":
        what = f"{d['cron']} ({d['timezone']}) -s {' '.join(d['select'])}"
        return (d["name"], what, d["next_tick"], "yes" if d["paused"] else "", decision)
    if kind_name == "sensors":
        what = d.get("path") or d.get("file") or ""
        return (
            d["name"],
            f"{d['type']} {what}",
            f"every {d['interval_s']:g}s",
            "yes" if d["paused"] else "",
            decision,
        )
    return (
        d["key"],
        d["conditions"],
        d.get("next_tick", ""),
        "yes" if d["paused"] else "",
        decision,
    )


schedules = _family("schedules", "Cron schedules: ls, preview, pause, resume, ticks.")
sensors = _family("sensors", "Folder and @sensor sensors: ls, preview, pause, resume, ticks.")
automation = _family(
    "automation", "Declarative asset automation (eager, on_cron, ...): ls, preview, pause, ..."
)
