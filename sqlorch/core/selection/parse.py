"""Parse dbt's selection grammar: `-s`/`--exclude` items -> specs of criteria.

A selector is `[@][N+]method:value[+N]`; space-separated selectors are a union, and a comma
joins selectors into an intersection. Errors name the bad token and show the grammar.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlorch.core.selection.methods import (
    CONFIG_KEYS,
    DBT_ONLY_METHODS,
    KIND_VALUES,
    METHODS,
    STATE_VALUES,
    WILDCARD,
)
from sqlorch.errors import SelectionError

_DEPTH = re.compile(r"[0-9]*")
_NUMBERISH = re.compile(r"[-+]?[0-9]*\.?[0-9]+(e[-+]?[0-9]+)?", re.IGNORECASE)
_METHOD = re.compile(r"([\w.]+):(.*)", re.DOTALL)

GRAMMAR = (
    "A selector is `[@][N+]name[+N]`: `+` goes only at the start (`+x`: x and its ancestors, "
    "`2+x`: up to 2 levels up) or the end (`x+`, `x+1`) and a depth is a whole number; `@x` "
    "is x, its descendants and their ancestors. Separate selectors with a space (union) or a "
    "comma (intersection)."
)


@dataclass(frozen=True, slots=True)
class Criterion:
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
class Spec:
    """A space-separated selector: the intersection of its comma-separated criteria."""

    raw: str
    criteria: tuple[Criterion, ...]


def parse_items(items: Iterable[str], option: str) -> list[Spec]:
    specs = [_parse_spec(raw, option) for item in items for raw in item.split()]
    if not specs:
        raise SelectionError(
            f"{option} was given an empty value. Pass at least one selector (e.g. "
            f"`{option} tag:nightly`), or leave {option} out."
        )
    return specs


def _parse_spec(raw: str, option: str) -> Spec:
    parts = raw.split(",")
    if any(not part for part in parts):
        raise SelectionError(
            f"Invalid selector {raw!r} in {option}: a comma joins two selectors into an "
            "intersection and cannot be first, last or doubled. " + GRAMMAR
        )
    return Spec(raw, tuple(_parse_criterion(part, option) for part in parts))


def _parse_criterion(raw: str, option: str) -> Criterion:
    def bad(reason: str) -> SelectionError:
        return SelectionError(f"Invalid selector {raw!r} in {option}: {reason}. {GRAMMAR}")

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
    return Criterion(
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
        if name in DBT_ONLY_METHODS:
            hint = DBT_ONLY_METHODS[name]
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
        if argument not in CONFIG_KEYS:
            keys = ", ".join(f"`config.{k}:`" for k in CONFIG_KEYS)
            what = f"the config key {argument!r}" if argument else "a config method without a key"
            raise SelectionError(
                f"Invalid selector {raw!r}: sqlorch does not know {what}. Use one of {keys}."
            )
    elif argument:
        raise bad(f"the method {name!r} takes no `.{argument}` argument")
    if not value:
        raise bad(f"the method {name!r} needs a value after the colon")
    if name in ("kind", "resource_type") and not WILDCARD.search(value):
        if value.lower() not in KIND_VALUES:
            kinds = ", ".join(KIND_VALUES)
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
