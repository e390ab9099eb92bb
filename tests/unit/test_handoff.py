"""The hand-off between `sqlorch dev`'s warm compiler and builds (sqlorch.dbt.handoff).

A real second process plays the warm compiler: it announces itself, holds the lock while it
writes (first half a result, then the whole), and the build side must only ever see the
whole result, must not wait without a live warm process, and must give up after its patience.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlorch.dbt.handoff import INFO_FILE, await_warm, warm_pid

CHILD = """
import sys, time
from pathlib import Path
from sqlorch.dbt.handoff import WarmLock
dbt_dir, out, hold = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
lock = WarmLock(dbt_dir)
lock.announce()
print("announced", flush=True)
sys.stdin.readline()  # the test says when to start writing
with lock.busy():
    out.write_text("half")
    time.sleep(hold)
    out.write_text("whole")
sys.stdin.readline()  # the test says when to stop
lock.withdraw()
"""


def start_child(dbt_dir: Path, out: Path, hold: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(dbt_dir), str(out), str(hold)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "announced"
    return proc


def test_without_a_warm_process_a_build_does_not_wait(tmp_path: Path) -> None:
    calls: list[int] = []
    assert await_warm(tmp_path, lambda: calls.append(1)) is None
    assert not calls
    # a warm.json left by a process that died: no wait either
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    (tmp_path / INFO_FILE).write_text(json.dumps({"pid": int(dead.stdout)}))
    assert warm_pid(tmp_path) is None
    assert await_warm(tmp_path, lambda: calls.append(1)) is None
    assert not calls


def test_a_build_reads_only_what_the_warm_process_finished_writing(tmp_path: Path) -> None:
    out = tmp_path / "result.txt"
    child = start_child(tmp_path, out, hold=0.6)
    assert child.stdin is not None
    try:
        assert warm_pid(tmp_path) == child.pid
        seen: list[str] = []

        def ready() -> str | None:
            text = out.read_text() if out.exists() else None
            seen.append(str(text))
            if text is None:  # not written yet: now let the warm process start
                child.stdin.write("go\n")  # type: ignore[union-attr]
                child.stdin.flush()  # type: ignore[union-attr]
            return text

        assert await_warm(tmp_path, ready, patience=5.0) == "whole"
        assert "half" not in seen, seen
        child.stdin.write("stop\n")
        child.stdin.flush()
        assert child.wait(timeout=30) == 0
        assert warm_pid(tmp_path) is None, "withdraw() leaves no warm.json"
    finally:
        child.kill()


def test_a_build_gives_up_when_the_warm_process_does_not_take_the_change_up(
    tmp_path: Path,
) -> None:
    child = start_child(tmp_path, tmp_path / "never.txt", hold=0.0)
    try:
        calls: list[int] = []
        assert await_warm(tmp_path, lambda: calls.append(1), patience=0.3) is None
        assert calls, "it looked while the warm process was idle"
    finally:
        child.kill()
        child.wait()
