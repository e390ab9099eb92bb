"""dbt's seed materialization on PostgreSQL as sqlorch runs it natively.

dbt-postgres has no fast path: dbt-core's `create_csv_table` / `reset_csv_table` make or
empty the table (the columns from dbt's agate inference, sqlorch.dbt.seeds), then
`load_csv_rows` inserts agate's parsed values as bound parameters (`insert into ... values
(%s, ...)`), so a value reaches PostgreSQL as agate read it (a number as a Decimal, a date as
a date, `null`/`na`/empty as NULL), not as the CSV's text.
"""

from __future__ import annotations

from typing import Any

from sqlorch.execute.native_incremental import NativeWriteError
from sqlorch.execute.native_pg_names import quoted
from sqlorch.execute.native_writes import Write


def load_seed(con: Any, write: Write, existing: str | None) -> int:
    """Create or reset the seed's table and insert agate's rows; return the rows loaded."""
    assert write.seed is not None
    seed, cols = write.seed
    target = quoted(write.relation)
    if existing == "view":
        raise NativeWriteError(f"Cannot seed to '{target}', it is a view")
    if existing is not None and not seed.should_full_refresh(write.full_refresh):
        con.execute(f"truncate table {target}")
    else:
        if existing is not None:
            con.execute(f"drop table if exists {target} cascade")
        body = ", ".join(f"{name} {kind}" for name, kind in cols)
        con.execute(f"create table {target} ({body})")
    rows = seed.rows()
    if rows:
        names = ", ".join(name for name, _kind in cols)
        marks = ", ".join(["%s"] * len(cols))
        with con.cursor() as cur:
            cur.executemany(f"insert into {target} ({names}) values ({marks})", rows)
    return len(rows)
