"""dbt seeds as dbt-duckdb loads them: agate infers the column types, DuckDB's COPY loads the file.

dbt's seed materialization reads the CSV with agate (dbt_common's `from_csv`, the same call
dbt makes, so the column names and inferred types are dbt's), creates the table from those
types (`column_types` overrides them, `quote_columns` decides the quoting), or truncates the
existing table (no full refresh), then dbt-duckdb's fast path loads the file with
`COPY ... (FORMAT CSV, HEADER TRUE, DELIMITER ...)`. The inferred columns are cached per
file content and configuration, so an unchanged seed needs neither dbt nor agate.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMAT = 1


@dataclass(frozen=True, slots=True)
class Seed:
    """A seed's configuration, as dbt's seed materialization reads it."""

    path: str  # root_path / original_file_path (dbt-duckdb's get_seed_file_path)
    delimiter: str
    column_types: dict[str, str]
    quote_columns: bool | None
    full_refresh: bool | None

    @classmethod
    def of(cls, facts: Mapping[str, Any]) -> Seed:
        """Read the facts `seed_facts` wrote into a node's metadata."""
        return cls(
            path=str(facts["path"]),
            delimiter=str(facts["delimiter"]),
            column_types=dict(facts.get("column_types") or {}),
            quote_columns=facts.get("quote_columns"),
            full_refresh=facts.get("full_refresh"),
        )

    def inputs(self) -> str | None:
        """The digest the inferred columns are valid for (None: the file cannot be read)."""
        try:
            data = Path(self.path).read_bytes()
        except OSError:
            return None
        config = json.dumps([self.delimiter, self.column_types, self.quote_columns])
        text = hashlib.sha256(data).hexdigest() + config + str(FORMAT)
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def columns(self) -> list[tuple[str, str]]:
        """The table's columns as dbt's `create_csv_table` writes them: (rendered name, type).

        Raises:
            ValueError: agate cannot read the file (dbt then runs the seed and says why).
        """
        import agate
        from dbt_common.clients.agate_helper import Integer, from_csv

        table = from_csv(self.path, text_columns=self.column_types, delimiter=self.delimiter)
        out = []
        for i, name in enumerate(table.column_names):
            kind = table.column_types[i]
            inferred: str | None
            if isinstance(kind, Integer):
                inferred = "integer"
            elif isinstance(kind, agate.Text):
                inferred = "text"
            elif isinstance(kind, agate.Number):
                decimals = table.aggregate(agate.MaxPrecision(i))
                inferred = "float8" if decimals else "integer"
            elif isinstance(kind, agate.Boolean):
                inferred = "boolean"
            elif isinstance(kind, agate.DateTime):
                inferred = "timestamp without time zone"
            elif isinstance(kind, agate.Date):
                inferred = "date"
            elif isinstance(kind, agate.TimeDelta):
                inferred = "time"
            else:
                inferred = None
            column = str(name)
            rendered = column if self.quote_columns is False else _quote(column)
            out.append((rendered, str(self.column_types.get(name, inferred))))
        return out

    def rows(self) -> list[tuple[Any, ...]]:
        """The file's rows as agate parses them (the values dbt's `load_csv_rows` binds)."""
        from dbt_common.clients.agate_helper import from_csv

        table = from_csv(self.path, text_columns=self.column_types, delimiter=self.delimiter)
        return [tuple(row) for row in table.rows]

    def should_full_refresh(self, flag: bool) -> bool:
        """dbt's `should_full_refresh()`: the seed's config, else `--full-refresh`."""
        return self.full_refresh if self.full_refresh is not None else flag


def _quote(name: str) -> str:
    return f'"{name}"'  # dbt-duckdb's quote: no escaping of inner quotes


def seed_facts(
    n: Mapping[str, Any], config: Mapping[str, Any]
) -> tuple[dict[str, Any] | None, str]:
    """A seed's facts for `Seed.of`, or why dbt must load it."""
    if config.get("fast", True) is False:
        return None, "dbt: seed with fast: false (agate inserts its parsed values)"
    quote = config.get("quote_columns")
    if quote is not None and not isinstance(quote, bool):
        return None, f"dbt: quote_columns {quote!r}"
    types = config.get("column_types") or {}
    if not isinstance(types, Mapping) or not all(isinstance(v, str) for v in types.values()):
        return None, f"dbt: column_types {types!r}"
    delimiter = config.get("delimiter", ",")
    if not isinstance(delimiter, str) or not delimiter or "'" in delimiter:
        return None, f"dbt: delimiter {delimiter!r}"
    path = str(Path(str(n.get("root_path") or "")) / str(n.get("original_file_path") or ""))
    if "'" in path:
        return None, "dbt: the seed's path holds a quote"
    full_refresh = config.get("full_refresh")
    if full_refresh is not None and not isinstance(full_refresh, bool):
        return None, f"dbt: full_refresh {full_refresh!r}"
    facts = {
        "path": path,
        "delimiter": delimiter,
        "column_types": dict(types),
        "quote_columns": quote,
        "full_refresh": full_refresh,
    }
    return facts, ""
