"""dbt's compiled SQL, cached per code version: compile exactly what changed, once.

sqlorch runs the compiled SQL of models and data tests itself (sqlorch.dbt.native). The SQL
comes from dbt: one in-process `dbt compile` of exactly the models (and their tests) whose
cached entry is missing or stale, and it is kept in `.sqlorch/dbt/compiled.json`, keyed by
the model's code version, the relations and ephemeral models it renders, its tests' code
and configuration, and the environment variables it reads (`sqlorch.dbt.templates.inputs_of`).
A build with no code change reads this file and never imports dbt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlorch.dbt.datatests import DataTest
from sqlorch.dbt.templates import inputs_of

if TYPE_CHECKING:
    from sqlorch.core.graph import AssetNode, CheckNode
    from sqlorch.dbt.runner import DbtInvoker

log = logging.getLogger(__name__)

FORMAT = 1
_TEST_MACROS = frozenset(
    {
        "get_test_sql",
        "default__get_test_sql",
        "duckdb__get_test_sql",
        "get_limit_subquery_sql",
        "default__get_limit_subquery_sql",
        "duckdb__get_limit_subquery_sql",
        "should_store_failures",
        "materialization_test_default",
        "materialization_test_duckdb",
    }
)
_DBT_PACKAGES = frozenset({"dbt", "dbt_duckdb", "dbt_postgres"})


def test_inputs(check: CheckNode, nodes: Mapping[str, AssetNode]) -> str:
    """The digest a test's compiled SQL is valid for: the inputs of every node it tests."""
    parts = sorted(inputs_of(nodes[k]) for k in check.asset_keys)
    return hashlib.sha256(f"{FORMAT}|{check.unique_id}|{parts}".encode()).hexdigest()[:24]


class CompiledCache:
    """compiled.json: model key and test unique_id -> compiled SQL (or why there is none)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._doc: dict[str, Any] | None = None
        self._dirty = False
        # what this process put: re-applied over the file as it is when saving, so a build
        # and a warm `sqlorch dev` writing at once never drop each other's entries
        self._puts: dict[tuple[str, str], Any] = {}

    def _load(self) -> dict[str, Any]:
        if self._doc is None:
            self._doc = _read(self.path)
        return self._doc

    def model(self, node: AssetNode, mode: str = "") -> str | None:
        """The model's compiled SQL for its current inputs (None: not cached, or stale).

        A model dbt could not compile is cached as "" (dbt then runs it and says why).
        `mode` is "incremental" or "full" for an incremental model: its SQL differs with
        `is_incremental()`, so each has its own entry.
        """
        entry = self._load()["models"].get(_entry_key(node, mode))
        if not isinstance(entry, dict) or entry.get("inputs") != inputs_of(node):
            return None
        return str(entry.get("sql") or "")

    def seed(self, key: str, inputs: str) -> list[tuple[str, str]] | None:
        """A seed's columns for the file and configuration digested as `inputs`."""
        entry = self._load()["models"].get(f"{key}#seed")
        if not isinstance(entry, dict) or entry.get("inputs") != inputs:
            return None
        return [(str(a), str(b)) for a, b in entry["columns"]]

    def put_seed(self, key: str, inputs: str, columns: list[tuple[str, str]]) -> None:
        """Remember a seed's columns as dbt's agate inference gave them."""
        self._put("models", f"{key}#seed", {"inputs": inputs, "columns": columns})

    def test(self, check: CheckNode, nodes: Mapping[str, AssetNode]) -> DataTest | str | None:
        """The test compiled (or why dbt runs it); None when not cached for these inputs."""
        entry = self._load()["tests"].get(check.unique_id)
        if not isinstance(entry, dict) or entry.get("inputs") != test_inputs(check, nodes):
            return None
        if entry.get("reason"):
            return str(entry["reason"])
        fields = dict(entry["test"])
        if fields.get("store") is not None:
            fields["store"] = tuple(fields["store"])
        return DataTest(**fields)

    def put_model(self, node: AssetNode, sql: str, mode: str = "") -> None:
        """Remember `node`'s compiled SQL ("" when dbt could not compile it) for `mode`."""
        self._put("models", _entry_key(node, mode), {"inputs": inputs_of(node), "sql": sql})

    def put_test(
        self, check: CheckNode, nodes: Mapping[str, AssetNode], value: DataTest | str
    ) -> None:
        """Remember a compiled test, or why dbt runs it."""
        entry: dict[str, Any] = {"inputs": test_inputs(check, nodes)}
        if isinstance(value, str):
            entry["reason"] = value
        else:
            entry["test"] = asdict(value)
        self._put("tests", check.unique_id, entry)

    def _put(self, table: str, key: str, entry: dict[str, Any]) -> None:
        self._load()[table][key] = entry
        self._puts[(table, key)] = entry
        self._dirty = True

    def save(self) -> None:
        """Write the cache atomically (when something changed), over what is there now.

        Another process may have saved since this one read the file: its entries are kept
        and this process's own entries written over them. Readers never see a partial file.
        """
        if not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        doc = _read(self.path)
        for (table, key), entry in self._puts.items():
            doc[table][key] = entry
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            tmp.write_text(json.dumps(doc, separators=(",", ":")))
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)
        self._doc = doc
        self._dirty = False


