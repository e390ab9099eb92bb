"""Merge the dbt nodes and the discovered Python assets into one `AssetGraph`.

A dbt source whose relation another asset produces IS that asset; a source nothing produces
stays an observed-only node. A Python asset's `deps` name keys, dbt node names or
`source_name.table`, resolved here to keys.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlorch.core.graph import AssetGraph, AssetKind, AssetNode
from sqlorch.core.plan.partitions import check_mappings
from sqlorch.errors import ConfigError, GraphError
from sqlorch.load.discovery import FoundAsset

if TYPE_CHECKING:
    from sqlorch.dbt.manifest import DbtProject, DbtSource

_Pending = list[tuple[FoundAsset, AssetNode]]


def merge(
    dbt: DbtProject, found: list[FoundAsset], asset_schema: str
) -> tuple[AssetGraph, dict[str, FoundAsset]]:
    """Merge dbt nodes and Python assets into one graph.

    Returns:
        The graph, and the Python assets by key.

    Raises:
        ConfigError: a Python asset's key is not `schema.name`.
        GraphError: two assets produce one relation, or a dependency is unknown or ambiguous.
        PartitionError: a partition mapping cannot mean what it says.
    """
    nodes: dict[str, AssetNode] = {}
    for node in dbt.assets:
        nodes.setdefault(node.key, node)  # duplicates: AssetGraph reports both files
    duplicates = [n for n in dbt.assets if nodes[n.key] is not n]
    python, pending = _python_nodes(found, asset_schema)
    _add_python(nodes, pending)
    _add_sources(nodes, dbt.sources)
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


def _python_nodes(
    found: list[FoundAsset], asset_schema: str
) -> tuple[dict[str, FoundAsset], _Pending]:
    """Turn each `@asset` into a node (deps not yet resolved); refuse duplicate keys."""
    python: dict[str, FoundAsset] = {}
    pending: _Pending = []
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
    return python, pending


def _add_python(nodes: dict[str, AssetNode], pending: _Pending) -> None:
    """Add the Python nodes; refuse one that produces a dbt node's relation."""
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


def _add_sources(nodes: dict[str, AssetNode], sources: Sequence[DbtSource]) -> None:
    """Fold each dbt source into the asset producing its relation, else add it as observed."""
    for src in sources:
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
