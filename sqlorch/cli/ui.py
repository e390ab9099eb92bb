"""`sqlorch ui`: the local web app (the `ui` extra)."""

from __future__ import annotations

import click

from sqlorch.cli.options import common, console, handle_errors, load_settings, warn
from sqlorch.errors import ConfigError

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


@click.command()
@common
@click.option("--port", type=click.IntRange(0, 65535), default=3000, show_default=True)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; anything but loopback lets other machines in (a warning).",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the UI in a browser.")
@click.option(
    "--warm/--no-warm",
    default=True,
    show_default=True,
    help="Keep dbt parsed here and compile each edited model ahead of the next build "
    "(not when another process, e.g. `sqlorch dev`, already does).",
)
@handle_errors
def ui(
    project_dir: str | None,
    profiles_dir: str | None,
    target: str | None,
    debug: bool,
    port: int,
    host: str,
    open_browser: bool,
    warm: bool,
) -> None:
    """Start the local web UI: graph, assets, partitions, runs and logs, launches.

    The process stays warm (`--warm`): dbt imported and parsed once, it parses and compiles
    each edited model as the file changes, so the next `sqlorch build` imports no dbt.
    """
    settings = load_settings(project_dir, profiles_dir, target)
    try:
        from sqlorch.web.server import serve
    except ImportError as exc:
        raise ConfigError(
            f"The web UI needs the `ui` extra ({exc.name} is not installed): "
            "pip install 'sqlorch[ui]'."
        ) from exc
    if host not in _LOOPBACK:
        warn(
            f"Listening on {host}: other machines can reach the UI, which shows the project's "
            "state and launches builds. Use the default 127.0.0.1 unless you mean it."
        )
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/"
    console().print(f"sqlorch ui: {url}  (project {settings.project_dir}; Ctrl-C stops it)")
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    from sqlorch.app.precompiler import start_warm

    warm_thread = start_warm(settings, _echo) if warm else None
    if warm_thread is not None:
        import signal

        # uvicorn re-raises the SIGTERM it stopped on: leave through `finally`, so the warm
        # compiler withdraws (builds stop waiting for this process)
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        serve(settings, host, port)
    finally:
        if warm_thread is not None:
            warm_thread.stop()


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _echo(line: str) -> None:
    from datetime import UTC, datetime

    click.echo(f"{datetime.now(UTC):%H:%M:%S} {line}", err=True)
