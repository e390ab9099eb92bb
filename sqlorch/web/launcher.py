"""Launch builds, backfills, retries and wipes as separate `sqlorch` processes, and find them.

The web server never runs dbt or opens the warehouse: a launch is `python -m sqlorch.cli
COMMAND ...` in the project's folder, its output kept in `.sqlorch/ui/launches/`. The run
it records is found in the state store by command and selection.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlorch.events import utcnow
from sqlorch.settings import Settings
from sqlorch.state.store import RunRecord, open_store


@dataclass(slots=True)
class Launch:
    """One launched `sqlorch` process."""

    launch_id: str
    command: str
    args: tuple[str, ...]
    selection: str
    started_at: str
    log: Path
    process: subprocess.Popen[bytes]
    known_runs: frozenset[str]
    run_id: str | None = None

    @property
    def exit_code(self) -> int | None:
        """The process's exit code (None: still running)."""
        return self.process.poll()

    def output(self, limit: int = 20_000) -> str:
        """The last `limit` characters the process printed."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return text[-limit:]


@dataclass(slots=True)
class Launcher:
    """Starts `sqlorch` processes for the UI and remembers them (one per server)."""

    settings: Settings
    launches: dict[str, Launch] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def base_args(self) -> list[str]:
        """The options that point a launched command at the UI's project."""
        s = self.settings
        args = ["--project-dir", str(s.project_dir)]
        if s.profiles_dir is not None:
            args += ["--profiles-dir", str(s.profiles_dir)]
        if s.target:
            args += ["--target", s.target]
        return args

    def start(self, command: str, args: Sequence[str], selection: str) -> Launch:
        """Start `sqlorch COMMAND ARGS` for this project; return its launch."""
        folder = self.settings.state_dir / "ui" / "launches"
        folder.mkdir(parents=True, exist_ok=True)
        launch_id = f"{utcnow()[:19].replace(':', '').replace('-', '')}-{secrets.token_hex(3)}"
        log = folder / f"{launch_id}.log"
        store = open_store(self.settings, readonly=True)
        try:
            known = frozenset(r.run_id for r in store.runs(50))
        finally:
            store.close()
        argv = [sys.executable, "-m", "sqlorch.cli", command, *args, *self.base_args()]
        env = dict(os.environ)
        env.setdefault("NO_COLOR", "1")
        with log.open("wb") as out:
            process = subprocess.Popen(  # noqa: S603 - our own CLI, arguments as a list
                argv,
                cwd=self.settings.project_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        launch = Launch(launch_id, command, tuple(args), selection, utcnow(), log, process, known)
        with self.lock:
            self.launches[launch_id] = launch
        return launch

    def get(self, launch_id: str) -> Launch | None:
        """Return a launch by id, with its run found once the run is recorded."""
        with self.lock:
            launch = self.launches.get(launch_id)
        if launch is None or launch.run_id is not None:
            return launch
        store = open_store(self.settings, readonly=True)
        try:
            launch.run_id = _find_run(store.runs(50), launch)
        finally:
            store.close()
        return launch

    def close(self) -> None:
        """Reap finished processes (running launches go on: they are builds of their own)."""
        with self.lock:
            for launch in self.launches.values():
                launch.process.poll()


def _find_run(runs: Sequence[RunRecord], launch: Launch) -> str | None:
    for run in reversed(runs):  # oldest first: the first new run of this command
        if (
            run.run_id not in launch.known_runs
            and run.command == launch.command
            and (not launch.selection or run.selection == launch.selection)
            and run.started_at >= launch.started_at[:19]
        ):
            return run.run_id
    return None


def warehouse_holder(path: Path | None) -> int | None:
    """Return the id of the process holding a lock on the DuckDB file `path` (None: none).

    Reads /proc/locks (Linux); the file itself is never opened.
    """
    if path is None:
        return None
    try:
        st = path.stat()
        text = Path("/proc/locks").read_text()
    except OSError:
        return None
    ident = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in text.splitlines():
        parts = line.split()
        if "->" in parts:  # a waiter, not a holder
            continue
        if len(parts) >= 6 and parts[5] == ident and parts[4].isdigit():
            pid = int(parts[4])
            if pid != os.getpid():
                return pid
    return None


def running_runs(settings: Settings) -> list[RunRecord]:
    """Return the runs the state store says are running."""
    store = open_store(settings, readonly=True)
    try:
        return [r for r in store.runs(50) if r.status == "running"]
    finally:
        store.close()
