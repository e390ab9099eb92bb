"""dbt's node selection grammar over the merged asset graph.

`-s` items are unions of space-separated selectors; a comma joins selectors into an
intersection; `--exclude` items are subtracted. A selector is

    [@][N+]method:value[+N]        e.g. +fct_delays, tag:nightly+, 2+path:models/marts, @stg_x

with dbt's methods (`tag`, `path`, `file`, `source`, `package`, `fqn`, `config.<key>`,
`resource_type`) plus `kind`. A selector without a method matches an asset key
(`schema.name`), an asset name or a dbt fqn; one containing "/" is a path and one ending in
.sql/.py/.csv a file name, as in dbt. Matching is case-insensitive; shell wildcards work in
every value.

Pure: the graph and the expressions in, a set of keys out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import translate
from functools import cached_property
from typing import TypeVar

from sqlorch.core.graph import AssetGraph, AssetKind
from sqlorch.errors import SelectionError

__all__ = ["METHODS", "Selection", "resolve_selection", "select"]

METHODS: tuple[str, ...] = tuple(
    "config file fqn kind package path resource_type result source source_status state tag".split()
)
"""The selection methods sqlorch understands (`config` takes a key: `config.materialized`)."""

_CONFIG_KEYS = ("materialized", "schema", "tags")

# dbt methods that have no meaning in sqlorch's asset graph, with what to do instead.
_NO_SUCH_NODES = "sqlorch's asset graph has no such nodes"
_TESTS_RUN = "tests run with the assets they test"
_DBT_ONLY_METHODS = {
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

_KIND_VALUES: dict[str, frozenset[AssetKind]] = {
    **{kind.value: frozenset({kind}) for kind in AssetKind},
    "dbt": frozenset(kind for kind in AssetKind if kind.is_dbt),
}

_WILDCARD = re.compile(r"[*?\[\]]")
_DEPTH = re.compile(r"[0-9]*")
_NUMBERISH = re.compile(r"[-+]?[0-9]*\.?[0-9]+(e[-+]?[0-9]+)?", re.IGNORECASE)
_METHOD = re.compile(r"([\w.]+):(.*)", re.DOTALL)
_FILE_SUFFIXES = (".sql", ".py", ".csv")
_T = TypeVar("_T")

_GRAMMAR = (
    "A selector is `[@][N+]name[+N]`: `+` goes only at the start (`+x`: x and its ancestors, "
    "`2+x`: up to 2 levels up) or the end (`x+`, `x+1`) and a depth is a whole number; `@x` "
    "is x, its descendants and their ancestors. Separate selectors with a space (union) or a "
    "comma (intersection)."
)


@dataclass(frozen=True, slots=True)
class Selection:
    """The outcome of a selection: the keys, and which selectors matched nothing.

    `unmatched` holds the space-separated `-s` selectors (an intersection counts as one) that
    selected no asset, `unmatched_exclude` the same for `--exclude`; dbt only warns about them,
    and so should the CLI.
    """

    keys: frozenset[str]
    unmatched: tuple[str, ...] = ()
    unmatched_exclude: tuple[str, ...] = ()


def select(
    graph: AssetGraph,
    select: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    *,
    state: StateSets | None = None,
) -> set[str]:
    """Return the keys of the assets that `select` minus `exclude` selects.

    Args:
        graph: the merged asset graph.
        select: `-s` items, each one or more space-separated selectors; None or empty
            selects every asset.
        exclude: `--exclude` items, subtracted from the selection.

    Returns:
        The selected asset keys.

    Raises:
        SelectionError: a selector is malformed, or the selection is empty.
    """
    return set(resolve_selection(graph, select, exclude, state=state).keys)


def resolve_selection(
    graph: AssetGraph,
    select: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    *,
    state: StateSets | None = None,
) -> Selection:
    """Select like `select`, and also report the selectors that matched nothing.

    Args:
        graph: the merged asset graph.
        select: `-s` items; None or empty selects every asset.
        exclude: `--exclude` items.
        state: the asset sets of the `state:`, `result:` and `source_status:` methods
            (required when a selector uses them).

    Returns:
        The keys and the unmatched selectors, for the caller to warn about.

    Raises:
        SelectionError: a selector is malformed, or the selection is empty.
    """
    include_specs = _parse_items(select, "--select") if select else None
    exclude_specs = _parse_items(exclude, "--exclude") if exclude else []
    if not graph.assets:
        raise SelectionError(
            "Nothing to select: the project has no assets. Add Python assets under the "
            "ingest paths or dbt models, then check with `sqlorch ls`.",
        )
    evaluator = _Evaluator(graph, state)
    if include_specs is None:
        included = set(graph.assets)
        unmatched: list[str] = []
    else:
        included, unmatched = evaluator.union(include_specs)
    excluded, unmatched_exclude = evaluator.union(exclude_specs)
    keys = included - excluded
    if not keys:
        raise SelectionError(_empty_message(evaluator, include_specs, exclude_specs, included))
    return Selection(frozenset(keys), tuple(unmatched), tuple(unmatched_exclude))


# -- parsing ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Criterion:
    """One selector: a method and value, and its graph operators."""

    raw: str
    method: str | None
    argument: str | None
    value: str
    parents: bool = False
    parents_depth: int | None = None
    children: bool = False
    children_depth: int | None = None
    childrens_parents: bool = False


@dataclass(frozen=True, slots=True)
class _Spec:
    """A space-separated selector: the intersection of its comma-separated criteria."""

    raw: str
    criteria: tuple[_Criterion, ...]


def _parse_items(items: Iterable[str], option: str) -> list[_Spec]:
    specs = [_parse_spec(raw, option) for item in items for raw in item.split()]
    if not specs:
        raise SelectionError(
            f"{option} was given an empty value. Pass at least one selector (e.g. "
            f"`{option} tag:nightly`), or leave {option} out."
        )
    return specs


def _parse_spec(raw: str, option: str) -> _Spec:
    parts = raw.split(",")
    if any(not part for part in parts):
        raise SelectionError(
            f"Invalid selector {raw!r} in {option}: a comma joins two selectors into an "
            "intersection and cannot be first, last or doubled. " + _GRAMMAR
        )
    return _Spec(raw, tuple(_parse_criterion(part, option) for part in parts))


def _parse_criterion(raw: str, option: str) -> _Criterion:
    def bad(reason: str) -> SelectionError:
        return SelectionError(f"Invalid selector {raw!r} in {option}: {reason}. {_GRAMMAR}")

    text = raw
    at = text.startswith("@")
    if at:
        text = text[1:]
    pieces = text.split("+")
    before: str | None = None
    after: str | None = None
    if len(pieces) == 1:
        value = pieces[0]
    elif len(pieces) == 2:
        first, second = pieces
        if first == "" or (_is_depth(first) and second != ""):
            before, value = first, second
        elif second == "" or _is_depth(second):
            value, after = first, second
        else:
            for piece in (first, second):
                if _NUMBERISH.fullmatch(piece):
                    raise bad(f"the depth {piece!r} is not a whole number")
            raise bad("`+` goes only at the start or the end of a selector")
    elif len(pieces) == 3 and pieces[1]:
        before, value, after = pieces
    else:
        raise bad("it has too many `+` operators")
    for depth in (before, after):
        if depth is not None and not _is_depth(depth):
            raise bad(f"the depth {depth!r} is not a whole number")
    if not value:
        raise bad("there is no name to select")
    if "@" in value:
        raise bad("`@` can only be the first character of a selector")
    if at and after is not None:
        raise bad(
            "the `@` prefix and a `+` suffix cannot be combined (`@x` already includes "
            "every descendant of x)"
        )
    method, argument, value = _parse_method(raw, value, bad)
    return _Criterion(
        raw=raw,
        method=method,
        argument=argument,
        value=value.lower(),
        parents=before is not None,
        parents_depth=int(before) if before else None,
        children=after is not None,
        children_depth=int(after) if after else None,
        childrens_parents=at,
    )


def _parse_method(
    raw: str, text: str, bad: Callable[[str], SelectionError]
) -> tuple[str | None, str | None, str]:
    match = _METHOD.fullmatch(text)
    if match is None:
        return None, None, text
    spelled, value = match.group(1), match.group(2)
    name, _, argument = spelled.lower().partition(".")
    known = ", ".join(f"`{m}.<key>`" if m == "config" else f"`{m}:`" for m in METHODS)
    if name not in METHODS:
        if name in _DBT_ONLY_METHODS:
            hint = _DBT_ONLY_METHODS[name]
            raise SelectionError(
                f"The dbt selection method {name!r} in {raw!r} is not supported by sqlorch: "
                f"{hint}. Known methods: {known}; a selector without a method matches an "
                "asset key, name or dbt fqn."
            )
        raise SelectionError(
            f"Unknown selection method {name!r} in {raw!r}. Known methods: {known}; a "
            "selector without a method matches an asset key, name or dbt fqn."
        )
    if name == "config":
        if argument not in _CONFIG_KEYS:
            keys = ", ".join(f"`config.{k}:`" for k in _CONFIG_KEYS)
            what = f"the config key {argument!r}" if argument else "a config method without a key"
            raise SelectionError(
                f"Invalid selector {raw!r}: sqlorch does not know {what}. Use one of {keys}."
            )
    elif argument:
        raise bad(f"the method {name!r} takes no `.{argument}` argument")
    if not value:
        raise bad(f"the method {name!r} needs a value after the colon")
    if name in ("kind", "resource_type") and not _WILDCARD.search(value):
        if value.lower() not in _KIND_VALUES:
            kinds = ", ".join(_KIND_VALUES)
            raise SelectionError(
                f"Invalid selector {raw!r}: {value!r} is not an asset kind. Use one of "
                f"{kinds} (dbt's tests run with the assets they test)."
            )
    if name in STATE_VALUES and value.lower() not in STATE_VALUES[name]:
        values = "; ".join(f"`{name}:{v}` ({what})" for v, what in STATE_VALUES[name].items())
        raise SelectionError(f"Invalid selector {raw!r}: use one of {values}.")
    if name == "source" and value.count(".") > 2:
        raise SelectionError(
            f"Invalid selector {raw!r}: a source is selected as `source:source_name`, "
            "`source:source_name.table_name` or `source:package.source_name.table_name`."
        )
    return name, argument or None, value


def _is_depth(text: str) -> bool:
    return _DEPTH.fullmatch(text) is not None


# -- matching --------------------------------------------------------------------------------


def _matcher(pattern: str) -> Callable[[str], bool]:
    """Return a predicate for a shell-style pattern (plain equality when it has no wildcard)."""
    if not _WILDCARD.search(pattern):
        return pattern.__eq__
    regex = re.compile(translate(pattern))
    return lambda text: regex.match(text) is not None


def _path_matcher(pattern: str) -> Callable[[str], bool]:
    """Return a predicate: is a file at or under the path `pattern` (a glob, as in dbt)?"""
    pattern = pattern.replace("\\", "/").removeprefix("./").rstrip("/")
    if not pattern or pattern == ".":
        return bool
    if not _WILDCARD.search(pattern):
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


_Fqn = tuple[str, str]  # (the fqn joined with dots, its last element), lower-cased


def _fqn_matcher(selector: str) -> Callable[[_Fqn], bool]:
    """Return a predicate on a node's fqn, with the meaning of dbt's `is_selected_node`.

    The selector matches the fqn's last element, or a dot-separated prefix of the fqn; from
    its first part with a wildcard on, it is a pattern for the rest of the fqn (a selector
    without a dot may match the last element alone).
    """
    parts = selector.split(".")
    wild = next((i for i, part in enumerate(parts) if _WILDCARD.search(part)), None)
    if wild is None:
        below = selector + "."
        return lambda fqn: fqn[1] == selector or fqn[0] == selector or fqn[0].startswith(below)
    prefix, size = ".".join(parts[:wild]) + "." if wild else "", len(parts)
    rest = _matcher(".".join(parts[wild:]))
    last = _matcher(selector) if size == 1 else None

    def match(fqn: _Fqn) -> bool:
        joined, leaf = fqn
        if leaf == selector:
            return True
        if joined.count(".") + 1 < size or not joined.startswith(prefix):
            return False
        return rest(joined[len(prefix) :]) or (last is not None and last(leaf))

    return match


class _Index:
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
    def fqns(self) -> list[tuple[_Fqn, _Fqn | None] | None]:
        """Each fqn, and the fqn without its package (dbt matches both); None for sources."""
        out: list[tuple[_Fqn, _Fqn | None] | None] = []
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


class _Evaluator:
    """Evaluates parsed selectors over one graph, caching each criterion's result."""

    def __init__(self, graph: AssetGraph, state: StateSets | None = None) -> None:
        self.graph = graph
        self.state = state
        self.index = _Index(graph)
        self.direct: dict[str, set[str]] = {}
        self.cache: dict[_Criterion, set[str]] = {}

    def union(self, specs: Sequence[_Spec]) -> tuple[set[str], list[str]]:
        """Return the union of `specs`, and the raw specs that selected nothing."""
        result: set[str] = set()
        unmatched: list[str] = []
        for spec in specs:
            keys = self.intersection(spec)
            if not keys:
                unmatched.append(spec.raw)
            result |= keys
        return result, unmatched

    def intersection(self, spec: _Spec) -> set[str]:
        """Return the assets every criterion of `spec` selects."""
        result = self.criterion(spec.criteria[0])
        for criterion in spec.criteria[1:]:
            result = result & self.criterion(criterion)
        return result

    def criterion(self, criterion: _Criterion) -> set[str]:
        """Return the assets one criterion selects, graph operators applied."""
        if criterion in self.cache:
            return self.cache[criterion]
        direct = self.matches(criterion)
        self.direct[criterion.raw] = direct
        selected = set(direct)
        if criterion.childrens_parents:
            below = direct | _walk(direct, self.graph.children, None)
            selected |= below | _walk(below, self.graph.parents, None)
        if criterion.parents:
            selected |= _walk(direct, self.graph.parents, criterion.parents_depth)
        if criterion.children:
            selected |= _walk(direct, self.graph.children, criterion.children_depth)
        self.cache[criterion] = selected
        return selected

    def matches(self, criterion: _Criterion) -> set[str]:
        """Return the assets the method and value of `criterion` match (no operators)."""
        method, value, index = criterion.method, criterion.value, self.index
        if method is None:
            if value == "*":
                return set(index.keys)
            if "/" in value or "\\" in value:
                method = "path"
            elif value.endswith(_FILE_SUFFIXES):
                method = "file"
            else:
                return self.default(value)
        if method in STATE_VALUES:
            if self.state is None:
                raise SelectionError(
                    f"The selector {criterion.raw!r} needs the state store; this command "
                    "does not read it."
                )
            return set(self.state.get(f"{method}:{value.lower()}", ())) & set(index.keys)
        if method == "fqn":
            fqn = _fqn_matcher(value)
            return index.where(index.fqns, lambda fqns: _fqn_matches(fqn, fqns))
        if method == "path":
            return index.where(index.files, _path_matcher(value))
        match = _matcher(value)
        if method == "file":
            return index.where(index.files, lambda file: bool(file) and _file_matches(file, match))
        if method == "tag" or criterion.argument == "tags":
            return index.where(index.tags, lambda tags: any(match(tag) for tag in tags))
        if method == "package":
            return index.where(index.packages, match)
        if method in ("kind", "resource_type"):
            kinds = {kind for name, ks in _KIND_VALUES.items() if match(name) for kind in ks}
            return {node.key for node in index.nodes if node.kind in kinds}
        if method == "source":
            parts = value.split(".")
            pattern = ("*", *parts, "*") if len(parts) == 1 else ("*", *parts)[-3:]
            package, source, table = (_matcher(part) for part in pattern)
            return index.where(
                index.sources,
                lambda triples: any(package(p) and source(s) and table(t) for p, s, t in triples),
            )
        if criterion.argument == "materialized":
            return {n.key for n in index.nodes if n.materialized and match(n.materialized.lower())}
        return {n.key for n in index.nodes if match(n.schema.lower())}  # config.schema

    def default(self, value: str) -> set[str]:
        """Match an asset key or name, or a dbt fqn (dbt's default method, plus keys)."""
        index = self.index
        match, fqn = _matcher(value), _fqn_matcher(value)
        return {
            key
            for key, lkey, name, fqns in zip(
                index.keys, index.lkeys, index.names, index.fqns, strict=True
            )
            if match(lkey) or (name is not None and match(name)) or _fqn_matches(fqn, fqns)
        }


