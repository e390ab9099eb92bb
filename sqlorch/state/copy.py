"""Copy a SQLite state store into a PostgreSQL one (`sqlorch state copy`).

Every table of the SQLite store is copied row for row, in its rowid order, into the
PostgreSQL store of the same schema version, in one transaction: ids are kept (and the
identity columns moved past them), so runs, events, materializations, check results, code
versions and ledgers read the same on both. A target that already holds runs is refused.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sqlorch.errors import StateError
from sqlorch.state.postgres import PostgresStateStore
from sqlorch.state.sqlite import SqliteStateStore


@dataclass(frozen=True, slots=True)
class CopyReport:
    """What a copy moved: rows per table."""

    rows: dict[str, int]


def copy_sqlite_to_postgres(source: Path, url: str) -> CopyReport:
    """Copy the SQLite store at `source` into the (empty) PostgreSQL store at `url`.

    Raises:
        StateError: the source does not exist, the target holds runs already, or either
            cannot be opened (nothing is written then).
    """
    if not source.is_file():
        raise StateError(f"There is no SQLite state store at {source}: nothing to copy.")
    SqliteStateStore(source).close()  # brings the source to the current schema
    target = PostgresStateStore(url)
    try:
        if target.runs(limit=1):
            raise StateError(
                f"The state store {target.location} already holds runs; copy only into an "
                "empty one (another schema: add `?schema=NAME` to the URL). Nothing was written."
            )
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        try:
            return _copy(src, target)
        finally:
            src.close()
    finally:
        target.close()


def _copy(src: sqlite3.Connection, target: PostgresStateStore) -> CopyReport:
    tables = [
        r[0]
        for r in src.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "AND name != 'schema_version' ORDER BY name"
        )
    ]
    assert target._con is not None
    con = target._con.con  # type: ignore[attr-defined]
    counts: dict[str, int] = {}
    con.execute("BEGIN")
    try:
        for table in tables:
            columns = [r[1] for r in src.execute(f'PRAGMA table_info("{table}")')]
            names = ", ".join(f'"{c}"' for c in columns)
            marks = ", ".join("%s" for _ in columns)
            rows = src.execute(f'SELECT {names} FROM "{table}" ORDER BY rowid').fetchall()
            with con.cursor() as cur:
                if rows:
                    cur.executemany(f'INSERT INTO "{table}" ({names}) VALUES ({marks})', rows)
            if "id" in columns:
                con.execute(
                    f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), "
                    f'coalesce((SELECT max(id) FROM "{table}"), 0) + 1, false)'
                )
            counts[table] = len(rows)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return CopyReport(counts)
