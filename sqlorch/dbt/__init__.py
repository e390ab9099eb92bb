"""Everything that touches dbt lives in this package (STYLE.md §7).

Only its public surfaces are used: the programmatic entry point `dbtRunner` with event
callbacks, `manifest.json` and the run results. dbt is imported lazily, inside functions.
"""
