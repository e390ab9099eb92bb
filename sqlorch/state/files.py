"""JSON files kept next to the state store, under `.sqlorch/lineage/`, written atomically.

Everything here is plain JSON written atomically (a temp file renamed over the old one), so
a reader never sees half a file and a killed process loses at most the newest entries.
Reading needs neither dbt nor sqlglot: project loading reads the hidden dependencies on
every command.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FOLDER = "lineage"
#: bump when the lineage document changes meaning: older caches are recomputed
FORMAT = 2


def folder(state_dir: Path) -> Path:
    """Return `.sqlorch/lineage/`."""
    return state_dir / FOLDER


def read_json(path: Path) -> dict[str, Any]:
    """Return the JSON object in `path` ({} when missing or unreadable)."""
    try:
        with path.open() as fh:
            doc = json.load(fh)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        log.warning("ignoring the unreadable cache file %s", path)
        return {}
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        return {}
    return doc


def write_json(path: Path, doc: Mapping[str, Any]) -> None:
    """Write `doc` to `path` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump({**doc, "format": FORMAT}, fh, separators=(",", ":"))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
