"""Selection methods: dbt's `name`, `tag:`, `path:`, `file:`, `source:`, `fqn:`, `config.`,
`kind:`/`resource_type:` and the state methods, as matchers over the graph's attributes.

Matching is case-insensitive; shell wildcards work in every value. Pure: the graph in, keys out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from fnmatch import translate
from functools import cached_property
from typing import TypeVar

from sqlorch.core.graph import AssetGraph, AssetKind
from sqlorch.errors import SelectionError

METHODS: tuple[str, ...] = tuple(
    "config file fqn kind package path resource_type result source source_status state tag".split()
)
"""The selection methods sqlorch understands (`config` takes a key: `config.materialized`)."""

CONFIG_KEYS = ("materialized", "schema", "tags")

# dbt methods that have no meaning in sqlorch's asset graph, with what to do instead.
_NO_SUCH_NODES = "sqlorch's asset graph has no such nodes"
_TESTS_RUN = "tests run with the assets they test"
DBT_ONLY_METHODS = {
    **dict.fromkeys(("test_name", "test_type", "unit_test"), _TESTS_RUN),
    **dict.fromkeys(
        ("group", "access", "version", "exposure", "metric", "semantic_model", "saved_query"),
        _NO_SUCH_NODES,
    ),
}

# state methods: their values, and what each stands for (computed by the caller from state)
STATE_VALUES: dict[str, dict[str, str]] = {
    "state": {
        "modified": "new, or code changed since the last materialization",
        "new": "never materialized",
        "stale": "stale (see `sqlorch status`)",
    },
    "result": {
        "error": "failed in the last run",
        "fail": "failed in the last run",
        "skipped": "skipped in the last run",
        "success": "materialized in the last run",
    },
    "source_status": {"fresher": "an upstream asset was materialized after it"},
}
STATE_METHODS = tuple(f"{m}:" for m in STATE_VALUES)
StateSets = Mapping[str, "set[str] | frozenset[str]"]
"""`method:value` -> the asset keys it selects, for the state methods."""

KIND_VALUES: dict[str, frozenset[AssetKind]] = {
    **{kind.value: frozenset({kind}) for kind in AssetKind},
    "dbt": frozenset(kind for kind in AssetKind if kind.is_dbt),
}


WILDCARD = re.compile(r"[*?\[\]]")
FILE_SUFFIXES = (".sql", ".py", ".csv")
_T = TypeVar("_T")


def matcher(pattern: str) -> Callable[[str], bool]:
    """Return a predicate for a shell-style pattern (plain equality when it has no wildcard)."""
    if not WILDCARD.search(pattern):
        return pattern.__eq__
    regex = re.compile(translate(pattern))
    return lambda text: regex.match(text) is not None


def path_matcher(pattern: str) -> Callable[[str], bool]:
    """Return a predicate: is a file at or under the path `pattern` (a glob, as in dbt)?"""
    pattern = pattern.replace("\\", "/").removeprefix("./").rstrip("/")
    if not pattern or pattern == ".":
        return bool
    if not WILDCARD.search(pattern):
        prefix = pattern + "/"
        return lambda file: file == pattern or file.startswith(prefix)
    regex = re.compile(_glob_regex(pattern) + "(?:/.*)?", re.DOTALL)
    return lambda file: bool(file) and regex.fullmatch(file) is not None


def _glob_regex(pattern: str) -> str:
    """Translate a path glob: `*` and `?` stay within one folder, `**` spans folders."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 2 :]:
            end = pattern.index("]", i + 2)
            body = pattern[i + 1 : end]
            negate = body.startswith("!")
            out.append(("[^" if negate else "[") + re.escape(body[negate:]) + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)


Fqn = tuple[str, str]  # (the fqn joined with dots, its last element), lower-cased


def fqn_matcher(selector: str) -> Callable[[Fqn], bool]:
    """Return a predicate on a node's fqn, with the meaning of dbt's `is_selected_node`.

    The selector matches the fqn's last element, or a dot-separated prefix of the fqn; from
    its first part with a wildcard on, it is a pattern for the rest of the fqn (a selector
    without a dot may match the last element alone).
    """
    parts = selector.split(".")
    wild = next((i for i, part in enumerate(parts) if WILDCARD.search(part)), None)
    if wild is None:
        below = selector + "."
        return lambda fqn: fqn[1] == selector or fqn[0] == selector or fqn[0].startswith(below)
    prefix, size = ".".join(parts[:wild]) + "." if wild else "", len(parts)
    rest = matcher(".".join(parts[wild:]))
    last = matcher(selector) if size == 1 else None

    def match(fqn: Fqn) -> bool:
        joined, leaf = fqn
        if leaf == selector:
            return True
        if joined.count(".") + 1 < size or not joined.startswith(prefix):
            return False
        return rest(joined[len(prefix) :]) or (last is not None and last(leaf))

    return match


