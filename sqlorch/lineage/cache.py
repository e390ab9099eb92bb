"""Files under `.sqlorch/lineage/`: compiled SQL, lineage results and hidden dependencies.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FOLDER = "lineage"
COMPILED_FILE = "compiled.json"
LINEAGE_FILE = "lineage.json"
HIDDEN_FILE = "hidden_deps.json"
#: bump when the lineage document changes meaning: older caches are recomputed
FORMAT = 2
#: compiled SQL versions kept per asset (a build re-stamps what it materialized as newest)
VERSIONS_KEPT = 10


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


class CompiledCache:
    """Compiled SQL per asset and code version: `{key: {code_version: sql}}`."""

    def __init__(self, state_dir: Path) -> None:
        self.path = folder(state_dir) / COMPILED_FILE
        doc = read_json(self.path)
        raw = doc.get("assets", {})
        self.assets: dict[str, dict[str, str]] = raw if isinstance(raw, dict) else {}
        self.dirty = False

    def get(self, key: str, code_version: str | None) -> str | None:
        """Return the compiled SQL of `key` at `code_version`, if cached."""
        if code_version is None:
            return None
        return self.assets.get(key, {}).get(code_version)

    def put(self, key: str, code_version: str | None, sql: str) -> None:
        """Remember the compiled SQL of `key` at `code_version` (newest last)."""
        if code_version is None:
            return
        versions = self.assets.setdefault(key, {})
        if versions.get(code_version) == sql:
            return
        versions.pop(code_version, None)
        versions[code_version] = sql
        while len(versions) > VERSIONS_KEPT:
            versions.pop(next(iter(versions)))
        self.dirty = True

    def save(self) -> None:
        """Write the cache if it changed."""
        if self.dirty:
            write_json(self.path, {"assets": self.assets})
            self.dirty = False


class LineageCache:
    """Lineage results per asset: `{key: {"sql": digest, "schemas": digest, "lineage": {...}}}`.

    An entry is valid while the compiled SQL is the same and the columns of every relation
    it read (`lineage.tables`) are the same.
    """

    def __init__(self, state_dir: Path) -> None:
        self.path = folder(state_dir) / LINEAGE_FILE
        doc = read_json(self.path)
        raw = doc.get("assets", {})
        self.assets: dict[str, dict[str, Any]] = raw if isinstance(raw, dict) else {}
        self.dirty = False

    def get(self, key: str, sql_digest: str) -> dict[str, Any] | None:
        """Return the cached entry of `key` for this SQL (check its `schemas` digest)."""
        entry = self.assets.get(key)
        if entry and entry.get("sql") == sql_digest and isinstance(entry.get("lineage"), dict):
            return entry
        return None

    def put(self, key: str, sql_digest: str, schemas_digest: str, lineage: dict[str, Any]) -> None:
        """Store the lineage document of `key`."""
        self.assets[key] = {"sql": sql_digest, "schemas": schemas_digest, "lineage": lineage}
        self.dirty = True

    def save(self) -> None:
        """Write the cache if it changed."""
        if self.dirty:
            write_json(self.path, {"assets": self.assets})
            self.dirty = False


@dataclass(frozen=True, slots=True)
class HiddenDependency:
    """A model whose compiled SQL reads relations that are neither refs nor sources."""

    key: str
    code_version: str | None
    file: str | None
    tables: tuple[str, ...]


def read_hidden(state_dir: Path) -> dict[str, HiddenDependency]:
    """Return the hidden dependencies found so far, by model key (cheap: one small file)."""
    doc = read_json(folder(state_dir) / HIDDEN_FILE)
    out: dict[str, HiddenDependency] = {}
    for key, entry in (doc.get("assets") or {}).items():
        if not isinstance(entry, dict):
            continue
        out[key] = HiddenDependency(
            key=key,
            code_version=entry.get("code_version"),
            file=entry.get("file"),
            tables=tuple(str(t) for t in entry.get("tables") or ()),
        )
    return out


def write_hidden(state_dir: Path, found: Mapping[str, HiddenDependency]) -> None:
    """Replace the hidden dependencies file with `found`."""
    write_json(
        folder(state_dir) / HIDDEN_FILE,
        {
            "assets": {
                key: {"code_version": h.code_version, "file": h.file, "tables": list(h.tables)}
                for key, h in sorted(found.items())
            }
        },
    )
