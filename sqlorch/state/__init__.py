"""The state store: runs, events and materializations in SQLite."""

from sqlorch.state.store import StateStore

__all__ = ["StateStore"]
