"""Worker slots: the run's thread limit and the named pools of rate-limited systems."""

from __future__ import annotations

from collections.abc import Mapping

from sqlorch.core.graph import AssetNode


class Slots:
    """Counts the workers running (Python assets and checks) against the limits."""

    def __init__(self, threads: int, pools: Mapping[str, int] | None) -> None:
        self.threads = max(1, threads)
        self.limits = dict(pools or {})
        self.running = 0
        self._in_pool: dict[str, int] = {}

    @property
    def free(self) -> bool:
        """True when another worker may start."""
        return self.running < self.threads

    def take_pool(self, node: AssetNode) -> bool:
        """Take a place in `node`'s pool; False when the pool is full (nothing taken)."""
        if node.pool:
            limit = self.limits.get(node.pool)
            if limit is not None and self._in_pool.get(node.pool, 0) >= limit:
                return False
            self._in_pool[node.pool] = self._in_pool.get(node.pool, 0) + 1
        return True

    def release_pool(self, node: AssetNode) -> None:
        """Give back `node`'s place in its pool."""
        if node.pool and node.pool in self._in_pool:
            self._in_pool[node.pool] -= 1
