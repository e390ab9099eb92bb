"""Caches under `.sqlorch/lineage/`: compiled SQL per code version and lineage results.

Both are JSON files written atomically (`sqlorch.state.files`); the hidden dependencies
found on the way are recorded by `sqlorch.state.hidden`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlorch.state.files import folder, read_json, write_json

COMPILED_FILE = "compiled.json"
LINEAGE_FILE = "lineage.json"
#: compiled SQL versions kept per asset (a build re-stamps what it materialized as newest)
VERSIONS_KEPT = 10


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
