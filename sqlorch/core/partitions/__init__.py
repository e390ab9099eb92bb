"""Partitions, pure: definitions, range sets, the ledger's segments and partition mappings.

- `definitions`: time windows and static keys, keys <-> indices, `daily(...)`, `from_config`.
- `ranges`: interval arithmetic over inclusive `(lo, hi)` index pairs; `PartitionSet`.
- `segments`: the ledger's segments (what was written or failed, by which run, when).
- `mappings`: which upstream partitions a downstream partition reads.

Planning which partitions to run lives in `sqlorch.core.plan.partitions`; the SQL predicate of
a partition range in `sqlorch.warehouse.sql`. This package re-exports the names other rooms use.
"""

from sqlorch.core.partitions.definitions import (
    KEY_SEP,
    Dimension,
    Grain,
    PartitionsDefinition,
    StaticKeys,
    TimeWindows,
    daily,
    from_config,
    hourly,
    monthly,
    multi,
    parse_ranges,
    static,
    weekly,
)
from sqlorch.core.partitions.ranges import (
    PartitionSet,
    Prefix,
    Range,
    intersect,
    normalize,
    subtract,
)
from sqlorch.core.partitions.segments import (
    Segment,
    SegmentStatus,
    StoredRange,
    erase,
    record,
    status_set,
    to_segments,
    to_stored,
)
from sqlorch.errors import PartitionError

__all__ = [
    "KEY_SEP",
    "Dimension",
    "Grain",
    "PartitionError",
    "PartitionSet",
    "PartitionsDefinition",
    "Prefix",
    "Range",
    "Segment",
    "SegmentStatus",
    "StaticKeys",
    "StoredRange",
    "TimeWindows",
    "daily",
    "erase",
    "from_config",
    "hourly",
    "intersect",
    "monthly",
    "multi",
    "normalize",
    "parse_ranges",
    "record",
    "static",
    "status_set",
    "subtract",
    "to_segments",
    "to_stored",
    "weekly",
]
