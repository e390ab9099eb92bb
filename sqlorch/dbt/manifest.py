"""Translate a dbt `manifest.json` into asset and check nodes (dict access stays here)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlorch.core.environment import Environment
from sqlorch.core.graph import AssetKind, AssetNode, CheckNode, Column
from sqlorch.dbt.meta import TEST_CONFIG, dep_mappings, direct_facts, partitions_of
from sqlorch.errors import ProjectError

_KINDS = {"model": AssetKind.MODEL, "seed": AssetKind.SEED, "snapshot": AssetKind.SNAPSHOT}
RUNNABLE_TYPES = frozenset({"model", "seed", "snapshot", "test", "unit_test"})


@dataclass(frozen=True, slots=True)
class DbtSource:
    """A dbt source: `key` is the relation it reads; it becomes an asset or merges into one."""

    unique_id: str
    key: str
    source_name: str
    name: str
    file: str | None
    fqn: tuple[str, ...]
    description: str
    tags: tuple[str, ...]
    package: str
    columns: tuple[Column, ...]
    # the column saying when a row was loaded (dbt source freshness), if declared
    loaded_at_field: str | None = None


@dataclass(frozen=True, slots=True)
class DbtProject:
    """What sqlorch keeps of a parsed dbt project."""

    name: str
    assets: tuple[AssetNode, ...]
    sources: tuple[DbtSource, ...]
    checks: tuple[CheckNode, ...]
    # unique_id -> fqn of every node `dbt build` can run (used to compress selections)
    runnable_fqns: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # unique_ids of ephemeral models (always "covered" when compressing selections)
    ephemeral: frozenset[str] = frozenset()
    hook_count: int = 0
    adapter_type: str | None = None


#: dbt configs that say how a model's table is written
_WRITE_CONFIG = ("incremental_strategy", "file_format", "partition_by")


def _key(schema: str | None, name: str, prefix: str = "") -> str:
    schema = (schema or "main").lower()
    if prefix and schema.startswith(prefix):
        schema = schema[len(prefix) :]  # an environment's relation: its asset key is production's
    return f"{schema}.{name}".lower()


def _columns(raw: Mapping[str, Any] | None) -> tuple[Column, ...]:
    if not raw:
        return ()
    return tuple(Column(c.get("name", n), c.get("data_type") or "") for n, c in raw.items())


def read_manifest(manifest: Mapping[str, Any], environment: str | None = None) -> DbtProject:
    """Turn a manifest.json document into a `DbtProject`.

    Ephemeral models are not assets (they produce no relation): their dependencies are
    passed through to the models that use them. In an `environment` (`SQLORCH_ENV`) a node's
    schema `NAME__marts` is the asset key's `marts` (`sqlorch.core.environment`).

    Raises:
        ProjectError: the manifest is not a dbt manifest.
    """
    try:
        nodes: Mapping[str, Any] = manifest["nodes"]
        sources_raw: Mapping[str, Any] = manifest.get("sources", {})
        unit_tests: Mapping[str, Any] = manifest.get("unit_tests", {})
        meta = manifest.get("metadata", {})
    except (KeyError, TypeError) as exc:
        raise ProjectError(f"Not a dbt manifest (missing {exc}).") from exc
    macros: Mapping[str, Any] = manifest.get("macros", {}) or {}
    prefix = Environment(environment).prefix.lower() if environment else ""
    parents = _Parents.index(nodes, sources_raw, prefix)
    tests_of = _test_inputs(nodes, macros)
    native = _NativeContext.of(unit_tests, macros)
    assets: list[AssetNode] = []
    checks: list[CheckNode] = []
    runnable: dict[str, tuple[str, ...]] = {}
    hooks = 0
    for uid, n in nodes.items():
        rtype = n.get("resource_type")
        if rtype == "operation":
            hooks += 1
            continue
        if rtype in RUNNABLE_TYPES:
            runnable[uid] = tuple(n.get("fqn", ()))
        if rtype in _KINDS and uid in parents.key_of:
            asset = _asset(uid, n, parents, nodes, sources_raw, macros, tests_of.get(uid))
            assets.append(native.annotate(asset, n, nodes, sources_raw, macros, tests_of.get(uid)))
        elif rtype == "test":
            checks.append(_check(uid, n, parents))
    for uid, u in unit_tests.items():
        runnable[uid] = tuple(u.get("fqn", ()))
        checks.append(_check(uid, u, parents, is_unit_test=True))
    for uid in parents.ephemeral:
        runnable[uid] = tuple(nodes[uid].get("fqn", ()))
    return DbtProject(
        name=str(meta.get("project_name") or ""),
        assets=tuple(assets),
        sources=tuple(_source(uid, s) for uid, s in sources_raw.items()),
        checks=tuple(checks),
        runnable_fqns=runnable,
        ephemeral=frozenset(parents.ephemeral),
        hook_count=hooks,
        adapter_type=meta.get("adapter_type"),
    )


_MODE_MACROS = ("macro.dbt.is_incremental", "macro.dbt.should_full_refresh")


@dataclass(frozen=True, slots=True)
class _NativeContext:
    """What deciding native execution needs beyond a node (sqlorch.dbt.native)."""

    unit_tested: frozenset[str]
    own_materializations: frozenset[str]

    @classmethod
    def of(cls, unit_tests: Mapping[str, Any], macros: Mapping[str, Any]) -> _NativeContext:
        from sqlorch.dbt.native import own_materializations

        tested = {
            dep
            for u in unit_tests.values()
            for dep in (u.get("depends_on") or {}).get("nodes") or ()
        }
        return cls(frozenset(tested), own_materializations(macros))

    def annotate(
        self,
        asset: AssetNode,
        n: Mapping[str, Any],
        nodes: Mapping[str, Any],
        sources: Mapping[str, Any],
        macros: Mapping[str, Any],
        tests: list[str] | None,
    ) -> AssetNode:
        """Add the compile facts and the native-execution decision to `asset`'s metadata."""
        from sqlorch.dbt.meta import rendered_inputs
        from sqlorch.dbt.native import incremental_facts, model_blocker

        config = n.get("config", {}) or {}
        meta = dict(asset.metadata)
        if "sqlorch_render_inputs" not in meta:
            meta.update(direct_facts(n, config, nodes, sources, macros, tests))
        _parts, code = rendered_inputs(n, nodes, sources, macros)
        # dbt's own is_incremental() asks whether the relation exists: native execution
        # compiles the model for the answer the build sees (sqlorch.execute.native_steps)
        own = {str(macros[m].get("macro_sql")) for m in _MODE_MACROS if m in macros}
        code = [c for c in code if c not in own]
        meta["sqlorch_native_blocker"] = model_blocker(
            n,
            config,
            code,
            unit_tested=asset.unique_id in self.unit_tested,
            own_materializations=self.own_materializations,
        )
        if config.get("materialized") == "incremental":
            meta["sqlorch_incremental"] = incremental_facts(config)[0]
        if n.get("resource_type") == "seed":
            from sqlorch.dbt.seeds import seed_facts

            meta["sqlorch_seed"] = seed_facts(n, config)[0]
        return dataclasses.replace(asset, metadata=meta)


