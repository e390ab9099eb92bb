"""Code versions: a hash of what determines an asset's output, kept as named parts.

An asset's code version combines named parts ("sql", "config", "macro:cents_to_dollars",
"var:start_date", "target", "source"). Keeping the parts, not only their combined hash, is
what lets `sqlorch status` say *which* input changed ("macro cents_to_dollars changed")
rather than only that something did.

SQL is normalized before hashing so formatting-only edits (whitespace, SQL and Jinja
comments) do not count as changes. dbt's raw code is Jinja-templated SQL, which no SQL
parser reads as such, so the normalization is lexical: it knows string literals, quoted
identifiers, Jinja blocks and both comment styles, and runs at regex speed.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

CodeParts = Mapping[str, str]

_TOKEN = re.compile(
    r"""
      (?P<jcomment>\{\#.*?\#\})
    | (?P<jinja>\{\{.*?\}\}|\{%.*?%\})
    | (?P<lcomment>--[^\n]*)
    | (?P<bcomment>/\*.*?\*/)
    | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|`[^`]*`)
    | (?P<space>\s+)
    """,
    re.VERBOSE | re.DOTALL,
)
_SPACE = re.compile(r"\s+")
# spaces next to these never matter in SQL (or in Jinja expressions)
_PUNCT_SPACE = re.compile(r" ?([(),;=<>+*/|%\[\]{}:.-]) ?")


def normalize_sql(text: str) -> str:
    """Return `text` with comments dropped and insignificant whitespace removed.

    String literals and quoted identifiers are kept exactly; Jinja blocks keep their content
    with whitespace collapsed. The result is only ever hashed, never executed.
    """
    out: list[str] = []
    code: list[str] = []  # the code since the last string literal, squashed as one

    def flush() -> None:
        out.append(_squash("".join(code)))
        code.clear()

    pos = 0
    for m in _TOKEN.finditer(text):
        code.append(text[pos : m.start()])
        kind = m.lastgroup
        if kind == "string":
            flush()
            out.append(m.group())
        elif kind == "jinja":
            code.append(_SPACE.sub(" ", m.group()))
        else:  # whitespace and comments
            code.append(" ")
        pos = m.end()
    code.append(text[pos:])
    flush()
    return "".join(out).strip()


def _part_order(name: str) -> tuple[int, str]:
    kind = name.partition(":")[0]
    order = ("sql", "source", "config", "macro", "var", "target")
    return (order.index(kind) if kind in order else len(order), name)


def _squash(text: str) -> str:
    return _PUNCT_SPACE.sub(r"\1", _SPACE.sub(" ", text))


def digest(value: Any) -> str:
    """Return a short stable hash of a JSON-able value or a string."""
    if not isinstance(value, str):
        value = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(value.encode()).hexdigest()[:16]


def combine(parts: CodeParts) -> str:
    """Return the code version that stands for all `parts`."""
    return digest(dict(parts))


def python_source_version(source: str) -> str:
    """Return the code version of a Python function's source.

    The source is compared as a syntax tree, so comments, blank lines and reformatting do
    not count as changes; source that does not parse (it always should) is hashed as text.
    """
    import ast
    import textwrap

    try:
        tree = ast.parse(textwrap.dedent(source))
    except SyntaxError:
        return digest(source)
    return digest(ast.dump(tree, annotate_fields=False, include_attributes=False))


def describe_changes(
    old: CodeParts | None,
    new: CodeParts,
    *,
    file: str | None,
    line: int | None = None,
) -> list[str]:
    """Return, for a person, what changed between two sets of code parts.

    Args:
        old: the parts recorded with the last materialization (None: not recorded).
        new: the current parts.
        file: the asset's file, named in "code changed (...)".
        line: the line of a Python asset's function.
    """
    where = f" ({file}:{line})" if file and line else f" ({file})" if file else ""
    if old is None:
        return [f"code changed{where}"]
    reasons: list[str] = []
    for name in sorted(set(old) | set(new), key=_part_order):
        if old.get(name) == new.get(name):
            continue
        kind, _, arg = name.partition(":")
        if kind in ("sql", "source"):
            reasons.append(f"code changed{where}")
        elif kind == "config":
            reasons.append(f"config changed{where}")
        elif kind == "macro":
            if name not in new:
                reasons.append(f"no longer calls macro {arg}")
            elif name not in old:
                reasons.append(f"now calls macro {arg}")
            else:
                reasons.append(f"macro {arg} changed")
        elif kind == "var":
            reasons.append(f"var {arg} changed")
        elif kind == "env":
            reasons.append(f"environment variable {arg} changed")
        elif kind == "target":
            reasons.append("target changed")
        elif kind == "graph":
            reasons.append(f"the project's nodes changed, and the code reads dbt's graph{where}")
        else:
            reasons.append(f"{name} changed")
    # a new macro call shows up in the SQL too; the SQL line says it first
    return list(dict.fromkeys(reasons)) or [f"code changed{where}"]
