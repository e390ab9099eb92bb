"""The one route table: each page family's module lists its routes; static files last.

A new page family (issue 13: automation) is one module under `sqlorch.web.pages` with a
`ROUTES` list, added to `PAGE_FAMILIES` below (and, for the menu, to `responses.NAV`).
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from sqlorch.web.pages import assets, automation, graph, launch, lineage, partitions, runs

PAGE_FAMILIES = (graph, assets, lineage, partitions, runs, launch, automation)


def routes() -> list[BaseRoute]:
    """Return every route of the app."""
    table: list[BaseRoute] = []
    for family in PAGE_FAMILIES:
        table.extend(family.ROUTES)
    table.append(Mount("/static", StaticFiles(packages=[("sqlorch.web", "static")]), name="static"))
    return table
