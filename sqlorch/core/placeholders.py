"""Query placeholders: sqlorch writes `?` (DuckDB's and SQLite's style); psycopg reads `%s`.

Shared by the PostgreSQL warehouse and the PostgreSQL state store, which translate the same
`?`-style SQL for psycopg. Pure text: no database is imported here.
"""

from __future__ import annotations

from collections.abc import Callable


def qmark_to_pyformat(sql: str) -> str:
    """Translate `?` placeholders (outside quotes) to psycopg's `%s`, escaping literal `%`.

    `?` inside single-quoted strings or double-quoted identifiers stays as it is; every `%`
    becomes `%%` (psycopg reads a query with parameters as a format string).
    """
    return fill_placeholders(sql, lambda: "%s", percent="%%")


def fill_placeholders(sql: str, fill: Callable[[], str], percent: str = "%") -> str:
    """Replace each `?` outside quotes with `fill()`, in order, and each `%` with `percent`."""
    out: list[str] = []
    quote: str | None = None
    for ch in sql:
        if quote:
            if ch == quote:
                quote = None
        elif ch in ("'", '"'):
            quote = ch
        elif ch == "?":
            out.append(fill())
            continue
        out.append(percent if ch == "%" else ch)
    return "".join(out)
