"""Helpers of the web UI tests: the app over a built project, through Starlette's TestClient."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import clean_environ


@contextlib.contextmanager
def web_client(project: Path) -> Iterator[object]:
    """A TestClient of the UI over `project` (run from its folder, as `sqlorch ui` would)."""
    from starlette.testclient import TestClient

    from sqlorch.settings import load_settings
    from sqlorch.web.server import create_app

    with contextlib.chdir(project):
        app = create_app(load_settings(project_dir=project))
        with TestClient(app, base_url="http://127.0.0.1:3000") as client:
            yield client


def csrf_token(html: str) -> str:
    """The CSRF token a page's forms carry."""
    marker = 'name="csrf" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]


def this_tree_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the `sqlorch` processes the UI launches run this tree (not another install)."""
    root = str(Path(__file__).resolve().parents[2])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_ui(project: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    """Start `sqlorch ui` on a free port; return the process and the URL it printed."""
    root = str(Path(__file__).resolve().parents[2])
    process = subprocess.Popen(
        [sys.executable, "-m", "sqlorch.cli", "ui", "--port", str(free_port()), *args],
        cwd=project,
        env=clean_environ({"PYTHONPATH": root}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("sqlorch ui: http://"), line + (
        process.stderr.read() if process.stderr else ""
    )
    return process, line.split()[2]


def get(url: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return str(response.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
