"""dbt's error messages told in the user's terms: source-file lines, seed rows as people count."""

from __future__ import annotations

import re
from pathlib import Path

_SEED_ROW = re.compile(r"Row (\d+) has (\d+) values, but Table only has (\d+) columns")
_SQL_LINE = re.compile(r"LINE (\d+):\s*(.+?)\s*(?:\^|$)")


def in_user_terms(message: str, file: str | None, root: Path | None = None) -> str:
    """Rewrite `message` (what dbt said about the node defined in `file`) for its author.

    A seed's bad row is numbered as people count it, with its line in the CSV (dbt counts data
    rows from 0); a line number of the SQL dbt ran ("LINE 9:") also names the line of the
    model's own file that holds that text, when exactly one does.
    """
    if not file:
        return message

    def seed_row(m: re.Match[str]) -> str:
        row = int(m.group(1))
        return (
            f"Row {row + 1} (line {row + 2} of {file}) has {m.group(2)} values, but the "
            f"header has only {m.group(3)} columns"
        )

    message = _SEED_ROW.sub(seed_row, message)
    found = _SQL_LINE.search(message)
    if found is None:
        return message
    path = (root or Path.cwd()) / file
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return message
    snippet = " ".join(found.group(2).split())
    hits = [i for i, line in enumerate(lines, 1) if snippet and snippet in " ".join(line.split())]
    if len(hits) != 1:
        return message
    at = found.end(2)
    return (
        f"{message[:at]} (line {found.group(1)} of the SQL dbt ran is line {hits[0]} of {file})"
        f"{message[at:]}"
    )
