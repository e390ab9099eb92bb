"""Ground stops at the NYC airports in 2013, loaded with dlt from the JSON-lines files in
ingest/data/ground_stops/ (one file a month, shipped in the repo: no network).

`dlt_assets` makes each table the load produces an asset: `ops.ground_stops` and its nested
child table `ops.ground_stops__reasons`. dlt writes through sqlorch's DuckDB connection and
keeps its cursor (`issued_at`) under .sqlorch/dlt/, so a build after a new month's file
arrives loads only that file's new stops. dlt is imported inside the function: once sqlorch
has listed the tables (cached under .sqlorch/dlt/), a command that loads nothing never
imports it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlorch import dlt_assets

DATA = Path(__file__).resolve().parent / "data" / "ground_stops"


@dlt_assets(dataset="ops", tags=["nycflights13"])
def ground_stops() -> Any:
    """Ground stops at EWR, JFK and LGA, with their reasons (a nested list)."""
    import dlt

    @dlt.resource(
        name="ground_stops",
        primary_key="stop_id",
        write_disposition="merge",
        # declared up front, so the child table is an asset before the first load
        nested_hints={"reasons": dlt.mark.make_nested_hints(columns=[{"name": "code"}])},
    )
    def stops(
        # dlt's idiom: the cursor is the argument's default; dlt keeps its last value
        issued: Any = dlt.sources.incremental(  # noqa: B008
            "issued_at", initial_value="2013-01-01T00:00:00-05:00"
        ),
    ) -> Iterator[dict[str, Any]]:
        for path in sorted(DATA.glob("*.jsonl")):
            for line in path.read_text().splitlines():
                yield json.loads(line)

    return stops
