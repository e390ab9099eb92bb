"""Evaluate parsed selections over the graph: methods, graph operators, set algebra.

`+x`/`x+N` walk ancestors/descendants (within N hops), `@x` adds the ancestors of x's
descendants; comma-joined criteria intersect, space-separated specs unite, `--exclude`
subtracts. An empty selection is an error that says why and suggests close names.
Pure: the graph and the expressions in, a set of keys out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from sqlorch.core.graph import AssetGraph, AssetKind
from sqlorch.core.selection.methods import FILE_SUFFIXES, Index, StateSets, match_method
from sqlorch.core.selection.parse import Criterion, Spec, parse_items
from sqlorch.errors import SelectionError


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
    include_specs = parse_items(select, "--select") if select else None
    exclude_specs = parse_items(exclude, "--exclude") if exclude else []
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


class _Evaluator:
    """Evaluates parsed selectors over one graph, caching each criterion's result."""

    def __init__(self, graph: AssetGraph, state: StateSets | None = None) -> None:
        self.graph = graph
        self.state = state
        self.index = Index(graph)
        self.direct: dict[str, set[str]] = {}
        self.cache: dict[Criterion, set[str]] = {}

    def union(self, specs: Sequence[Spec]) -> tuple[set[str], list[str]]:
        """Return the union of `specs`, and the raw specs that selected nothing."""
        result: set[str] = set()
        unmatched: list[str] = []
        for spec in specs:
            keys = self.intersection(spec)
            if not keys:
                unmatched.append(spec.raw)
            result |= keys
        return result, unmatched

    def intersection(self, spec: Spec) -> set[str]:
        """Return the assets every criterion of `spec` selects."""
        result = self.criterion(spec.criteria[0])
        for criterion in spec.criteria[1:]:
            result = result & self.criterion(criterion)
        return result

    def criterion(self, criterion: Criterion) -> set[str]:
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

    def matches(self, criterion: Criterion) -> set[str]:
        """Return the assets the method and value of `criterion` match (no operators)."""
        c = criterion
        return match_method(self.index, c.method, c.argument, c.value, c.raw, self.state)


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


# -- errors ----------------------------------------------------------------------------------


def _empty_message(
    evaluator: _Evaluator,
    include: list[Spec] | None,
    exclude: list[Spec],
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
        if "/" in criterion.value or criterion.value.endswith(FILE_SUFFIXES):
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
