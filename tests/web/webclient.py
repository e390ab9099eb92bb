"""Helpers of the web UI tests: the app over a built project, through Starlette's TestClient."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest


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
