"""Run the checks sqlorch executes itself: `@check` functions and the built-in checks."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlorch.api.checks import CheckContext, CheckDefinition, CheckResult
from sqlorch.core.checks import Observed, as_datetime, run_builtin
from sqlorch.core.graph import CheckKind, CheckNode
from sqlorch.warehouse.sql import quote_key

if TYPE_CHECKING:
    from sqlorch.core.partitions.definitions import PartitionsDefinition
    from sqlorch.execute.policies import RunPolicies
    from sqlorch.warehouse.base import Warehouse


def run_python_check(defn: CheckDefinition, ctx: CheckContext) -> CheckResult:
    """Call a `@check` function with the arguments it asks for and read its result.

    Raises:
        Exception: whatever the function raises (the caller records it as an error).
    """
    kwargs: dict[str, Any] = {}
    for param in defn.params:
        if param == "context":
            kwargs["context"] = ctx
        elif param == "connection":
            kwargs["connection"] = ctx.connection
        elif param == "rows":
            rows = ctx.rows()
            kwargs["rows"] = rows.read_all() if hasattr(rows, "read_all") else rows
    value = defn.fn(**kwargs)
    if isinstance(value, CheckResult):
        return value
    if isinstance(value, bool):
        return CheckResult(passed=value)
    raise TypeError(
        f"returned {type(value).__name__} ({value!r:.60}); a check returns True/False or "
        "sqlorch.CheckResult(passed=..., metadata={...})"
    )


def run_side_check(
    check: CheckNode,
    policies: RunPolicies,
    session: Warehouse,
    run_id: str,
    log: logging.Logger,
    current: Observed | None,
    partitions: PartitionsDefinition | None = None,
) -> CheckResult:
    """Run a `@check` or built-in check of `check.asset_keys[0]` on a warehouse session.

    Args:
        current: the asset's materialization in this run (None: an observed source, read
            from the warehouse now).

    Raises:
        Exception: what a `@check` function raises, or a warehouse error.
    """
    key = check.asset_keys[0]
    if check.kind == CheckKind.PYTHON:
        ctx = CheckContext(
            asset=key, run_id=run_id, warehouse=session, log=log, table=quote_key(key)
        )
        return run_python_check(policies.python_checks[check.unique_id], ctx)
    if current is None:
        cols = session.table_columns([key]).get(key)
        if cols is None:
            return CheckResult(False, f"{key} does not exist in the warehouse")
        rows = session.row_counts([key]).get(key)
        before = policies.previous.get(key)
        # as it is now; dated by its last materialization (none for an observed source)
        current = Observed(
            rows, [(c.name, c.type) for c in cols], before.materialized_at if before else None
        )

    def newest_value(column: str) -> datetime | None:
        ident = '"' + column.replace('"', '""') + '"'
        value = session.connection.execute(f"SELECT max({ident}) FROM {quote_key(key)}").fetchone()
        return as_datetime(value[0] if value else None)

    now = policies.now()
    if check.config["type"] == "freshness" and partitions is not None:
        latest = latest_partition_present(partitions, session, key, now)
        if not latest.passed or "max_age_s" not in check.config:
            return latest
    return run_builtin(check.config, key, current, policies.previous.get(key), now, newest_value)


def latest_partition_present(
    definition: PartitionsDefinition, session: Warehouse, key: str, now: datetime
) -> CheckResult:
    """Pass when the table holds rows of the latest complete partition (of every prefix)."""
    from sqlorch.warehouse.sql import filter_sql

    n = definition.count(now)
    if n <= 0:
        return CheckResult(True, "no partition is complete yet")
    missing: list[str] = []
    for prefix in definition.prefixes():
        where, params = filter_sql(definition, prefix, n - 1, n - 1)
        if not where:
            return CheckResult(
                False,
                f"{key} declares no partition column, so the latest partition cannot be looked "
                "up in its table; give the partitions a `column` or the check a `max_age`",
            )
        row = session.connection.execute(
            f"SELECT count(*) FROM {quote_key(key)} WHERE {where}", params
        ).fetchone()
        if not row or not row[0]:
            missing.append(definition.key(prefix, n - 1))
    latest = definition.key(definition.prefixes()[0], n - 1)
    meta = {"latest_partition": latest, "missing": missing}
    if missing:
        return CheckResult(
            False, f"the latest complete partition is missing: {', '.join(missing)}", meta
        )
    return CheckResult(True, "", meta)
