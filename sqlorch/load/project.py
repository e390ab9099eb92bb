"""Load a user's repo into one `AssetGraph`: the dbt manifest plus the Python assets.

The dbt project comes from the manifest cache when nothing changed (no dbt import), else
from a dbt parse; `sqlorch.load.merge` joins it with the discovered Python assets, and
`sqlorch.load.checks` attaches the checks.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlorch.api.checks import CheckDefinition
from sqlorch.core.codeversion import combine
from sqlorch.core.graph import AssetGraph
from sqlorch.load.checks import attach_checks
from sqlorch.load.discovery import FoundAsset, discover_all
from sqlorch.load.merge import merge
from sqlorch.settings import Settings

if TYPE_CHECKING:
    from sqlorch.dbt.cache import ManifestCache
    from sqlorch.dbt.manifest import DbtProject
    from sqlorch.dbt.profiles import Target
    from sqlorch.dbt.runner import DbtInvoker

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Project:
    """A loaded repo: its settings, graph, Python assets and dbt handles."""

    settings: Settings
    graph: AssetGraph
    python_assets: dict[str, FoundAsset]
    dbt: DbtProject
    invoker: DbtInvoker
    target: Target
    python_checks: dict[str, CheckDefinition] = dataclasses.field(default_factory=dict)


def load_project(settings: Settings) -> Project:
    """Parse the dbt project, import the Python assets and merge them into one graph.

    Raises:
        ConfigError: the profile cannot be resolved.
        ProjectError: dbt cannot parse the project or an ingest module fails to import.
        GraphError: a dependency is unknown, ambiguous or forms a cycle.
    """
    from sqlorch.dbt.profiles import find_profiles_dir, read_target_cached
    from sqlorch.dbt.runner import DbtInvoker

    # dbt reads the environment from SQLORCH_ENV (macros/sqlorch.sql): it must say what the
    # settings say, or dbt and sqlorch would write to different schemas
    if settings.environment:
        os.environ["SQLORCH_ENV"] = settings.environment
    else:
        os.environ.pop("SQLORCH_ENV", None)

    profiles_dir = find_profiles_dir(settings.profiles_dir)
    target = read_target_cached(
        settings.project_dir, profiles_dir, settings.target, settings.state_dir / "target.json"
    )
    if target.type == "spark":  # said before dbt's parse fails on a missing Thrift driver
        from sqlorch.warehouse.spark_refusals import refuse_method

        refuse_method(target.name, target.profile, target.profiles_file, target.options)
    invoker = DbtInvoker(
        project_dir=settings.project_dir,
        profiles_dir=profiles_dir,
        target=settings.target,
        artifacts_dir=settings.state_dir / "dbt",
        duckdb_path=(
            Path(target.path).resolve()
            if target.type == "duckdb" and target.path and target.path != ":memory:"
            else None
        ),
        vars=dict(settings.dbt_vars),
    )
    dbt = _load_dbt(settings, target, invoker)
    found, found_checks = discover_all(
        settings.root,
        (*settings.ingest, *settings.check_modules),
        settings.state_dir / "dlt",
        settings.dlt,
        str(settings.settings_file) if settings.settings_file else "[tool.sqlorch]",
    )
    graph, python_assets = merge(dbt, found, settings.asset_schema)
    from sqlorch.state.hidden import add_hidden_edges

    graph = add_hidden_edges(graph, settings.state_dir)  # found in compiled SQL before
    graph, python_checks = attach_checks(
        graph,
        found_checks,
        settings.checks,
        str(settings.settings_file) if settings.settings_file else None,
    )
    return Project(settings, graph, python_assets, dbt, invoker, target, python_checks)


def _load_dbt(settings: Settings, target: Target, invoker: DbtInvoker) -> DbtProject:
    """Return the parsed dbt project: from the manifest cache, else parsed by dbt (and cached).

    The cache path imports nothing of dbt; `invoker.manifest` then stays None and the
    invoker parses (partially) only if a dbt node must actually run.
    """
    from sqlorch.dbt.cache import ManifestCache, context_key

    project_dir = settings.project_dir
    cache = ManifestCache(settings.state_dir / "dbt" / "graph.pickle", project_dir)
    context = context_key(
        {
            "project": project_dir.resolve(),
            "profile": target.profile,
            "target": target.name,
            "profiles_file": target.profiles_file.resolve(),
            "vars": json.dumps(dict(settings.dbt_vars), sort_keys=True, default=str),
        }
    )
    extra = [target.profiles_file]
    from sqlorch.dbt.handoff import await_warm, warm_pid

    # a warm `sqlorch dev` may be parsing and compiling this very change: read its work
    # only while it is not writing, and wait a moment for it to take a change up
    dbt_dir = settings.state_dir / "dbt"
    if warm_pid(dbt_dir) is None:
        cached = cache.load(context, extra)
    else:
        cached = await_warm(dbt_dir, lambda: cache.load(context, extra))
    if cached is not None:
        log.debug("dbt project loaded from the manifest cache")
        return cached

    from sqlorch.dbt.runner import few_collections

    with few_collections():  # what a parse allocates lives on: collecting finds nothing
        return _parse_dbt(settings, target, invoker, cache, context, extra)


def _parse_dbt(
    settings: Settings,
    target: Target,
    invoker: DbtInvoker,
    cache: ManifestCache,
    context: str,
    extra: list[Path],
) -> DbtProject:
    """Have dbt parse the project; read its manifest; store it in the manifest cache."""
    from sqlorch.dbt.cache import input_dirs, scan
    from sqlorch.dbt.codeversion import dbt_code_parts
    from sqlorch.dbt.manifest import read_manifest
    from sqlorch.dbt.profiles import read_project_file
    from sqlorch.state.files import read_json, write_json

    project_dir = settings.project_dir
    project_file = read_project_file(project_dir)
    dirs = input_dirs(project_dir, project_file)
    files = scan(project_dir, dirs, extra)  # before the parse: see ManifestCache.store
    manifest = invoker.parse()
    dbt = read_manifest(manifest, settings.environment)
    project_vars = project_file.get("vars") or {}
    # the normalized code's digests of the last parse, for the same sqlorch code and context
    memo_path = settings.state_dir / "dbt" / "sql_digests.json"
    memo_doc = read_json(memo_path)
    digests = memo_doc.get("digests") if memo_doc.get("context") == context else None
    sql_digests = {str(k): str(v) for k, v in (digests or {}).items()}
    parts = dbt_code_parts(
        manifest,
        project_vars={
            **(project_vars if isinstance(project_vars, dict) else {}),
            **settings.dbt_vars,
        },
        target={
            "profile": target.profile,
            "name": target.name,
            "type": target.type,
            "path": target.path,
        },
        project_dir=project_dir,
        sql_digests=sql_digests,
    )
    write_json(memo_path, {"context": context, "digests": sql_digests})
    dbt = dataclasses.replace(
        dbt,
        assets=tuple(
            dataclasses.replace(n, code_version=combine(p), code_parts=p)
            if n.unique_id and (p := parts.get(n.unique_id))
            else n
            for n in dbt.assets
        ),
    )
    cache.store(context, dirs, files, dbt)
    return dbt
