"""dbt's node selection grammar over the merged asset graph.

`-s` items are unions of space-separated selectors; a comma joins selectors into an
intersection; `--exclude` items are subtracted. A selector is

    [@][N+]method:value[+N]        e.g. +fct_delays, tag:nightly+, 2+path:models/marts, @stg_x

with dbt's methods (`tag`, `path`, `file`, `source`, `package`, `fqn`, `config.<key>`,
`resource_type`) plus `kind`. A selector without a method matches an asset key
(`schema.name`), an asset name or a dbt fqn; one containing "/" is a path and one ending in
.sql/.py/.csv a file name, as in dbt. Matching is case-insensitive; shell wildcards work in
every value.

- `parse`: tokens -> specs (errors name the bad token).
- `methods`: the matchers of each method over the graph's attributes.
- `evaluate`: graph operators, union/intersection/exclude, empty-selection messages.
"""

from sqlorch.core.selection.evaluate import Selection, resolve_selection, select
from sqlorch.core.selection.methods import METHODS, STATE_METHODS, STATE_VALUES, StateSets

__all__ = [
    "METHODS",
    "STATE_METHODS",
    "STATE_VALUES",
    "Selection",
    "StateSets",
    "resolve_selection",
    "select",
]
