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
@handle_errors
def ui(
    project_dir: str | None,
    profiles_dir: str | None,
    target: str | None,
    debug: bool,
    port: int,
    host: str,
    open_browser: bool,
) -> None:
    """Start the local web UI: graph, assets, partitions, runs and logs, launches."""
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
    serve(settings, host, port)