class Index:
    """The graph's selectable attributes, lower-cased, built once per selection on demand.

    Every column lists one value per asset, in the order of `keys`.
    """

    def __init__(self, graph: AssetGraph) -> None:
        self.nodes = list(graph.assets.values())
        self.keys = [node.key for node in self.nodes]

    @cached_property
    def lkeys(self) -> list[str]:
        return [key.lower() for key in self.keys]

    @cached_property
    def names(self) -> list[str | None]:
        """Names, None for sources (dbt selects a source by `source:` only)."""
        return [None if n.kind is AssetKind.SOURCE else n.name.lower() for n in self.nodes]

    @cached_property
    def fqns(self) -> list[tuple[Fqn, Fqn | None] | None]:
        """Each fqn, and the fqn without its package (dbt matches both); None for sources."""
        out: list[tuple[Fqn, Fqn | None] | None] = []
        for node in self.nodes:
            if node.kind is AssetKind.SOURCE:
                out.append(None)
                continue
            fqn = node.fqn or (node.name,)
            joined, leaf = ".".join(fqn).lower(), fqn[-1].lower()
            unscoped = (joined[len(fqn[0]) + 1 :], leaf) if len(fqn) > 1 else None
            out.append(((joined, leaf), unscoped))
        return out

    @cached_property
    def files(self) -> list[str]:
        return [(n.file or "").replace("\\", "/").removeprefix("./").lower() for n in self.nodes]

    @cached_property
    def tags(self) -> list[tuple[str, ...]]:
        return [tuple(tag.lower() for tag in n.tags) for n in self.nodes]

    @cached_property
    def packages(self) -> list[str]:
        return [(n.package or "").lower() for n in self.nodes]

    @cached_property
    def sources(self) -> list[tuple[tuple[str, str, str], ...]]:
        """The (package, source_name, table) of every dbt source each asset is."""
        out: list[tuple[tuple[str, str, str], ...]] = []
        for node, package in zip(self.nodes, self.packages, strict=True):
            triples: list[tuple[str, str, str]] = []
            for source_name in node.source_names:
                source, _, table = source_name.lower().partition(".")
                pkg = package
                for uid in node.source_ids:
                    parts = uid.lower().split(".")
                    if len(parts) == 4 and parts[2:] == [source, table]:
                        pkg = parts[1]
                triples.append((pkg, source, table))
            out.append(tuple(triples))
        return out

    def where(self, column: Sequence[_T], predicate: Callable[[_T], bool]) -> set[str]:
        """Return the keys whose value in `column` satisfies `predicate`."""
        return {key for key, value in zip(self.keys, column, strict=True) if predicate(value)}


def fqn_matches(match: Callable[[Fqn], bool], fqns: tuple[Fqn, Fqn | None] | None) -> bool:
    if fqns is None:
        return False
    scoped, unscoped = fqns
    return match(scoped) or (unscoped is not None and match(unscoped))


def _file_matches(file: str, match: Callable[[str], bool]) -> bool:
    name = file.rsplit("/", 1)[-1]
    return match(name) or match(name.rsplit(".", 1)[0])


def match_method(
    index: Index,
    method: str | None,
    argument: str | None,
    value: str,
    raw: str,
    state: StateSets | None = None,
) -> set[str]:
    """Return the assets that `method` (with its `argument`) and `value` match (no operators).

    A selector without a method matches everything for `*`, a path when it holds "/", a file
    name when it ends in .sql/.py/.csv, else a key, name or fqn (see `match_default`).

    Raises:
        SelectionError: a state method is used without the state sets.
    """
    if method is None:
        if value == "*":
            return set(index.keys)
        if "/" in value or "\\" in value:
            method = "path"
        elif value.endswith(FILE_SUFFIXES):
            method = "file"
        else:
            return match_default(index, value)
    if method in STATE_VALUES:
        if state is None:
            raise SelectionError(
                f"The selector {raw!r} needs the state store; this command does not read it."
            )
        return set(state.get(f"{method}:{value.lower()}", ())) & set(index.keys)
    if method == "fqn":
        fqn = fqn_matcher(value)
        return index.where(index.fqns, lambda fqns: fqn_matches(fqn, fqns))
    if method == "path":
        return index.where(index.files, path_matcher(value))
    match = matcher(value)
    if method == "file":
        return index.where(index.files, lambda file: bool(file) and _file_matches(file, match))
    if method == "tag" or argument == "tags":
        return index.where(index.tags, lambda tags: any(match(tag) for tag in tags))
    if method == "package":
        return index.where(index.packages, match)
    if method in ("kind", "resource_type"):
        kinds = {kind for name, ks in KIND_VALUES.items() if match(name) for kind in ks}
        return {node.key for node in index.nodes if node.kind in kinds}
    if method == "source":
        parts = value.split(".")
        pattern = ("*", *parts, "*") if len(parts) == 1 else ("*", *parts)[-3:]
        package, source, table = (matcher(part) for part in pattern)
        return index.where(
            index.sources,
            lambda triples: any(package(p) and source(s) and table(t) for p, s, t in triples),
        )
    if argument == "materialized":
        return {n.key for n in index.nodes if n.materialized and match(n.materialized.lower())}
    return {n.key for n in index.nodes if match(n.schema.lower())}  # config.schema


def match_default(index: Index, value: str) -> set[str]:
    """Match an asset key or name, or a dbt fqn (dbt's default method, plus keys)."""
    match, fqn = matcher(value), fqn_matcher(value)
    return {
        key
        for key, lkey, name, fqns in zip(
            index.keys, index.lkeys, index.names, index.fqns, strict=True
        )
        if match(lkey) or (name is not None and match(name)) or fqn_matches(fqn, fqns)
    }
