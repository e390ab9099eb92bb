"""Column lineage of a whole project: compiled SQL in, one lineage per asset out (cached).

`build_index` walks the graph in dependency order. For each dbt model and snapshot it takes
the compiled SQL (cached by code version; the missing ones from one `dbt compile` of exactly
those nodes), qualifies it against the columns of the relations it reads and keeps the
result, cached under `.sqlorch/lineage/` while the SQL and those columns stay the same. The
columns of a relation are, in this order: what the warehouse holds after materialization
(for a model: if its code has not changed since), what the SQL of a model yields, the dbt
yml (a seed's CSV header). Python assets, seeds and
sources are leaves: their columns are known, their derivation is not SQL.

Lineage never fails a command that does not ask for it: every problem becomes a note on
the asset concerned.
"""

from __future__ import annotations

import hashlib
import logging
from collections import ChainMap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlorch.core.graph import AssetGraph, AssetKind, AssetNode
from sqlorch.lineage.cache import CompiledCache, LineageCache
from sqlorch.lineage.inputs import LineageInputs
from sqlorch.lineage.model import ColumnLineage, ModelLineage
from sqlorch.state.hidden import HiddenDependency, read_hidden, write_hidden

if TYPE_CHECKING:
    from sqlorch.lineage.impact import Impact

log = logging.getLogger(__name__)

#: dbt adapter type -> sqlglot dialect (where the names differ)
_DIALECTS = {"sqlserver": "tsql", "fabric": "tsql", "synapse": "tsql", "glue": "spark"}
_SQLGLOT_DIALECTS = {
    "duckdb",
    "postgres",
    "redshift",
    "snowflake",
    "bigquery",
    "databricks",
    "spark",
    "trino",
    "athena",
    "clickhouse",
    "mysql",
    "oracle",
    "tsql",
    "sqlite",
}
#: relations a model may read without declaring them
_SYSTEM_SCHEMAS = {"information_schema", "pg_catalog", "sys", "system"}
#: the columns dbt adds to a snapshot
SNAPSHOT_COLUMNS = ("dbt_scd_id", "dbt_updated_at", "dbt_valid_from", "dbt_valid_to")

Columns = list[tuple[str, str]]
#: assets whose columns come from their SQL
SQL_KINDS = (AssetKind.MODEL, AssetKind.SNAPSHOT)


def dialect_of(adapter_type: str | None) -> str | None:
    """Return the sqlglot dialect of a dbt adapter type (None: sqlglot's generic SQL)."""
    if not adapter_type:
        return None
    name = _DIALECTS.get(adapter_type, adapter_type)
    return name if name in _SQLGLOT_DIALECTS else None


@dataclass(slots=True)
class LineageIndex:
    """The lineage of every asset of a project, and what was learnt on the way."""

    graph: AssetGraph
    assets: dict[str, ModelLineage]
    columns: dict[str, Columns]
    hidden: dict[str, HiddenDependency] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    compiled: int = 0
    analyzed: int = 0
    cached: int = 0


def build_index(
    project: LineageInputs,
    *,
    materialized: Mapping[str, Columns] | None = None,
    compile_missing: bool = True,
    keys: Sequence[str] | None = None,
) -> LineageIndex:
    """Compute (or read from the cache) the lineage of the assets of `project`.

    Args:
        project: the loaded project (what lineage reads of it).
        materialized: the warehouse's columns of materialized assets, by key.
        compile_missing: run `dbt compile` for models whose compiled SQL is not cached.
        keys: limit the work to these assets and their ancestors (default: all).
    """
    graph = project.graph
    state_dir = project.settings.state_dir
    dialect = dialect_of(project.target.type)
    materialized = dict(materialized or {})
    wanted = None
    if keys is not None:
        wanted = set(keys)
        for k in keys:
            wanted |= graph.ancestors(k)
    order = graph.topological(wanted)

    compiled_cache = CompiledCache(state_dir)
    index = LineageIndex(graph=graph, assets={}, columns={})
    sqls: dict[str, str] = {}
    missing: list[AssetNode] = []
    for key in order:
        node = graph.assets[key]
        if node.kind in (AssetKind.MODEL, AssetKind.SNAPSHOT):
            sql = compiled_cache.get(key, node.code_version)
            if sql is None:
                missing.append(node)
            else:
                sqls[key] = sql
    if missing and compile_missing:
        try:
            got = compile_nodes(project, missing)
        except Exception as exc:  # noqa: BLE001 - lineage must not stop the command
            index.warnings.append(
                f"Lineage of {len(missing)} model(s) is unknown: their SQL could not be "
                f"compiled ({_message(exc)})."
            )
            got = {}
        for node in missing:
            if node.key in got:
                sqls[node.key] = got[node.key]
                compiled_cache.put(node.key, node.code_version, got[node.key])
        index.compiled = len(got)
    compiled_cache.save()

    cache = LineageCache(state_dir)
    known: ChainMap[str, Columns] = ChainMap(index.columns, materialized)
    for key in order:
        node = graph.assets[key]
        result = _asset_lineage(node, sqls.get(key), dialect, index, cache, known, project)
        index.assets[key] = result
        index.columns[key] = _columns_of(node, result, materialized, project.settings.root)
        if node.kind is AssetKind.MODEL and result.tables:
            hidden = hidden_tables(node, result.tables)
            index.hidden[key] = HiddenDependency(key, node.code_version, node.file, hidden)
    cache.save()
    if keys is None:
        write_hidden(state_dir, index.hidden)
    else:
        merged = read_hidden(state_dir)
        merged.update(index.hidden)
        write_hidden(state_dir, merged)
    index.warnings.extend(hidden_warnings(index.hidden, graph))
    return index