def _walk(start: set[str], step: Callable[[str], Iterable[str]], depth: int | None) -> set[str]:
    """Return the nodes within `depth` hops of `start` (`start` itself only if reached)."""
    seen: set[str] = set()
    frontier: set[str] = start
    hops = 0
    while frontier and (depth is None or hops < depth):
        hops += 1
        frontier = {n for key in frontier for n in step(key) if n not in seen}
        seen |= frontier
    return seen


def _fqn_matches(match: Callable[[_Fqn], bool], fqns: tuple[_Fqn, _Fqn | None] | None) -> bool:
    if fqns is None:
        return False
    scoped, unscoped = fqns
    return match(scoped) or (unscoped is not None and match(unscoped))


def _file_matches(file: str, match: Callable[[str], bool]) -> bool:
    name = file.rsplit("/", 1)[-1]
    return match(name) or match(name.rsplit(".", 1)[0])


# -- errors ----------------------------------------------------------------------------------


def _empty_message(
    evaluator: _Evaluator,
    include: list[_Spec] | None,
    exclude: list[_Spec],
    included: set[str],
) -> str:
    if included or include is None:
        removed = " ".join(s.raw for s in exclude)
        scope = (
            "in the project"
            if include is None
            else f"that {' '.join(s.raw for s in include)!r} selects"
        )
        return (
            f"The selection is empty: --exclude {removed!r} removes every one of the "
            f"{len(included)} asset(s) {scope}. Narrow the --exclude, or check what each side "
            "selects with `sqlorch ls -s ...`."
        )
    sentences: list[str] = []
    empty = [c.raw for spec in include for c in spec.criteria if not evaluator.direct[c.raw]]
    if empty:
        quoted = ", ".join(repr(raw) for raw in dict.fromkeys(empty))
        hints = "".join(_suggestion(evaluator, raw) for raw in dict.fromkeys(empty))
        sentences.append(f"No asset matches {quoted}.{hints}")
    disjoint = [
        spec.raw
        for spec in include
        if len(spec.criteria) > 1 and all(evaluator.direct[c.raw] for c in spec.criteria)
    ]
    if disjoint:
        quoted = ", ".join(repr(raw) for raw in disjoint)
        sentences.append(f"No asset is selected by every comma-separated part of {quoted}.")
    return " ".join(sentences) + (
        " `sqlorch ls` lists every asset with its key, kind, file and tags; a selector matches "
        "a key (`schema.name`), a name or a dbt fqn, or a `tag:`, `path:`, `source:`, `kind:` "
        "... value."
    )


def _suggestion(evaluator: _Evaluator, raw: str) -> str:
    from difflib import get_close_matches

    criterion = next(c for c in evaluator.cache if c.raw == raw)
    index = evaluator.index
    if criterion.method is None:
        if "/" in criterion.value or criterion.value.endswith(_FILE_SUFFIXES):
            return ""
        for node in index.nodes:
            if node.kind is AssetKind.SOURCE and node.name.lower() == criterion.value:
                return (
                    f" {raw!r} is a dbt source that no asset produces: select it by its key "
                    f"{node.key!r} or with `source:`."
                )
        pool = {name for name in index.names if name is not None} | set(index.lkeys)
    elif criterion.method == "tag":
        pool = {tag for tags in index.tags for tag in tags}
    else:
        return ""
    close = [repr(c) for c in get_close_matches(criterion.value, sorted(pool), n=3)]
    if not close:
        return ""
    options = close[0] if len(close) == 1 else f"{', '.join(close[:-1])} or {close[-1]}"
    return f" Did you mean {options} (for {raw!r})?"
