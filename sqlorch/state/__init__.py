"""The state store: runs, events, materializations, check results and partition ledgers.

`base` (the read and read-write interfaces), `sqlite` (the SQLite store), `records` and
`rows` (what it returns and inserts), `migrations`, `ledger` (partition bookkeeping),
`hidden` and `files` (hidden dependencies recorded under `.sqlorch/lineage/`).
"""

from sqlorch.state.store import StateStore

__all__ = ["StateStore"]
