"""The hand-off between a warm compiling process (`sqlorch dev`) and the builds that read it.

`sqlorch dev` keeps dbt imported and the project parsed; when a project file changes it
parses again (dbt's partial parse, in that process) and compiles the changed models,
writing the manifest cache and compiled.json that the next build reads without importing
dbt. While it does, it holds an exclusive lock on `.sqlorch/dbt/warm.lock`; `warm.json`
names its process. A build whose manifest cache is stale while such a process lives waits
for it (a shared lock on the same file) instead of importing dbt, and parses itself when
the warm process does not take the change up within a moment (it may have failed on a
half-edited file: the build then reports dbt's error itself).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

LOCK_FILE = "warm.lock"
INFO_FILE = "warm.json"
#: seconds a build waits for a live warm process to take a change up before parsing itself
PATIENCE = 1.5
#: seconds a build waits at most for a warm process busy compiling
LIMIT = 600.0


class WarmLock:
    """The warm process's side: announce itself, hold the lock while parsing and compiling."""

    def __init__(self, dbt_dir: Path) -> None:
        self.dbt_dir = dbt_dir
        self._fd: int | None = None

    def announce(self) -> None:
        """Say this process is the project's warm compiler (written atomically; idempotent)."""
        if self._fd is not None:
            return
        self.dbt_dir.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.dbt_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        info = self.dbt_dir / INFO_FILE
        tmp = info.with_name(f"{INFO_FILE}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), "since": time.time()}))
        os.replace(tmp, info)

    def withdraw(self) -> None:
        """Stop being the warm compiler (builds no longer wait for this process)."""
        if warm_pid(self.dbt_dir, mine=True) == os.getpid():
            (self.dbt_dir / INFO_FILE).unlink(missing_ok=True)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        """Hold the lock: builds that need this work wait until it is written."""
        assert self._fd is not None, "announce() first"
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)


def warm_pid(dbt_dir: Path, *, mine: bool = False) -> int | None:
    """The live warm compiler's process id (None: there is none; this process unless `mine`)."""
    try:
        pid = int(json.loads((dbt_dir / INFO_FILE).read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if pid == os.getpid():
        return pid if mine else None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def await_warm(
    dbt_dir: Path,
    ready: Callable[[], T | None],
    *,
    patience: float = PATIENCE,
    limit: float = LIMIT,
) -> T | None:
    """Wait for a live warm compiler to make `ready()` return something; None if it does not.

    `ready` is called only while the warm process is not writing (under a shared lock), so
    it never sees the manifest cache of one parse with the compiled SQL of another. Without
    a warm process this returns None at once.
    """
    if warm_pid(dbt_dir) is None:
        return None
    try:
        fd = os.open(dbt_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return None
    started = idle = time.monotonic()
    try:
        while time.monotonic() - started < limit:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:  # the warm process is parsing or compiling
                idle = time.monotonic()
                time.sleep(0.01)
                continue
            try:
                got = ready()
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
            if got is not None:
                waited = time.monotonic() - started
                log.debug("took the warm process's parse (waited %.2fs)", waited)
                return got
            if time.monotonic() - idle > patience or warm_pid(dbt_dir) is None:
                return None
            time.sleep(0.02)
        return None
    finally:
        os.close(fd)


@contextlib.contextmanager
def parsing_alone(dbt_dir: Path) -> Iterator[None]:
    """Hold the lock while this process parses, when a warm process lives (else no-op).

    dbt writes its artifacts in place: a build parsing by itself and the warm process
    parsing the same change must not write `.sqlorch/dbt/target/` at once.
    """
    if warm_pid(dbt_dir) is None:
        yield
        return
    fd = os.open(dbt_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock
