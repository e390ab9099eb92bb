"""`sqlorch verify` on PostgreSQL: two copies of the target database, compared relation by relation.

The target database is copied twice with `CREATE DATABASE ... TEMPLATE` (sources, seeds,
Python assets and every schema as they are, whatever `generate_schema_name` does), one copy
built by dbt and one as `sqlorch build` runs it. The copies are dropped at the next verify.
Facts per relation: kind, columns with PostgreSQL's own type names (`format_type`, so
`character varying(20)` and `numeric(10,2)` compare exactly), rows, and an order-free
content hash (the sum of each row's md5).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlorch.errors import ConfigError, WarehouseError

#: (kind or None, ((column, type), ...), rows, content hash): RelationFacts' fields
Facts = tuple[str | None, tuple[tuple[str, str], ...], int | None, str | None]
_KINDS = {"r": "table", "p": "table", "v": "view", "m": "materialized_view", "f": "table"}


def copy_name(dbname: str, mode: str) -> str:
    """The copy's database name (within PostgreSQL's 63 characters)."""
    suffix = f"__verify_{mode}"
    return dbname[: 63 - len(suffix)] + suffix


def copy_databases(options: Mapping[str, Any], modes: Sequence[str]) -> dict[str, str]:
    """Drop old copies and copy the target's database once per mode; mode -> database name.

    Raises:
        WarehouseError: the copy failed (another session uses the database, no CREATEDB).
    """
    import psycopg

    from sqlorch.warehouse.postgres import conninfo_of, conninfo_text, describe

    keywords = conninfo_of(options)
    source = keywords.get("dbname", "postgres")
    admin = {**keywords, "dbname": "postgres"}
    out: dict[str, str] = {}
    try:
        with psycopg.connect(conninfo_text(admin), autocommit=True) as con:
            for mode in modes:
                name = copy_name(source, mode)
                con.execute(f'drop database if exists "{name}" with (force)')
                con.execute(f'create database "{name}" template "{source}"')
                out[mode] = name
    except psycopg.Error as exc:
        password = keywords.get("password")
        text = str(exc).strip()
        if password:
            text = text.replace(password, "****")
        raise WarehouseError(
            f"`sqlorch verify` could not copy database {source!r} on PostgreSQL "
            f"{describe(keywords)}: {text}. It copies the target database twice with CREATE "
            "DATABASE ... TEMPLATE: the user needs CREATEDB, and no other session (a running "
            "`sqlorch dev` or `ui`, a SQL client) may be connected to the database."
        ) from None
    return out


def compare_databases(
    options: Mapping[str, Any],
    databases: tuple[str, str],
    relations: Mapping[str, tuple[tuple[str, str], tuple[str, str]]],
) -> dict[str, tuple[Facts, Facts]]:
    """Read the facts of each key's (schema, name) in each copy; key -> (first, second)."""
    import psycopg

    from sqlorch.warehouse.postgres import conninfo_of, conninfo_text

    keywords = conninfo_of(options)
    cons = [
        psycopg.connect(conninfo_text({**keywords, "dbname": db}), autocommit=True)
        for db in databases
    ]
    try:
        return {
            key: (relation_facts(cons[0], *pair[0]), relation_facts(cons[1], *pair[1]))
            for key, pair in relations.items()
        }
    finally:
        for con in cons:
            con.close()


def relation_facts(con: Any, schema: str, name: str) -> Facts:
    """Kind, columns (name, type) in order, rows and an order-free content hash."""
    row = con.execute(
        "select c.oid, c.relkind from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = %s and c.relname = %s",
        [schema, name],
    ).fetchone()
    if row is None:
        return (None, (), None, None)
    oid, kind = row
    columns = tuple(
        (str(c), str(t))
        for c, t in con.execute(
            "select attname, format_type(atttypid, atttypmod) from pg_attribute where "
            "attrelid = %s and attnum > 0 and not attisdropped order by attnum",
            [oid],
        ).fetchall()
    )
    target = '"' + schema.replace('"', '""') + '"."' + name.replace('"', '""') + '"'
    counted = con.execute(
        "select count(*), coalesce(sum(('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint), 0)"
        f" from {target} as t"
    ).fetchone()
    return (_KINDS.get(str(kind), str(kind)), columns, int(counted[0]), str(counted[1]))


def require_postgres_copyable(options: Mapping[str, Any]) -> None:
    """Refuse a target without a database name."""
    if not options.get("dbname") and not options.get("database"):
        raise ConfigError(
            "`sqlorch verify` on PostgreSQL copies the target's database: set `dbname` in the "
            "target of profiles.yml."
        )
