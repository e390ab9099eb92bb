"""The asset graph: plain, immutable nodes and a small generic DAG over their keys.

Loaders produce an `AssetGraph`; nothing downstream knows where a node came from except
through its `kind`.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlorch.errors import GraphError

if TYPE_CHECKING:
    from sqlorch.core.partitions.definitions import PartitionsDefinition
    from sqlorch.core.partitions.mappings import PartitionMapping


class AssetKind(StrEnum):
    """What produces an asset."""

    PYTHON = "python"
    MODEL = "model"
    SEED = "seed"
    SNAPSHOT = "snapshot"
    SOURCE = "source"

    @property
    def is_dbt(self) -> bool:
        """True for the kinds dbt materializes (models, seeds, snapshots)."""
        return self in (AssetKind.MODEL, AssetKind.SEED, AssetKind.SNAPSHOT)


@dataclass(frozen=True, slots=True)
class Column:
    """A column of an asset, as far as it is known (type may be empty before materialization)."""

    name: str
    type: str = ""


@dataclass(frozen=True, slots=True)
class AssetNode:
    """One asset: a table (or view) sqlorch knows how to produce or observe.

    `key` is `schema.name` as the relation lands in the warehouse, lower-cased.
    `fqn` is the dbt-style fully qualified name used by name selection (`staging` selects
    every model under models/staging, as in dbt).
    """

    key: str
    kind: AssetKind
    name: str
    deps: tuple[str, ...] = ()
    fqn: tuple[str, ...] = ()
    file: str | None = None
    line: int | None = None
    description: str = ""
    tags: tuple[str, ...] = ()
    package: str | None = None
    unique_id: str | None = None
    source_ids: tuple[str, ...] = ()
    source_names: tuple[str, ...] = ()
    materialized: str | None = None
    partitions: PartitionsDefinition | None = None
    # upstream key -> how this asset's partitions read it (absent: the default mapping)
    partition_mappings: Mapping[str, PartitionMapping] = field(default_factory=dict)
    # partitions per dbt invocation / Python call (None: a whole range at once)
    max_partitions_per_run: int | None = None
    columns: tuple[Column, ...] = ()
    code_version: str | None = None
    pool: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    # the named inputs of `code_version` (see sqlorch.core.codeversion): what changed, not only that
    code_parts: Mapping[str, str] = field(default_factory=dict)
    # an observed source's dbt `loaded_at_field`: when its newest row arrived
    loaded_at_field: str | None = None
    #: deps found in compiled SQL, not declared with ref/source (a subset of `deps`)
    hidden_deps: tuple[str, ...] = ()

    @property
    def schema(self) -> str:
        """The schema part of the key."""
        return self.key.rsplit(".", 1)[0]

    @property
    def is_partitioned(self) -> bool:
        """True when the asset declares partitions."""
        return self.partitions is not None

    @property
    def is_materializable(self) -> bool:
        """True unless the asset is only observed (a source nothing produces)."""
        return self.kind is not AssetKind.SOURCE


class CheckKind(StrEnum):
    """What runs a check."""

    DBT_TEST = "dbt_test"
    UNIT_TEST = "unit_test"
    PYTHON = "python"
    BUILTIN = "builtin"

    @property
    def is_dbt(self) -> bool:
        """True for the checks dbt runs (data tests and unit tests)."""
        return self in (CheckKind.DBT_TEST, CheckKind.UNIT_TEST)


@dataclass(frozen=True, slots=True)
class CheckNode:
    """A check of one or more assets: a dbt data or unit test, a `@check`, or a built-in.

    `config` holds a built-in check's settings (`{"type": "row_count", "max_drop_pct": 50}`).
    """

    unique_id: str
    name: str
    asset_keys: tuple[str, ...]
    fqn: tuple[str, ...] = ()
    file: str | None = None
    severity: str = "error"
    tags: tuple[str, ...] = ()
    is_unit_test: bool = False
    kind: CheckKind = CheckKind.DBT_TEST
    line: int | None = None
    config: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_blocking(self) -> bool:
        """True when a failure stops the tested assets' downstream."""
        return self.severity.lower() == "error"

    @property
    def runs_in_dbt(self) -> bool:
        """True when dbt runs this check (inside a dbt invocation)."""
        return self.is_unit_test or CheckKind(self.kind).is_dbt


