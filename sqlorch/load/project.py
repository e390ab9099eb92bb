"""Load a user's repo into one `AssetGraph`: the dbt manifest plus the Python assets."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlorch.api.checks import CheckDefinition
from sqlorch.core.codeversion import combine
from sqlorch.core.graph import AssetGraph, AssetKind, AssetNode
from sqlorch.core.plan.partitions import check_mappings
from sqlorch.errors import ConfigError, GraphError
from sqlorch.load.checks import attach_checks
from sqlorch.load.discovery import FoundAsset, discover_all
from sqlorch.settings import Settings

if TYPE_CHECKING:
    from sqlorch.dbt.manifest import DbtProject
    from sqlorch.dbt.profiles import Target
    from sqlorch.dbt.runner import DbtInvoker

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Project:
    """A loaded repo: its settings, graph, Python assets and dbt handles."""

    settings: Settings
    graph: AssetGraph
    python_assets: dict[str, FoundAsset]
    dbt: DbtProject
    invoker: DbtInvoker
    target: Target
    python_checks: dict[str, CheckDefinition] = dataclasses.field(default_factory=dict)


def load_project(settings: Settings) -> Project:
    """Parse the dbt project, import the Python assets and merge them into one graph.

    Raises:
        ConfigError: the profile cannot be resolved.
        ProjectError: dbt cannot parse the project or an ingest module fails to import.
        GraphError: a dependency is unknown, ambiguous or forms a cycle.
    """
    from sqlorch.dbt.profiles import find_profiles_dir, read_target_cached
    from sqlorch.dbt.runner import DbtInvoker

    profiles_dir = find_profiles_dir(settings.profiles_dir)
    target = read_target_cached(
        settings.project_dir, profiles_dir, settings.target, settings.state_dir / "target.json"
    )
    invoker = DbtInvoker(
        project_dir=settings.project_dir,
        profiles_dir=profiles_dir,
        target=settings.target,
        artifacts_dir=settings.state_dir / "dbt",
        duckdb_path=(
            Path(target.path).resolve()
            if target.type == "duckdb" and target.path and target.path != ":memory:"
            else None
        ),
    )
    dbt = _load_dbt(settings, target, invoker)
    found, found_checks = discover_all(settings.root, (*settings.ingest, *settings.check_modules))
    graph, python_assets = merge(dbt, found, settings.asset_schema)
    from sqlorch.state.hidden import add_hidden_edges

    graph = add_hidden_edges(graph, settings.state_dir)  # found in compiled SQL before
    graph, python_checks = attach_checks(
        graph,
        found_checks,
        settings.checks,
        str(settings.settings_file) if settings.settings_file else None,
    )
    return Project(settings, graph, python_assets, dbt, invoker, target, python_checks)


def _load_dbt(settings: Settings, target: Target, invoker: DbtInvoker) -> DbtProject:
    """Return the parsed dbt project: from the manifest cache, else parsed by dbt (and cached).

    The cache path imports nothing of dbt; `invoker.manifest` then stays None and the
    invoker parses (partially) only if a dbt node must actually run.
    """
    from sqlorch.dbt.cache import ManifestCache, context_key, input_dirs, scan

    project_dir = settings.project_dir
    cache = ManifestCache(settings.state_dir / "dbt" / "graph.pickle", project_dir)
    context = context_key(
        {
            "project": project_dir.resolve(),
            "profile": target.profile,
            "target": target.name,
            "profiles_file": target.profiles_file.resolve(),
        }
    )
    extra = [target.profiles_file]
    cached = cache.load(context, extra)
    if cached is not None:
        log.debug("dbt project loaded from the manifest cache")
        return cached

    from sqlorch.dbt.codeversion import dbt_code_parts
    from sqlorch.dbt.manifest import read_manifest
    from sqlorch.dbt.profiles import read_project_file

    project_file = read_project_file(project_dir)
    dirs = input_dirs(project_dir, project_file)
    files = scan(project_dir, dirs, extra)  # before the parse: see ManifestCache.store
    manifest = invoker.parse()
    dbt = read_manifest(manifest)
    project_vars = project_file.get("vars") or {}
    parts = dbt_code_parts(
        manifest,
        project_vars=project_vars if isinstance(project_vars, dict) else {},
        target={
            "profile": target.profile,
            "name": target.name,
            "type": target.type,
            "path": target.path,
        },
        project_dir=project_dir,
    )
    dbt = dataclasses.replace(
        dbt,
        assets=tuple(
            dataclasses.replace(n, code_version=combine(p), code_parts=p)
            if n.unique_id and (p := parts.get(n.unique_id))
            else n
            for n in dbt.assets
        ),
    )
    cache.store(context, dirs, files, dbt)
    return dbt


def merge(
    dbt: DbtProject, found: list[FoundAsset], asset_schema: str
) -> tuple[AssetGraph, dict[str, FoundAsset]]:
    """Merge dbt nodes and Python assets into one graph.

    A dbt source whose relation another asset produces IS that asset; a source nothing
    produces stays an observed-only node.
    """
    nodes: dict[str, AssetNode] = {}
    for node in dbt.assets:
        nodes.setdefault(node.key, node)  # duplicates: AssetGraph reports both files
    duplicates = [n for n in dbt.assets if nodes[n.key] is not n]

    python: dict[str, FoundAsset] = {}
    pending: list[tuple[FoundAsset, AssetNode]] = []
    for fa in found:
        d = fa.definition
        key = (d.key or f"{d.schema or asset_schema}.{d.name}").lower()
        if "." not in key:
            raise ConfigError(
                f"Python asset {d.name!r} ({fa.file}:{fa.line}) has key {key!r}; a key must be "
                "`schema.name`.",
                asset=key,
                file=fa.file,
                line=fa.line,
            )
        node = AssetNode(
            key=key,
            kind=AssetKind.PYTHON,
            name=key.rsplit(".", 1)[1],
            fqn=(*fa.module.split("."), d.name),
            file=fa.file,
            line=fa.line,
            description=d.description,
            tags=d.tags,
            code_version=fa.code_version,
            code_parts={"source": fa.code_version},
            pool=d.pool,
            metadata=d.metadata,
            partitions=d.partitions,
            max_partitions_per_run=d.max_partitions_per_run,
        )
        if key in python:
            first = python[key]
            raise GraphError(
                f"Two Python assets have the key {key!r}: {first.file}:{first.line} and "
                f"{fa.file}:{fa.line}. Rename one or give it another `schema`/`key`.",
                asset=key,
                file=fa.file,
                line=fa.line,
            )
        python[key] = fa
        pending.append((fa, node))

    for _fa, node in pending:
        if node.key in nodes:
            other = nodes[node.key]
            raise GraphError(
                f"Python asset {node.name!r} ({node.file}:{node.line}) and dbt "
                f"{other.kind.value} {other.name!r} ({other.file}) both produce {node.key!r}. "
                "Give the Python asset another schema or name.",
                asset=node.key,
                file=node.file,
                line=node.line,
            )
        nodes[node.key] = node

    for src in dbt.sources:
        name = f"{src.source_name}.{src.name}"
        if src.key in nodes:
            prod = nodes[src.key]
            nodes[src.key] = dataclasses.replace(
                prod,
                source_ids=(*prod.source_ids, src.unique_id),
                source_names=(*prod.source_names, name),
                columns=prod.columns or src.columns,
                description=prod.description or src.description,
            )
        else:
            nodes[src.key] = AssetNode(
                key=src.key,
                kind=AssetKind.SOURCE,
                name=src.name,
                fqn=src.fqn,
                file=src.file,
                description=src.description,
                tags=src.tags,
                package=src.package,
                unique_id=src.unique_id,
                source_ids=(src.unique_id,),
                source_names=(name,),
                columns=src.columns,
                loaded_at_field=src.loaded_at_field,
            )

    index = _name_index(nodes)
    for fa, node in pending:
        deps = tuple(
            dict.fromkeys(_resolve_dep(dep, index, nodes, node) for dep in fa.definition.deps)
        )
        mappings = {
            _resolve_dep(dep, index, nodes, node): m
            for dep, m in fa.definition.dep_mappings.items()
        }
        nodes[node.key] = dataclasses.replace(
            nodes[node.key], deps=deps, partition_mappings=mappings
        )

    graph = AssetGraph([*nodes.values(), *duplicates], dbt.checks)
    check_mappings(graph)
    return graph, python


def _name_index(nodes: dict[str, AssetNode]) -> dict[str, set[str]]:
    index: dict[str, set[str]] = {}
    for key, node in nodes.items():
        for alias in {key, node.name.lower(), *(s.lower() for s in node.source_names)}:
            index.setdefault(alias, set()).add(key)
    return index


def _resolve_dep(
    dep: str, index: dict[str, set[str]], nodes: dict[str, AssetNode], node: AssetNode
) -> str:
    wanted = dep.lower()
    if wanted in nodes:
        return wanted
    matches = index.get(wanted, set())
    if len(matches) == 1:
        return next(iter(matches))
    where = f"{node.file}:{node.line}" if node.file else node.key
    if not matches:
        raise GraphError(
            f"Python asset {node.key!r} ({where}) depends on {dep!r}, which is no asset of "
            "this project. Use an asset key (`schema.name`), a dbt model/seed/snapshot name, "
            "or `source_name.table`; `sqlorch ls` lists them.",
            asset=node.key,
            file=node.file,
            line=node.line,
        )
    raise GraphError(
        f"Python asset {node.key!r} ({where}) depends on {dep!r}, which names several assets: "
        f"{', '.join(sorted(matches))}. Use the full `schema.name` key.",
        asset=node.key,
        file=node.file,
        line=node.line,
    )
