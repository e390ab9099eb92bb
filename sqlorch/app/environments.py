"""Environments (`SQLORCH_ENV`): read production's upstream, and drop an environment whole.

A build in an environment writes only the environment's relations (`pr_123__marts.x`, see
`sqlorch.core.environment`) and its own state. With `--defer`, what it does not select is
read from production: `link_production` puts, into the environment's schema, a view of
production's relation for every unselected asset the selection reads (dbt models, seeds,
Python and dlt assets, observed sources alike), so every `ref()` and `source()` resolves to
the environment, whether the build wrote the relation or production did (SQLMesh's "virtual
layer"). dbt's own `--defer` is not used in an environment: it decides per relation whether
the environment has it at compile time, and sqlorch compiles before it builds (a model
compiled before its selected upstream exists would read production's), and it never
defers `source()`.

`drop_environment` is what a pull request's cleanup job runs (`sqlorch env drop pr_123`): it
drops every schema named `pr_123__*` of the target's database and the environment's state,
and nothing else: production's schemas do not start with an environment's prefix.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterable
from dataclasses import dataclass

from sqlorch.core.environment import Environment
from sqlorch.core.plan.definition import Plan
from sqlorch.errors import ConfigError
from sqlorch.load.project import Project
from sqlorch.settings import Settings, with_environment
from sqlorch.warehouse.base import Warehouse
from sqlorch.warehouse.sql import quote_key

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DropResult:
    """What `drop_environment` removed."""

    environment: str
    #: the warehouse schemas dropped (with everything in them)
    schemas: tuple[str, ...]
    #: where the environment's state was (removed), or None when it had none
    state: str | None


def production_upstream(project: Project, plan: Plan) -> list[str]:
    """The assets the selection reads but does not select (production's, with --defer)."""
    graph = project.graph
    wanted: dict[str, None] = {}
    for key in sorted(plan.selected):
        for dep in graph.assets[key].deps if key in graph.assets else ():
            if dep in graph.assets and dep not in plan.selected:
                wanted[dep] = None
    return list(wanted)


def link_production(project: Project, plan: Plan) -> list[str]:
    """Put a view of production's relation into the environment for each `production_upstream`.

    A relation the environment already has under that name is replaced (with --defer,
    unselected upstream is production's, even when an earlier build of the environment
    wrote it). Returns the keys linked; a key production does not
    have is left alone (the build then fails on it as it would in production).

    Raises:
        ConfigError: the warehouse cannot be opened.
    """
    from sqlorch.warehouse.observe import open_warehouse

    name = project.settings.environment
    keys = production_upstream(project, plan) if name else []
    if not name or not keys:
        return []
    warehouse = open_warehouse(project.target, needs_file=False)
    if warehouse is None:
        return []
    env = Environment(name)
    try:
        present = warehouse.relations()
        linked = []
        for key in keys:
            if key.lower() not in present:
                log.info("production has no %s: not linked into %s", key, name)
                continue
            _replace_with_view(warehouse, env, key)
            linked.append(key)
        return linked
    finally:
        warehouse.close()


def _replace_with_view(warehouse: Warehouse, env: Environment, key: str) -> None:
    schema, table = env.relation(key).split(".", 1)
    kinds = warehouse.execute(
        "SELECT table_type FROM information_schema.tables "
        "WHERE lower(table_schema) = ? AND lower(table_name) = ?",
        [schema.lower(), table.lower()],
    )
    target = quote_key(env.relation(key))
    warehouse.ensure_schema(schema)
    if kinds:
        kind = "VIEW" if "VIEW" in str(kinds[0][0]).upper() else "TABLE"
        warehouse.execute(f"DROP {kind} {target}")
    warehouse.execute(f"CREATE VIEW {target} AS SELECT * FROM {quote_key(key)}")


def environment_schemas(warehouse: Warehouse, env: Environment) -> list[str]:
    """The schemas of the warehouse's current database that belong to `env`."""
    rows = warehouse.execute(
        "SELECT schema_name FROM information_schema.schemata "
        "WHERE catalog_name = current_database()"
    )
    prefix = env.prefix.lower()
    return sorted(str(r[0]) for r in rows if str(r[0]).lower().startswith(prefix))


def drop_environment(settings: Settings, name: str) -> DropResult:
    """Drop environment `name`: its `name__*` schemas in the target's database and its state.

    Raises:
        ConfigError: `name` cannot name an environment, or the target cannot be opened.
        StateError: the PostgreSQL state store cannot be reached.
    """
    from sqlorch.dbt.profiles import find_profiles_dir, read_target
    from sqlorch.warehouse.observe import open_warehouse

    env_settings = with_environment(settings, name, "`sqlorch env drop`:")
    env = Environment(name)
    profiles = find_profiles_dir(settings.profiles_dir)
    target = read_target(settings.project_dir, profiles, settings.target)
    warehouse = open_warehouse(target, needs_file=False)
    dropped: list[str] = []
    if warehouse is not None:
        try:
            for schema in environment_schemas(warehouse, env):
                warehouse.execute(f'DROP SCHEMA "{schema}" CASCADE')
                dropped.append(schema)
        finally:
            warehouse.close()
    return DropResult(name, tuple(dropped), _drop_state(env_settings, dropped))


def _drop_state(env_settings: Settings, dropped: Iterable[str]) -> str | None:
    """Remove the environment's state: its folder, and its schema of a PostgreSQL store."""
    where = None
    if env_settings.state_url:
        from sqlorch.state.postgres import connect, split_url

        _, schema = split_url(env_settings.state_url)
        if schema not in dropped:  # (not already gone with the warehouse's schemas)
            con = connect(env_settings.state_url)
            try:
                con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                con.close()
        where = env_settings.state_location
    folder = env_settings.state_dir
    if env_settings.environment is None or "envs" not in folder.parts:
        raise ConfigError(f"Refusing to remove {folder}: not an environment's folder.")
    if folder.exists():
        shutil.rmtree(folder)
        where = where or str(folder)
    return where