def hidden_tables(node: AssetNode, tables: Sequence[str]) -> tuple[str, ...]:
    """Return the relations in `tables` that `node` reads without a ref or a source."""
    declared = (set(node.deps) - set(node.hidden_deps)) | {node.key}
    return tuple(
        t for t in tables if t not in declared and t.split(".", 1)[0] not in _SYSTEM_SCHEMAS
    )


def hidden_warnings(hidden: Mapping[str, HiddenDependency], graph: AssetGraph) -> list[str]:
    """Return one warning per model that reads relations it does not declare."""
    return [m for _k, m in hidden_messages(hidden, graph)]


def hidden_messages(
    hidden: Mapping[str, HiddenDependency], graph: AssetGraph
) -> list[tuple[str, str]]:
    """Return (model key, warning) per model that reads relations it does not declare."""
    out = []
    for key, h in sorted(hidden.items()):
        if not h.tables or key not in graph:
            continue
        known = [t for t in h.tables if t in graph]
        unknown = [t for t in h.tables if t not in graph]
        parts = []
        if known:
            parts.append(
                f"{', '.join(known)} (an asset of this project: sqlorch orders the model after "
                "it; use ref() or source() so dbt does too)"
            )
        if unknown:
            parts.append(f"{', '.join(unknown)} (no asset of this project produces it)")
        where = h.file or key
        out.append(
            (
                key,
                f"Model {key} ({where}) reads {'; '.join(parts)} without a ref() or source(): "
                "a hidden dependency.",
            )
        )
    return out


def compile_nodes(project: LineageInputs, nodes: Sequence[AssetNode]) -> dict[str, str]:
    """Compile exactly `nodes` with dbt (one invocation); return key -> compiled SQL."""
    from sqlorch.dbt.manifest import compress_selection

    by_uid = {n.unique_id: n.key for n in nodes if n.unique_id}
    if not by_uid:
        return {}
    selectors = compress_selection(set(by_uid), project.dbt.runnable_fqns, project.dbt.ephemeral)
    run_dir = project.settings.state_dir / "lineage" / "compile"
    compiled = project.invoker.compile(selectors, run_dir=run_dir)
    return {by_uid[uid]: sql for uid, sql in compiled.items() if uid in by_uid}


def record_compiled(project: LineageInputs, run_dir: Path) -> dict[str, str]:
    """Cache the compiled SQL dbt wrote in a run's folder; return key -> SQL of those models."""
    from sqlorch.dbt.runner import compiled_code

    by_uid = {n.unique_id: n for n in project.graph.assets.values() if n.unique_id}
    cache = CompiledCache(project.settings.state_dir)
    out: dict[str, str] = {}
    for results in sorted(run_dir.glob("*/target/run_results.json")):
        for uid, sql in compiled_code(results).items():
            node = by_uid.get(uid)
            if node is None or node.kind not in (AssetKind.MODEL, AssetKind.SNAPSHOT):
                continue
            cache.put(node.key, node.code_version, sql)
            out[node.key] = sql
    cache.save()
    return out


