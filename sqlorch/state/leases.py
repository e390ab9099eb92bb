"""Leases on assets for the SQLite store: one lock file per asset, held by the build's process.

A build writing asset `k` holds an exclusive `flock` on `<state folder>/leases/<hash>.lock`
until it ends; the file says who holds it (run id, pid, host, since when). The kernel drops
the lock when the process exits, killed or not, so a lease never outlives its build. This is
what the PostgreSQL store does with advisory locks, for builds sharing one machine's state.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from sqlorch.errors import LeaseHeldError
from sqlorch.events import utcnow


def lease_held(key: str, holder: str, location: str) -> LeaseHeldError:
    """Return the refusal of a build whose asset `key` another run (`holder`) is building."""
    return LeaseHeldError(
        f"Asset {key} is being built by another run ({holder}) sharing the state store "
        f"{location}. Wait for it to finish and run again (`sqlorch build --wait` waits for "
        "it); nothing of this run was written.",
        asset=key,
        holder=holder,
    )


class FileLeases:
    """The lock files of one state folder, and the ones this store holds."""

    def __init__(self, folder: Path, location: str) -> None:
        self.folder = folder
        self.location = location
        self._held: list[IO[str]] = []

    def _file(self, key: str) -> Path:
        return self.folder / (hashlib.sha256(key.encode()).hexdigest()[:24] + ".lock")

    def acquire(self, keys: Iterable[str], run_id: str) -> None:
        """Lock every asset of `keys` for `run_id` (all or none).

        Raises:
            LeaseHeldError: another build holds one of them (named); nothing is held.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        me = f"sqlorch {run_id} pid {os.getpid()}@{socket.gethostname()}, since {utcnow()}"
        try:
            for key in sorted(set(keys)):
                fh = self._file(key).open("a+")
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    fh.seek(0)
                    other = fh.read().strip() or "a build that is starting"
                    fh.close()
                    raise lease_held(key, other, self.location) from None
                fh.seek(0)
                fh.truncate()
                fh.write(f"{me} ({key})\n")
                fh.flush()
                self._held.append(fh)
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        """Release every lock this store holds."""
        held, self._held = self._held, []
        for fh in held:
            fh.close()  # closing drops the flock (the next holder rewrites the file)
