"""`sqlorch ui` as a user starts it: prints its URL, serves the pages, warns off loopback."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import BuiltExample, clean_environ

pytestmark = pytest.mark.dbt


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


def test_sqlorch_ui_prints_its_url_and_serves_the_graph(built_example: BuiltExample) -> None:
    process, url = start_ui(built_example.path)
    try:
        assert url.startswith("http://127.0.0.1:")
        assert "marts.fct_delays" in get(url)
        assert '"key": "raw.flights"' in get(url + "api/graph").replace('":"', '": "')
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_another_host_needs_saying_so_and_warns(built_example: BuiltExample) -> None:
    process, url = start_ui(built_example.path, "--host", "0.0.0.0")
    try:
        assert url.startswith("http://0.0.0.0:")
        get(url.replace("0.0.0.0", "127.0.0.1"))
    finally:
        process.terminate()
        _out, err = process.communicate(timeout=30)
    assert "Listening on 0.0.0.0: other machines can reach the UI" in " ".join(err.split())
