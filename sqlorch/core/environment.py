"""Environments: one name that moves every relation sqlorch writes into schemas of its own.

A pull request builds in environment `pr_123`: the asset `marts.fct_delays` (its key, which
never changes) lands in the relation `pr_123__marts.fct_delays`. Python and dlt assets are
written there by sqlorch; dbt models get there through the project's `generate_schema_name`
and `source` macros, which call `sqlorch_schema_name` / `sqlorch_source` (the macros file
reads `SQLORCH_ENV`). Production is the environment with no name: relations are the keys.
The double underscore keeps an environment's schemas apart from every plain schema name,
so dropping an environment (`sqlorch env drop pr_123`) drops only `pr_123__*` schemas.
"""

from __future__ import annotations

from dataclasses import dataclass

#: between the environment's name and the production schema name
SEPARATOR = "__"


@dataclass(frozen=True, slots=True)
class Environment:
    """Where the relations of one environment live (a name of `[a-z][a-z0-9_]*`)."""

    name: str

    @property
    def prefix(self) -> str:
        """What the environment's schemas start with (`pr_123__`)."""
        return self.name + SEPARATOR

    def schema(self, schema: str) -> str:
        """The environment's schema standing for production's `schema`."""
        return self.prefix + schema

    def relation(self, key: str) -> str:
        """The `schema.name` relation of asset `key` in this environment."""
        schema, _, name = key.partition(".")
        return f"{self.schema(schema)}.{name}"

    def key(self, relation: str) -> str | None:
        """The asset key of an environment relation (None: not one of this environment's)."""
        if not relation.lower().startswith(self.prefix.lower()):
            return None
        return relation[len(self.prefix) :]

    def production_schema(self, schema: str) -> str:
        """Production's schema name behind `schema` (itself when it is not the environment's)."""
        if schema.lower().startswith(self.prefix.lower()):
            return schema[len(self.prefix) :]
        return schema
