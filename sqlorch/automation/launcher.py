"""Start a queued run request as its own process (DuckDB has one writer; builds run alone)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlorch.settings import Settings
from sqlorch.state.automation import AutomationStore, RequestRecord


@dataclass(frozen=True, slots=True)
class Launch:
    """A request handed to a process."""

    request_id: str
    process: subprocess.Popen[bytes]


def launch(
    settings: Settings,
    astore: AutomationStore,
    request: RequestRecord,
    now: float,
    log_dir: Path | None = None,
) -> Launch | None:
    """Mark `request` launching and start its process (None: it was no longer queued)."""
    token = uuid.uuid4().hex
    if not astore.mark_launching(request.request_id, token, now):
        return None
    cmd = [
        sys.executable,
        "-m",
        "sqlorch.automation.runner",
        request.request_id,
        token,
        "--project-dir",
        str(settings.project_dir),
    ]
    if settings.profiles_dir is not None:
        cmd += ["--profiles-dir", str(settings.profiles_dir)]
    if settings.target is not None:
        cmd += ["--target", settings.target]
    folder = log_dir or settings.state_dir / "automation"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{request.request_id}.log", "ab") as out:
        process = subprocess.Popen(
            cmd,
            cwd=settings.project_dir,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(os.environ),
            # its own session: a Ctrl-C at the daemon's terminal is the daemon's to decide on
            start_new_session=True,
        )
    return Launch(request.request_id, process)