class AssetGraph:
    """A DAG of assets keyed by `schema.name`, with checks attached to the assets they test."""

    def __init__(self, assets: Iterable[AssetNode], checks: Iterable[CheckNode] = ()) -> None:
        self.assets: dict[str, AssetNode] = {}
        for node in assets:
            if node.key in self.assets:
                other = self.assets[node.key]
                raise GraphError(
                    f"Two assets produce the same relation {node.key!r}: "
                    f"{_describe(other)} and {_describe(node)}. Give one of them another "
                    "schema or name (for a dbt model: `alias` or `schema` in its config).",
                    asset=node.key,
                    file=node.file,
                )
            self.assets[node.key] = node
        self.checks: dict[str, CheckNode] = {c.unique_id: c for c in checks}
        self._children: dict[str, list[str]] = {k: [] for k in self.assets}
        for node in self.assets.values():
            for dep in node.deps:
                if dep not in self.assets:
                    raise GraphError(
                        f"{_describe(node)} depends on {dep!r}, which is not an asset of "
                        "this project. Check the name in its `deps` (Python) or its "
                        "ref/source (dbt); `sqlorch ls` lists every asset key.",
                        asset=node.key,
                        file=node.file,
                        line=node.line,
                    )
                self._children[dep].append(node.key)
        self._checks_by_asset: dict[str, list[CheckNode]] = {}
        for check in self.checks.values():
            for key in check.asset_keys:
                self._checks_by_asset.setdefault(key, []).append(check)
        self._order = self._toposort()

    def __contains__(self, key: object) -> bool:
        return key in self.assets

    def __iter__(self) -> Iterator[AssetNode]:
        return (self.assets[k] for k in self._order)

    def __len__(self) -> int:
        return len(self.assets)

    def parents(self, key: str) -> tuple[str, ...]:
        """Return the direct upstream keys of `key`."""
        return self.assets[key].deps

    def children(self, key: str) -> tuple[str, ...]:
        """Return the direct downstream keys of `key`."""
        return tuple(self._children[key])

    def checks_of(self, key: str) -> tuple[CheckNode, ...]:
        """Return the checks that test `key`."""
        return tuple(self._checks_by_asset.get(key, ()))

    def ancestors(self, key: str, depth: int | None = None) -> set[str]:
        """Return every upstream key of `key` (within `depth` hops when given)."""
        return self._walk(key, self.parents, depth)

    def descendants(self, key: str, depth: int | None = None) -> set[str]:
        """Return every downstream key of `key` (within `depth` hops when given)."""
        return self._walk(key, self.children, depth)

    def topological(self, keys: Iterable[str] | None = None) -> list[str]:
        """Return `keys` (default: all) in a deterministic dependency order."""
        if keys is None:
            return list(self._order)
        wanted = set(keys)
        return [k for k in self._order if k in wanted]

    def _walk(self, key: str, step: Any, depth: int | None) -> set[str]:
        seen: set[str] = set()
        frontier = [key]
        hops = 0
        while frontier and (depth is None or hops < depth):
            hops += 1
            nxt: list[str] = []
            for k in frontier:
                for n in step(k):
                    if n not in seen:
                        seen.add(n)
                        nxt.append(n)
            frontier = nxt
        return seen

    def _toposort(self) -> list[str]:
        indegree = {k: len(set(n.deps)) for k, n in self.assets.items()}
        ready = [k for k, d in indegree.items() if d == 0]
        heapq.heapify(ready)
        order: list[str] = []
        while ready:
            key = heapq.heappop(ready)
            order.append(key)
            for child in set(self._children[key]):
                indegree[child] -= 1
                if indegree[child] == 0:
                    heapq.heappush(ready, child)
        if len(order) != len(self.assets):
            cycle = find_cycle({k: self.assets[k].deps for k in self.assets if k not in order})
            path = " -> ".join(cycle)
            first = self.assets[cycle[0]]
            where = "; ".join(
                f"{k}: {_where(self.assets[k])}" for k in cycle[:-1] if self.assets[k].file
            )
            raise GraphError(
                f"The asset graph has a cycle: {path}"
                + (f" ({where})" if where else "")
                + ". An asset cannot depend on itself, "
                "directly or through others; remove one of these dependencies (a ref, a "
                "source, or a Python asset's `deps`).",
                asset=first.key,
                file=first.file,
            )
        return order


def find_cycle(deps: Mapping[str, Iterable[str]]) -> list[str]:
    """Return one cycle of the graph `deps` as a path that starts and ends on the same key."""
    color: dict[str, int] = {}
    stack: list[str] = []

    def visit(key: str) -> list[str] | None:
        color[key] = 1
        stack.append(key)
        for dep in sorted(deps.get(key, ())):
            if dep not in deps:
                continue
            if color.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if dep not in color:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        color[key] = 2
        return None

    for key in sorted(deps):
        if key not in color:
            found = visit(key)
            if found:
                # deps point upstream; show the cycle in data-flow order
                return list(reversed(found))
    return []


def _where(node: AssetNode) -> str:
    return f"{node.file}{':' + str(node.line) if node.line else ''}" if node.file else ""


def _describe(node: AssetNode) -> str:
    where = f" ({_where(node)})" if node.file else ""
    return f"{node.kind.value} {node.name!r}{where}"
