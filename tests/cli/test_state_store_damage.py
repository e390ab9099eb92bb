"""A damaged or emptied state store is said in one paragraph (issue 18, item 10).

Damaged pages: no traceback without --debug, and the message says what to do. A 0-byte
store (a truncated copy, a full disk) is refused, never silently started anew: the
history would be gone and everything rebuilt without a word.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import pytest
from conftest import TRACEBACK, TinyProject, assert_clean_error, run_cli_subprocess, scalar

pytestmark = pytest.mark.dbt

Make = Callable[..., TinyProject]

FILES = {"models/m.sql": "{{ config(materialized='table') }}\nselect 1 as x\n"}


def _built(make_dbt_project: Make) -> TinyProject:
    project = make_dbt_project(FILES)
    result = run_cli_subprocess(project.path, "build")
    assert result.exit_code == 0, result.describe()
    return project


def test_damaged_pages_give_one_paragraph_and_what_to_do(make_dbt_project: Make) -> None:
    project = _built(make_dbt_project)
    store = project.path / ".sqlorch" / "state.db"
    # scribble over the pages of the history tables; the schema (page 1) and the schema
    # version stay readable, so the store opens and breaks only when the history is read
    con = sqlite3.connect(store)
    page_size = con.execute("PRAGMA page_size").fetchone()[0]
    roots = [
        r[0]
        for r in con.execute(
            "SELECT rootpage FROM sqlite_master WHERE type = 'table' AND name IN "
            "('runs', 'events', 'attempts', 'materializations', 'partition_ledger')"
        )
    ]
    con.close()
    assert len(roots) == 5 and 1 not in roots
    data = bytearray(store.read_bytes())
    for page in roots:
        start = (page - 1) * page_size
        data[start : start + page_size] = b"\xa5" * page_size
    store.write_bytes(bytes(data))

    for command in (("status",), ("runs",), ("build",)):
        result = run_cli_subprocess(project.path, *command)
        assert_clean_error(result, 2, "is damaged", "Restore it from a backup", "mv ")
        assert str(store) in result.flat

    debug = run_cli_subprocess(project.path, "status", "--debug")
    assert debug.exit_code == 2 and TRACEBACK in debug.output


def test_an_empty_state_store_is_refused_not_reset(make_dbt_project: Make) -> None:
    project = _built(make_dbt_project)
    store = project.path / ".sqlorch" / "state.db"
    for extra in ("state.db-wal", "state.db-shm"):
        store.with_name(extra).unlink(missing_ok=True)
    store.write_bytes(b"")

    for command in (("build",), ("status",)):
        result = run_cli_subprocess(project.path, *command)
        assert_clean_error(result, 2, "is empty (0 bytes)", "rm ", "rebuilds everything")
    assert store.stat().st_size == 0  # left as it was: the user decides
    assert scalar(project.db, "select x from main.m") == 1
