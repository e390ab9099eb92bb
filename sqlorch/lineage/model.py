"""Lineage as data: edges between columns, per model and per column (pure, JSON-ready)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Transform(StrEnum):
    """How an upstream column reaches a downstream one."""

    COPY = "copy"
    EXPRESSION = "expression"
    AGGREGATION = "aggregation"
    WINDOW = "window"
    FILTER = "filter"
    JOIN_KEY = "join_key"
    GROUP_KEY = "group_key"
    SNAPSHOT = "snapshot"
    PYTHON = "python"

    @property
    def is_key(self) -> bool:
        """True for columns that shape the rows (filters, join and group keys), not values."""
        return self in (Transform.FILTER, Transform.JOIN_KEY, Transform.GROUP_KEY)


@dataclass(frozen=True, slots=True)
class Edge:
    """An upstream column (`table` is an asset key) and how it is used."""

    table: str
    column: str
    transform: Transform

    @property
    def ref(self) -> str:
        """`schema.name.column`."""
        return f"{self.table}.{self.column}"


@dataclass(frozen=True, slots=True)
class ColumnLineage:
    """One output column: its direct upstream columns, or why they are unknown."""

    name: str
    upstream: tuple[Edge, ...] = ()
    error: str | None = None
    #: a hash of every expression the column goes through: a changed derivation changes it
    fingerprint: str = ""


@dataclass(frozen=True, slots=True)
class ModelLineage:
    """The lineage of one asset's SQL.

    `keys` are the upstream columns the query filters, joins or groups on (they shape every
    output row); `tables` every relation it reads; `unknown_tables` those whose columns were
    not known; `error` set when the whole query could not be traced.
    """

    columns: tuple[ColumnLineage, ...] = ()
    keys: tuple[Edge, ...] = ()
    tables: tuple[str, ...] = ()
    unknown_tables: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    error: str | None = None
    #: a hash of the query's filters, joins and groupings (they shape every row)
    keys_fingerprint: str = ""
    #: a `SELECT *` could not be expanded: `columns` lists only the named ones
    incomplete: bool = False

    def column(self, name: str) -> ColumnLineage | None:
        """Return the lineage of output column `name` (case-insensitive)."""
        wanted = name.lower()
        for c in self.columns:
            if c.name.lower() == wanted:
                return c
        return None

    @property
    def column_names(self) -> list[str]:
        """The output columns, in order."""
        return [c.name for c in self.columns]

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready document (see `from_json`)."""
        return {
            "columns": [
                {
                    "name": c.name,
                    "upstream": [[e.table, e.column, e.transform.value] for e in c.upstream],
                    "error": c.error,
                    "fingerprint": c.fingerprint,
                }
                for c in self.columns
            ],
            "keys": [[e.table, e.column, e.transform.value] for e in self.keys],
            "tables": list(self.tables),
            "unknown_tables": list(self.unknown_tables),
            "notes": list(self.notes),
            "error": self.error,
            "keys_fingerprint": self.keys_fingerprint,
            "incomplete": self.incomplete,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ModelLineage:
        """Rebuild a `ModelLineage` from `to_json` output."""
        return cls(
            columns=tuple(
                ColumnLineage(
                    name=c["name"],
                    upstream=tuple(Edge(t, col, Transform(k)) for t, col, k in c["upstream"]),
                    error=c.get("error"),
                    fingerprint=c.get("fingerprint", ""),
                )
                for c in doc.get("columns", ())
            ),
            keys=tuple(Edge(t, col, Transform(k)) for t, col, k in doc.get("keys", ())),
            tables=tuple(doc.get("tables", ())),
            unknown_tables=tuple(doc.get("unknown_tables", ())),
            notes=tuple(doc.get("notes", ())),
            error=doc.get("error"),
            keys_fingerprint=doc.get("keys_fingerprint", ""),
            incomplete=bool(doc.get("incomplete")),
        )
