"""`sqlorch` leaves without tearing the interpreter down once dbt is imported: nothing lost."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CHILD = """
import logging, sys, threading, time
from pathlib import Path
import dbt.cli.main  # noqa: F401 - what makes `leave` skip the teardown
from sqlorch.cli import leave

out = Path(sys.argv[1])
handler = logging.FileHandler(out / "log.txt")
logging.getLogger("child").addHandler(handler)
logging.getLogger("child").warning("logged before leaving")
sys.stdout.write("printed without a newline")
late = open(out / "buffered.txt", "w")
late.write("written through a buffer and closed by atexit")
import atexit
atexit.register(late.close)
if sys.argv[2] == "thread":
    def slow():
        time.sleep(0.5)
        (out / "thread.txt").write_text("the thread finished")
    threading.Thread(target=slow).start()
leave(SystemExit(sys.argv[3] if not sys.argv[3].isdigit() else int(sys.argv[3])))
"""


def run_child(tmp_path: Path, mode: str, code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CHILD), str(tmp_path), mode, code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.dbt
def test_leave_keeps_the_exit_code_output_logs_and_atexit(tmp_path: Path) -> None:
    done = run_child(tmp_path, "plain", "3")
    assert done.returncode == 3, done.stderr
    assert done.stdout == "printed without a newline"
    assert (tmp_path / "log.txt").read_text() == "logged before leaving\n"
    assert (tmp_path / "buffered.txt").read_text().startswith("written through a buffer")
    # multiprocessing's semaphores were released: no resource-tracker warning
    assert "leaked" not in done.stderr


@pytest.mark.dbt
def test_leave_with_a_message_exits_1_and_waits_for_other_threads(tmp_path: Path) -> None:
    done = run_child(tmp_path, "thread", "no such thing")
    assert done.returncode == 1
    assert "no such thing" in done.stderr
    assert (tmp_path / "thread.txt").read_text() == "the thread finished"
