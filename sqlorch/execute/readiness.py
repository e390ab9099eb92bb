"""When a step may start: its upstream succeeded and the checks it waits for passed."""

from __future__ import annotations

from collections.abc import Collection

from sqlorch.core.graph import AssetKind
from sqlorch.execute.progress import Progress
from sqlorch.execute.status import Status


class Readiness:
    """Answers "may `key` start now?" from a run's progress (caching the graph walks)."""

    def __init__(self, progress: Progress, partitioned: Collection[str]) -> None:
        self.progress = progress
        graph = progress.graph
        self._awaited: dict[str, list[str]] = {}
        self._gates: dict[str, list[str]] = {}
        # the planned Python assets upstream of each asset, in one pass in dependency order;
        # a dbt parent dbt does not know of (a hidden dependency, sqlorch.lineage) counts too:
        # dbt would not order the two inside one invocation
        self.python_ancestors: dict[str, frozenset[str]] = {}
        kind = progress.kind
        for key in graph.topological():
            above: set[str] = set()
            hidden = graph.assets[key].hidden_deps
            for parent in graph.parents(key):
                above |= self.python_ancestors[parent]
                if (
                    kind.get(parent) is AssetKind.PYTHON
                    or parent in partitioned
                    or (parent in hidden and parent in kind)
                ):
                    above.add(parent)
            self.python_ancestors[key] = frozenset(above)

    def deps_ready(self, key: str) -> bool:
        """True when every upstream step succeeded and its blocking checks passed."""
        status = self.progress.status
        for dep in self.progress.graph.parents(key):
            st = status.get(dep)
            if st is not None and st is not Status.SUCCEEDED:
                return False
        return not any(self.progress.check_status[c].is_open for c in self.awaited_checks(key))

    def awaited_checks(self, key: str) -> list[str]:
        """The blocking checks of `key`'s parents that `key` must wait for.

        A check that also tests `key` itself or something downstream of it can only run
        after `key`: waiting for it would deadlock, so it does not hold `key` back.
        """
        if key not in self._awaited:
            graph, checks = self.progress.graph, self.progress.checks
            later = graph.descendants(key) | {key}
            self._awaited[key] = [
                c
                for dep in graph.parents(key)
                for c in self.progress.blocking.get(dep, ())
                if not later.intersection(checks[c].asset_keys)
            ]
        return self._awaited[key]

    def gating_checks(self, key: str) -> list[str]:
        """The blocking checks sqlorch runs on `key`'s ancestors that a dbt node must await.

        dbt orders its own tests; checks sqlorch runs itself must pass before a dbt node
        downstream of their asset joins a dbt invocation.
        """
        if key not in self._gates:
            graph, checks = self.progress.graph, self.progress.checks
            later = graph.descendants(key) | {key}
            self._gates[key] = [
                c
                for a in graph.ancestors(key)
                for c in self.progress.blocking.get(a, ())
                if not checks[c].runs_in_dbt and not later.intersection(checks[c].asset_keys)
            ]
        return self._gates[key]

    def gates_passed(self, key: str) -> bool:
        """True when every gating check of `key` passed (or warned)."""
        return all(self.progress.check_status[c].is_passed for c in self.gating_checks(key))