def scan_hidden_after_run(project: LineageInputs, run_dir: Path) -> list[tuple[str, str]]:
    """After a build: cache its compiled SQL, record hidden dependencies, return warnings.

    Only the models the run compiled at a code version not scanned before are parsed (no
    qualification: cheap); every model of the run that reads hidden tables is warned about.
    """
    from sqlorch.lineage.analyze import referenced_tables

    compiled = record_compiled(project, run_dir)
    if not compiled:
        return []
    from sqlorch.core.environment import Environment

    dialect = dialect_of(project.target.type)
    env_name = project.settings.environment
    environment = Environment(env_name) if env_name else None
    found = read_hidden(project.settings.state_dir)
    changed: dict[str, HiddenDependency] = {}
    for key, sql in compiled.items():
        node = project.graph.assets[key]
        if node.kind is not AssetKind.MODEL:
            continue
        known = found.get(key)
        if known is not None and known.code_version == node.code_version:
            changed[key] = known  # this code version was scanned before
            continue
        try:
            tables = referenced_tables(sql, dialect)
        except Exception:  # noqa: BLE001 - SQL sqlglot cannot parse: no hidden edges known
            log.debug("cannot parse the compiled SQL of %s", key, exc_info=True)
            continue
        if environment is not None:  # the environment's relations stand for their keys
            tables = [environment.key(t) or t for t in tables]
        h = HiddenDependency(key, node.code_version, node.file, hidden_tables(node, tables))
        changed[key] = h
        found[key] = h
    write_hidden(project.settings.state_dir, found)
    return hidden_messages(changed, project.graph)


def after_run(project: LineageInputs, run_dir: Path) -> list[tuple[str, str]]:
    """`scan_hidden_after_run`, never raising: lineage must not fail a build."""
    try:
        return scan_hidden_after_run(project, run_dir)
    except Exception:  # noqa: BLE001 - a build never fails over lineage
        log.warning("could not record the run's compiled SQL for lineage", exc_info=True)
        return []


def changes_since_materialized(
    project: LineageInputs, index: LineageIndex, code_versions: Mapping[str, str | None]
) -> Impact:
    """Compare every model whose code version differs from its last materialization.

    Args:
        project: the loaded project (what lineage reads of it).
        index: the lineage of the working tree (`build_index`).
        code_versions: asset key -> code version of its last materialization.
    """
    from sqlorch.lineage.analyze import analyze
    from sqlorch.lineage.impact import ChangeStatus, compare, impact_of, with_affected

    dialect = dialect_of(project.target.type)
    compiled = CompiledCache(project.settings.state_dir)
    changes = []
    for node in project.graph:
        if node.kind not in SQL_KINDS:
            continue
        new = index.assets.get(node.key)
        if new is None:
            continue
        if node.key not in code_versions:
            change = compare(node.key, None, new, file=node.file, status=ChangeStatus.NEW)
        elif code_versions[node.key] == node.code_version:
            continue
        else:
            old_sql = compiled.get(node.key, code_versions[node.key])
            old = None
            why = None
            if old_sql is None:
                why = (
                    "the compiled SQL of its last materialization is not cached (built before "
                    "sqlorch kept it, or edited many times since): its columns cannot be "
                    "compared, so the change counts as breaking"
                )
            else:
                old = analyze(old_sql, dialect, index.columns, self_key=node.key)
            change = compare(node.key, old, new, file=node.file, unknown=why)
        changes.append(with_affected(change, new, index.assets))
    return impact_of(changes, project.graph)


def warehouse_columns(
    project: LineageInputs, wanted: Sequence[str] = ()
) -> tuple[dict[str, Columns], str | None]:
    """Return the columns of the target's relations, or why not.

    A DuckDB file is read whole; another warehouse is asked for the relations `wanted`
    (asset keys; empty: every asset of the graph) through the warehouse's own catalog.
    Another process holding the file (a running build) is not an error: the caller falls
    back to dbt yml and the SQL itself; the second value says so.
    """
    target = project.target
    if target.type != "duckdb":
        return _other_warehouse_columns(target, list(wanted or project.graph.assets))
    if not target.path or target.path == ":memory:":
        return {}, None
    path = Path(target.path)
    if not path.is_absolute():
        path = (Path.cwd() / path).resolve()
    if not path.exists():
        return {}, None
    import duckdb

    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        return {}, (
            f"the warehouse file {path} is in use by another process ({_message(exc)}); "
            "columns come from dbt yml and the models' SQL"
        )
    try:
        rows = con.execute(
            "select table_schema, table_name, column_name, data_type "
            "from information_schema.columns where table_catalog = current_database() "
            "order by table_schema, table_name, ordinal_position"
        ).fetchall()
    finally:
        con.close()
    out: dict[str, Columns] = {}
    for schema, table, column, dtype in rows:
        out.setdefault(f"{schema}.{table}".lower(), []).append((str(column), str(dtype)))
    return out, None


