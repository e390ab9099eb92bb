"""How dbt-postgres names relations: quoting, and suffixes cut to PostgreSQL's 63 characters."""

from __future__ import annotations

from collections.abc import Sequence

from sqlorch.execute.native_incremental import Relation

#: PostgreSQL's identifier limit (dbt-postgres's `relation_max_name_length`)
MAX_NAME = 63


def quoted(relation: Sequence[str | None]) -> str:
    """`"schema"."name"` (dbt-postgres renders no database; a part that is None is left out)."""
    return ".".join(ident(p) for p in relation[1:] if p is not None)


def ident(name: str) -> str:
    """A quoted identifier."""
    return '"' + name.replace('"', '""') + '"'


def with_suffix(relation: Relation, suffix: str) -> Relation:
    """dbt-postgres's `make_relation_with_suffix`: the name cut so name + suffix fit 63."""
    return (relation[0], relation[1], relation[2][: MAX_NAME - len(suffix)] + suffix)
