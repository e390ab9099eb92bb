"""Partitions, pure: definitions, range sets, the ledger's segments and partition mappings.

- `definitions`: time windows and static keys, keys <-> indices, `daily(...)`, `from_config`.
- `ranges`: interval arithmetic over inclusive `(lo, hi)` index pairs; `PartitionSet`.
- `segments`: the ledger's segments (what was written or failed, by which run, when).
- `mappings`: which upstream partitions a downstream partition reads.

Import names from those modules. Planning which partitions to run lives in
`sqlorch.core.plan.partitions`; the SQL predicate of a partition range in
`sqlorch.warehouse.sql`; `PartitionError` in `sqlorch.errors`.
"""
