"""Who executes each dbt node of a plan: sqlorch natively, or dbt (and why), per the settings.

`execution` in [tool.sqlorch] is "native" (the default) or "dbt", or a table of `default`
and selector = mode; a model says `meta: {sqlorch: {execution: dbt}}` for itself
(sqlorch.dbt.native reads that with the rest of the per-node decision).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from sqlorch.app.plans import select_assets
from sqlorch.core.plan.definition import Plan
from sqlorch.errors import ConfigError, SelectionError
from sqlorch.load.project import Project


def execution_settings(project: Project) -> tuple[bool, dict[str, str]]:
    """(native execution on at all, asset key -> why the settings give it to dbt).

    Raises:
        ConfigError: a selector in `execution` is malformed or matches nothing.
    """
    settings = project.settings
    table = dict(settings.execution)
    default = table.pop("default", "native")
    if default == "dbt" and not any(v == "native" for v in table.values()):
        return False, {}
    forced: dict[str, str] = {}
    native_only: set[str] = set()
    for selector, mode in table.items():
        where = f'[tool.sqlorch.execution] "{selector}" in {settings.settings_file}'
        try:
            keys = select_assets(project, [selector], None)
        except SelectionError as exc:
            raise ConfigError(f"{where}: {exc.message}") from exc
        for key in keys:
            if mode == "dbt":
                forced[key] = f"dbt: execution = 'dbt' for {selector!r} (settings)"
            else:
                native_only.add(key)
    if default == "dbt":
        for node in project.graph.assets.values():
            if node.kind.is_dbt and node.key not in native_only:
                forced.setdefault(node.key, "dbt: execution = 'dbt' (settings)")
    return True, forced


def plan_execution(project: Project, plan: Plan) -> dict[str, str]:
    """Each dbt step of `plan` -> "native" or why dbt executes it (for `--dry-run`)."""
    from sqlorch.dbt.native import blocker, dialect_of

    native, forced = execution_settings(project)
    invoker = project.invoker
    target = project.target
    same_file = target.type == "postgres" or (  # PostgreSQL: the warehouse is the target
        target.type == "duckdb"
        and bool(target.path)
        and target.path != ":memory:"
        and invoker.duckdb_path is not None
        and Path(str(target.path)).resolve() == invoker.duckdb_path
    )
    dialect = dialect_of(str(target.type), invoker.project_dir)
    out: dict[str, str] = {}
    for step in plan.steps:
        node = project.graph.assets[step.key]
        if not node.kind.is_dbt:
            continue
        if not native:
            out[step.key] = "dbt: execution = 'dbt' (settings)"
            continue
        reason = blocker(
            node,
            same_file=same_file,
            hook_count=project.dbt.hook_count,
            forced=forced,
            dialect=dialect,
        )
        out[step.key] = reason or "native"
    return out


def describe(execution: Mapping[str, str]) -> str:
    """One line: how many dbt steps run natively, how many through dbt."""
    native = sum(1 for v in execution.values() if v == "native")
    return f"{native} native, {len(execution) - native} through dbt"