def _other_warehouse_columns(target: Any, keys: list[str]) -> tuple[dict[str, Columns], str | None]:
    """The columns of `keys` in a warehouse sqlorch can open (PostgreSQL, Spark, ...)."""
    from sqlorch.errors import SqlorchError
    from sqlorch.warehouse.observe import open_warehouse

    try:
        warehouse = open_warehouse(target, needs_file=False)
    except SqlorchError as exc:
        return {}, f"{exc.message}; columns come from dbt yml and the models' SQL"
    if warehouse is None:
        return {}, None
    try:
        found = warehouse.table_columns(keys)
    finally:
        warehouse.close()
    out: dict[str, Columns] = {
        key.lower(): [(c.name, c.type) for c in cols] for key, cols in found.items()
    }
    return out, None


# ------------------------------------------------------------------------------ per asset


def _asset_lineage(
    node: AssetNode,
    sql: str | None,
    dialect: str | None,
    index: LineageIndex,
    cache: LineageCache,
    known: ChainMap[str, Columns],
    project: LineageInputs,
) -> ModelLineage:
    materialized = known.maps[1]
    if node.kind is AssetKind.PYTHON:
        cols = materialized.get(node.key) or [(c.name, c.type) for c in node.columns]
        where = f"{node.file}:{node.line}" if node.file else node.key
        note = f"computed in Python ({where})"
        if node.deps:
            note += " from " + ", ".join(node.deps)
        if not cols:
            note += "; its columns are known once it is materialized"
        return ModelLineage(columns=tuple(ColumnLineage(c.lower()) for c, _ in cols), notes=(note,))
    if node.kind in (AssetKind.SOURCE, AssetKind.SEED):
        cols = _columns_of(node, ModelLineage(), materialized, project.settings.root)
        note = "a dbt source" if node.kind is AssetKind.SOURCE else "a dbt seed"
        return ModelLineage(columns=tuple(ColumnLineage(c.lower()) for c, _ in cols), notes=(note,))
    if sql is None:
        return ModelLineage(
            error="no compiled SQL (dbt could not compile it, or compiling was not allowed)"
        )
    sql_digest = _digest([sql, node.code_version or "", dialect or ""])
    entry = cache.get(node.key, sql_digest)
    if entry is not None:
        doc = entry["lineage"]
        tables = [str(t) for t in doc.get("tables", ())]
        if entry.get("schemas") == _schemas_digest(tables, known):
            index.cached += 1
            return ModelLineage.from_json(doc)
    from sqlorch.lineage.analyze import analyze

    result = analyze(sql, dialect, known, self_key=node.key)
    index.analyzed += 1
    if node.kind is AssetKind.SNAPSHOT and result.error is None:
        result = ModelLineage(
            columns=(*result.columns, *(ColumnLineage(c) for c in SNAPSHOT_COLUMNS)),
            keys=result.keys,
            tables=result.tables,
            unknown_tables=result.unknown_tables,
            notes=(*result.notes, "a dbt snapshot: dbt_* columns are added by dbt"),
            keys_fingerprint=result.keys_fingerprint,
            incomplete=result.incomplete,
        )
    cache.put(
        node.key,
        sql_digest,
        _schemas_digest(list(result.tables), known),
        result.to_json(),
    )
    return result


def _columns_of(
    node: AssetNode, result: ModelLineage, materialized: Mapping[str, Columns], root: Path
) -> Columns:
    """The columns downstream SQL is qualified against (see the module docstring)."""
    if materialized.get(node.key):
        return list(materialized[node.key])
    if result.columns and not result.error and not result.incomplete:
        return [(c.name, "") for c in result.columns]
    if node.columns:
        return [(c.name, c.type) for c in node.columns]
    if node.kind is AssetKind.SEED and node.file:
        return [(c, "") for c in _csv_header(root / node.file)]
    return [(c.name, "") for c in result.columns]


def _csv_header(path: Path) -> list[str]:
    import csv

    try:
        with path.open(newline="") as fh:
            return next(csv.reader(fh), [])
    except OSError:
        return []


def _schemas_digest(tables: Sequence[str], columns: Mapping[str, Columns]) -> str:
    parts = []
    for t in sorted(tables):
        parts.append(t)
        parts.extend(f"{c}:{ty}" for c, ty in columns.get(t, ()))
    return _digest(parts)


def _digest(parts: Sequence[str]) -> str:
    h = hashlib.sha1()
    for p in parts:
        h.update(p.encode())
        h.update(b"\0")
    return h.hexdigest()[:20]


def _message(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc)
    return " ".join(text.split())[:400]