@dataclass(frozen=True, slots=True)
class _Parents:
    """The relations of a manifest's nodes and sources, and how nodes name their parents."""

    nodes: Mapping[str, Any]
    sources: Mapping[str, Any]
    # unique_id -> asset key of every node or source that is a relation
    key_of: Mapping[str, str]
    # unique_id of an ephemeral model -> the nodes it depends on
    ephemeral: Mapping[str, tuple[str, ...]]

    @classmethod
    def index(
        cls, nodes: Mapping[str, Any], sources: Mapping[str, Any], prefix: str = ""
    ) -> _Parents:
        key_of: dict[str, str] = {}
        ephemeral: dict[str, tuple[str, ...]] = {}
        for uid, n in nodes.items():
            if n.get("resource_type") not in _KINDS:
                continue
            if n.get("config", {}).get("materialized") == "ephemeral":
                ephemeral[uid] = tuple(n.get("depends_on", {}).get("nodes", ()))
                continue
            key_of[uid] = _key(n.get("schema"), n.get("alias") or n["name"], prefix)
        for uid, s in sources.items():
            key_of[uid] = _key(s.get("schema"), s.get("identifier") or s["name"], prefix)
        return cls(nodes, sources, key_of, ephemeral)

    def keys(self, dep_ids: Any, seen: frozenset[str] = frozenset()) -> tuple[str, ...]:
        """Return the asset keys behind `dep_ids`, looking through ephemeral models."""
        out: list[str] = []
        for dep in dep_ids:
            if dep in self.key_of:
                out.append(self.key_of[dep])
            elif dep in self.ephemeral and dep not in seen:
                out.extend(self.keys(self.ephemeral[dep], seen | {dep}))
        return tuple(dict.fromkeys(out))

    def names(self, uid: str) -> tuple[str, frozenset[str]]:
        """How a model may name its parent `uid` in `meta.sqlorch.deps`: (shown, accepted)."""
        if uid in self.sources:
            s = self.sources[uid]
            shown = f"{s.get('source_name')}.{s['name']}"
            names = {shown, s["name"], self.key_of[uid]}
        elif uid in self.nodes:
            p = self.nodes[uid]
            shown = p["name"]
            names = {shown, p.get("alias") or shown, f"{p.get('package_name')}.{shown}"}
            if uid in self.key_of:
                names.add(self.key_of[uid])
        else:
            shown, names = uid, set()
        return shown, frozenset(x.lower() for x in (*names, uid))


def _source(uid: str, s: Mapping[str, Any]) -> DbtSource:
    return DbtSource(
        unique_id=uid,
        key=_key(s.get("schema"), s.get("identifier") or s["name"]),
        source_name=s.get("source_name", ""),
        name=s["name"],
        file=s.get("original_file_path"),
        fqn=tuple(s.get("fqn", ())),
        description=s.get("description") or "",
        tags=tuple(s.get("tags", ())),
        package=s.get("package_name", ""),
        columns=_columns(s.get("columns")),
        loaded_at_field=s.get("loaded_at_field") or None,
    )


