"""`sqlorch ui` as a user starts it: prints its URL, serves the pages, warns off loopback."""

from __future__ import annotations

import pytest
from conftest import BuiltExample
from webclient import get, start_ui

pytestmark = pytest.mark.dbt


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