def _read(path: Path) -> dict[str, Any]:
    """compiled.json's document (empty tables when missing, unreadable or of another format)."""
    try:
        doc = json.loads(path.read_text())
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            doc = {}
    except (OSError, ValueError):
        doc = {}
    doc.setdefault("format", FORMAT)
    doc.setdefault("models", {})
    doc.setdefault("tests", {})
    return doc


def _entry_key(node: AssetNode, mode: str) -> str:
    return f"{node.key}#{mode}" if mode else node.key


def compile_nodes(
    invoker: DbtInvoker,
    models: Sequence[AssetNode],
    tests: Sequence[str],
    selectors: list[str],
    run_dir: Path,
) -> tuple[dict[str, str], dict[str, DataTest | str]]:
    """Have dbt compile `models` and the data tests `tests` in one invocation.

    Returns (model key -> compiled SQL, "" where dbt compiled nothing) and (test unique_id ->
    the test, or why dbt must run it).

    Raises:
        ProjectError: dbt could not compile anything.
    """
    compiled = invoker.compile(
        selectors, run_dir=run_dir, purpose="the models sqlorch executes natively"
    )
    sqls = {m.key: compiled.get(m.unique_id or "", "") for m in models}
    overridden = _test_sql_overridden(invoker)
    out: dict[str, DataTest | str] = {}
    for uid in tests:
        if overridden:
            out[uid] = "dbt: the project overrides how dbt runs tests"
        elif uid not in compiled:
            out[uid] = "dbt: dbt did not compile it"
        else:
            out[uid] = _native_test(invoker, uid, compiled[uid])
    return sqls, out


def _test_sql_overridden(invoker: DbtInvoker) -> bool:
    """Whether the project or a package redefines how dbt wraps or materializes a test."""
    macros = getattr(invoker.manifest, "macros", None) or {}
    return any(
        getattr(m, "name", "") in _TEST_MACROS
        and getattr(m, "package_name", "") not in _DBT_PACKAGES
        for m in macros.values()
    )


def _native_test(invoker: DbtInvoker, uid: str, sql: str) -> DataTest | str:
    """Read a compiled test's configuration from dbt's parsed manifest."""
    node = getattr(invoker.manifest, "nodes", {}).get(uid)
    config = getattr(node, "config", None)
    if node is None or config is None or getattr(node, "resource_type", None) != "test":
        return "dbt: not a data test"
    if getattr(config, "sql_header", None):
        return "dbt: sql_header"
    store = None
    if getattr(config, "store_failures", None):
        kind = getattr(config, "store_failures_as", None) or "table"
        if kind not in ("table", "view"):
            return f"dbt: store_failures_as {kind!r}"
        alias = getattr(node, "alias", None) or getattr(node, "name", uid)
        store = (getattr(node, "database", None), str(node.schema), str(alias), str(kind))
    limit = getattr(config, "limit", None)
    return DataTest(
        unique_id=uid,
        sql=sql,
        fail_calc=str(getattr(config, "fail_calc", None) or "count(*)"),
        warn_if=str(getattr(config, "warn_if", None) or "!= 0"),
        error_if=str(getattr(config, "error_if", None) or "!= 0"),
        severity=str(getattr(config, "severity", None) or "ERROR").upper(),
        limit=int(limit) if limit is not None else None,
        store=store,
    )
