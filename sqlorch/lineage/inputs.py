"""What lineage reads of a loaded project: the graph, the dbt handles, the target, the paths.

`sqlorch.load.project.Project` has all of it; lineage names only this narrower view, so it
does not depend on the loader (lineage and load are siblings).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sqlorch.core.graph import AssetGraph
    from sqlorch.dbt.manifest import DbtProject
    from sqlorch.dbt.profiles import Target
    from sqlorch.dbt.runner import DbtInvoker
    from sqlorch.settings import Settings


class LineageInputs(Protocol):
    """A loaded project as lineage sees it (read-only)."""

    @property
    def graph(self) -> AssetGraph:
        """The merged asset graph."""
        ...

    @property
    def settings(self) -> Settings:
        """The settings (`state_dir` for the caches, `root` for seed files)."""
        ...

    @property
    def dbt(self) -> DbtProject:
        """The parsed dbt project (to compress `dbt compile` selections)."""
        ...

    @property
    def invoker(self) -> DbtInvoker:
        """The dbt runner (to compile models whose SQL is not cached)."""
        ...

    @property
    def target(self) -> Target:
        """The dbt target (its adapter type picks the SQL dialect; DuckDB's file path)."""
        ...
