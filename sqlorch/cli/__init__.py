"""The `sqlorch` command line: a group whose commands load when they run.

One module per command family (`build`, `assets`, `history`, `lineage`, `macros`, `ui`); each
command parses its flags, calls one `sqlorch.app` function and renders what it returns.
`sqlorch --help` lists the commands from the table below without importing any of them.
"""

from __future__ import annotations

import atexit
import importlib
import os
import sys
import threading
from typing import NoReturn

import click

#: command -> (module under sqlorch.cli, attribute, the first paragraph of its help)
#: (tests/cli/test_lazy_group.py checks the summaries against the commands)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "automation": (
        "automation",
        "automation",
        "Declarative asset automation (eager, on_cron, ...): ls, preview, pause, ...",
    ),
    "backfill": (
        "build",
        "backfill",
        "Rebuild a range of partitions of the selected assets (and downstream).",
    ),
    "build": (
        "build",
        "build",
        "Materialize the stale selected assets (default: all) in dependency order.",
    ),
    "check": (
        "build",
        "check",
        "Run the checks of the selected assets on what the warehouse holds now; build nothing.",
    ),
    "daemon": (
        "automation",
        "daemon",
        "Run schedules, sensors and declarative automation until stopped (SIGTERM: exit 0).",
    ),
    "dev": (
        "automation",
        "dev",
        "Start the web UI and the automation daemon together; Ctrl-C or SIGTERM stops both.",
    ),
    "diff": (
        "lineage",
        "diff",
        "Changed models since their last materialization, and the downstream columns affected.",
    ),
    "env": (
        "env",
        "env",
        "Environments (SQLORCH_ENV=NAME builds into NAME__<schema>): `drop NAME` removes one.",
    ),
    "history": (
        "history",
        "history",
        "Show an asset's materializations over time: rows, duration, checks, failures.",
    ),
    "init": (
        "init",
        "init",
        "Set the repo up for sqlorch: `init github` writes the GitHub Actions workflows.",
    ),
    "lineage": (
        "lineage",
        "lineage",
        "Column lineage: KEY.COLUMN as a tree, or every column of KEY with its direct upstream.",
    ),
    "logs": (
        "history",
        "logs",
        "Print a run's structured event log (default: the last run), filtered.",
    ),
    "ls": ("assets", "ls", "List assets: kind, key, upstream keys, partitions."),
    "macros": (
        "macros",
        "macros",
        "Write sqlorch's dbt macros (sqlorch_window: a partition's filter) into the project.",
    ),
    "partitions": (
        "assets",
        "partitions",
        "Show an asset's partition ledger: done / missing / failed / stale ranges.",
    ),
    "retry": (
        "build",
        "retry",
        "Re-run only the assets that failed or were skipped in a run (default: the last).",
    ),
    "runs": ("history", "runs", "List runs: id, started, finished, status, counts."),
    "schedules": (
        "automation",
        "schedules",
        "Cron schedules: ls, preview, pause, resume, ticks.",
    ),
    "sensors": (
        "automation",
        "sensors",
        "Folder and @sensor sensors: ls, preview, pause, resume, ticks.",
    ),
    "state": (
        "state",
        "state",
        "Upgrade or move the state store (`migrate`, `copy --from sqlite --to postgresql://...`).",
    ),
    "status": (
        "assets",
        "status",
        "Show each asset's last materialization, rows, duration, last run, and why it is stale.",
    ),
    "tick": (
        "automation",
        "tick",
        "Evaluate all automation once, launch what is due, wait for it, and exit.",
    ),
    "ui": (
        "ui",
        "ui",
        "Start the local web UI: graph, assets, partitions, runs and logs, launches.",
    ),
    "verify": (
        "verify",
        "verify",
        "Build the selected dbt nodes with dbt and natively into two copies; compare them.",
    ),
    "wipe": (
        "assets",
        "wipe",
        "Mark a range of an asset's partitions for rebuild (the next build runs them).",
    ),
}


class LazyGroup(click.Group):
    """A group that imports a command's module only when that command is looked up."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Return every command name, sorted."""
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """Import and return the command `cmd_name` (None: no such command)."""
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module, attribute, _summary = entry
        command = getattr(importlib.import_module(f"sqlorch.cli.{module}"), attribute)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List the commands with their short help, importing none of them."""
        stubs = [click.Command(name, help=summary) for name, (_, _, summary) in COMMANDS.items()]
        stubs.sort(key=lambda c: c.name or "")
        limit = formatter.width - 6 - max(len(name) for name in COMMANDS)
        with formatter.section("Commands"):
            formatter.write_dl([(c.name or "", c.get_short_help_str(limit)) for c in stubs])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sqlorch")
def cli() -> None:
    """sqlorch: build the tables of a dbt + Python analytics repo as one asset graph."""


def main() -> None:
    """Entry point of the `sqlorch` console script."""
    try:
        cli(prog_name="sqlorch")
    except SystemExit as exc:
        leave(exc)


def leave(exc: SystemExit) -> NoReturn:
    """Exit as `exc` says; once dbt was imported, without tearing the interpreter down.

    Freeing dbt's thousands of modules and objects one by one at exit costs ~0.4 s of CPU,
    more than a one-model build adds to dbt's parse. The atexit handlers still run (logging
    flushed and closed, multiprocessing's semaphores released); sqlorch closes its state
    store and warehouse itself. With another non-daemon thread alive, Python exits as usual.
    """
    others = [
        t
        for t in threading.enumerate()
        if t is not threading.main_thread() and not t.daemon and t.is_alive()
    ]
    if "dbt" not in sys.modules or others:
        raise exc
    code = exc.code
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:
        print(code, file=sys.stderr)
        status = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said
            pass
    os._exit(status)


if __name__ == "__main__":
    main()
