"""A second Ctrl-C reaches a running dlt load (a real process and real SIGINTs): the run ends
at once, recorded as cancelled, the tables keep what they had, and the next build loads
everything the interrupted one did not (dlt's cursors did not advance)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import TRACEBACK, clean_environ, query, run_cli
from dlt_helpers import SOURCE, dlt_project, event, ok, status, write_lines

pytestmark = pytest.mark.dbt
__all__ = ["dlt_project"]  # the fixture, imported for pytest

WAIT = 90  # seconds before a stuck test gives up (never reached when things work)

#: after the files' rows, the events resource yields a row every 20 ms while `slow` exists
SLOW = SOURCE.replace(
    "import json\n",
    "import json\nimport time\n",
).replace(
    "            yield row\n",
    "            yield row\n"
    "    here = DATA.parent\n"
    "    deadline = time.monotonic() + 120\n"
    "    n = 1000\n"
    "    while (here / 'slow').exists() and time.monotonic() < deadline:\n"
    "        (here / 'started').touch()\n"
    "        n += 1\n"
    "        yield {'id': n, 'kind': 'slow', 'user_id': 0,\n"
    "               'updated_at': '2024-02-01T00:00:00+00:00'}\n"
    "        time.sleep(0.02)\n",
)


def _sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for(what: str, predicate: Callable[[], bool], proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the build ended (exit {proc.returncode}) before {what}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


def _json(project: Path, *args: str) -> Any:
    result = ok(run_cli(project, *args))
    return result.json() if "logs" not in args else result.json_lines()


def test_second_ctrl_c_interrupts_a_running_dlt_load(dlt_project: Any) -> None:
    project: Path = dlt_project.path
    (project / "ingest/loads.py").write_text(SLOW)
    ok(run_cli(project, "build"))
    assert query(dlt_project.db, "select count(*) from raw.events") == [(3,)]
    write_lines(project / "data/events/day02.jsonl", [event(i, 2) for i in (4, 5)])
    (project / "slow").touch()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sqlorch.cli", "build", "--project-dir", str(project)],
        cwd=project,
        env=clean_environ(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_sigint_default,  # a background job inherits SIGINT ignored
    )
    try:
        _wait_for("the dlt load started", (project / "started").exists, proc)
        proc.send_signal(signal.SIGINT)

        def cancelling() -> bool:
            runs = _json(project, "runs", "--json")
            events = _json(project, "logs", runs[0]["run_id"], "--json")
            return any("cancel" in e["message"].lower() for e in events)

        _wait_for("the build noticed Ctrl-C", cancelling, proc)
        assert proc.poll() is None  # the first Ctrl-C waits for the load, which goes on
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=WAIT)
    finally:
        (project / "slow").unlink()
        if proc.poll() is None:
            proc.kill()
    run = _json(project, "runs", "--json")[0]
    story = f"{out}\n{err}\n{run}"
    assert proc.returncode == 130, story
    assert TRACEBACK not in out + err, story
    assert run["status"] == "cancelled" and run["finished_at"] is not None, story
    st = status(project)
    assert st["raw.events"]["last_outcome"] == "failed" and st["raw.events"]["stale"], st
    # no package of the interrupted load is left pending for the next build to load
    import dlt

    attached = dlt.attach("sqlorch_raw_files", pipelines_dir=str(project / ".sqlorch/dlt"))
    assert not attached.has_pending_data, story
    # nothing of the interrupted load reached the tables
    assert query(dlt_project.db, "select count(*) from raw.events") == [(3,)]
    # the next build loads what the interrupted one did not, exactly once
    ok(run_cli(project, "build"))
    ids = [r[0] for r in query(dlt_project.db, "select id from raw.events order by id")]
    assert ids == [1, 2, 3, 4, 5]
    assert not {k: s for k, s in status(project).items() if s["stale"]}