def _test_inputs(nodes: Mapping[str, Any], macros: Mapping[str, Any]) -> dict[str, list[str]]:
    """Return, per tested node, what its data tests compile from (see sqlorch.dbt.templates)."""
    test_inputs: dict[str, list[str]] = {}
    for uid, n in nodes.items():
        if n.get("resource_type") != "test":
            continue
        config = n.get("config") or {}
        depends = n.get("depends_on") or {}
        text = json.dumps(
            [
                uid,
                n.get("raw_code") or "",
                (n.get("checksum") or {}).get("checksum"),
                n.get("test_metadata"),
                {k: config.get(k) for k in TEST_CONFIG},
                [(macros.get(m) or {}).get("macro_sql") for m in depends.get("macros") or ()],
            ],
            sort_keys=True,
            default=str,
        )
        for dep in depends.get("nodes") or ():
            test_inputs.setdefault(dep, []).append(text)
    return test_inputs


def _asset(
    uid: str,
    n: Mapping[str, Any],
    parents: _Parents,
    nodes: Mapping[str, Any],
    sources: Mapping[str, Any],
    macros: Mapping[str, Any],
    tests: list[str] | None,
) -> AssetNode:
    """Translate a model, seed or snapshot node into an asset node."""
    config = n.get("config", {}) or {}
    key = parents.key_of[uid]
    parent_ids = tuple(n.get("depends_on", {}).get("nodes", ()))
    partitions, per_run, meta = partitions_of(n, config)
    if partitions is not None:
        meta.update(direct_facts(n, config, nodes, sources, macros, tests))
    # how dbt writes the table (what a warehouse may refuse: see sqlorch.warehouse.spark)
    writes = {k: config[k] for k in _WRITE_CONFIG if config.get(k) is not None}
    if writes:
        meta["sqlorch_write_config"] = writes
    mappings = dep_mappings(
        n,
        key,
        partitions,
        {p: parents.names(p) for p in dict.fromkeys(parent_ids)},
        lambda p: parents.keys((p,)),
    )
    return AssetNode(
        key=key,
        kind=_KINDS[n["resource_type"]],
        name=n["name"],
        deps=parents.keys(parent_ids),
        fqn=tuple(n.get("fqn", ())),
        file=n.get("original_file_path"),
        description=n.get("description") or "",
        tags=tuple(n.get("tags", ())),
        package=n.get("package_name"),
        unique_id=uid,
        materialized=config.get("materialized"),
        columns=_columns(n.get("columns")),
        code_version=(n.get("checksum") or {}).get("checksum"),
        metadata=meta,
        partitions=partitions,
        partition_mappings=mappings,
        max_partitions_per_run=per_run,
    )


def _check(
    uid: str, n: Mapping[str, Any], parents: _Parents, *, is_unit_test: bool = False
) -> CheckNode:
    """Translate a data test or unit test into a check node."""
    tested = parents.keys(n.get("depends_on", {}).get("nodes", ()))
    if is_unit_test:
        return CheckNode(
            unique_id=uid,
            name=n["name"],
            asset_keys=tested,
            fqn=tuple(n.get("fqn", ())),
            file=n.get("original_file_path"),
            is_unit_test=True,
        )
    config = n.get("config", {}) or {}
    return CheckNode(
        unique_id=uid,
        name=n["name"],
        asset_keys=tested,
        fqn=tuple(n.get("fqn", ())),
        file=n.get("original_file_path"),
        severity=str(config.get("severity") or "error"),
        tags=tuple(n.get("tags", ())),
    )


def compress_selection(
    chosen: set[str], runnable_fqns: Mapping[str, tuple[str, ...]], always: frozenset[str]
) -> list[str]:
    """Return `fqn:` selectors that select exactly `chosen` among the runnable nodes.

    A subtree of the fqn hierarchy whose every node is chosen (or in `always`) becomes one
    selector, so a whole-project build is `fqn:project` rather than a thousand selectors.
    """
    tree: dict[str, Any] = {}
    for uid, fqn in runnable_fqns.items():
        node = tree
        for part in fqn:
            node = node.setdefault(part, {})
        node.setdefault("\0ids", []).append(uid)

    def covered(node: dict[str, Any]) -> tuple[bool, bool]:
        """(every node under is chosen-or-always, any node under is chosen)"""
        full, anyc = True, False
        for k, v in node.items():
            if k == "\0ids":
                for uid in v:
                    c = uid in chosen
                    anyc |= c
                    full &= c or uid in always
            else:
                f, a = covered(v)
                full &= f
                anyc |= a
        return full, anyc

    out: list[str] = []

    def emit(node: dict[str, Any], path: tuple[str, ...]) -> None:
        full, anyc = covered(node)
        if not anyc:
            return
        if full and path:
            out.append("fqn:" + ".".join(path))
            return
        for k, v in sorted(node.items()):
            if k == "\0ids":
                # nodes whose fqn ends here but the subtree is not fully chosen
                out.extend("fqn:" + ".".join(path) for uid in v if uid in chosen)
            else:
                emit(v, (*path, k))

    emit(tree, ())
    return list(dict.fromkeys(out))
