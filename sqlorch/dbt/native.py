"""Native execution of dbt nodes: which nodes sqlorch runs from dbt's compiled SQL, and why not.

dbt parses and compiles; sqlorch executes the compiled SQL of the materializations it
reproduces exactly (`view`, `table` and `incremental` with dbt-duckdb's append,
delete+insert and default merge strategies, and seeds, on DuckDB, and the data tests on
them) and dbt
executes everything else. This module decides per node, from the manifest alone (no dbt
import), and says why in dbt's words when dbt must run the node ("dbt: has post-hook").
Full fidelity is the rule: anything not known to be reproduced exactly runs through dbt.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlorch.errors import ProjectError

if TYPE_CHECKING:
    from sqlorch.core.graph import AssetNode, CheckNode

#: the materializations sqlorch runs itself
NATIVE_MATERIALIZATIONS = frozenset({"view", "table", "incremental"})
# dbt-duckdb's incremental strategies sqlorch reproduces ("default" is delete+insert there)
_STRATEGIES = {
    "default": "delete+insert",
    "delete+insert": "delete+insert",
    "append": "append",
    "merge": "merge",
}
# merge configuration beyond dbt-duckdb's defaults (UPDATE BY NAME / INSERT BY NAME)
_MERGE_OPTIONS = (
    "merge_on_using_columns",
    "merge_update_condition",
    "merge_insert_condition",
    "merge_update_columns",
    "merge_exclude_columns",
    "merge_update_set_expressions",
    "merge_returning_columns",
    "merge_clauses",
)
_SCHEMA_CHANGES = frozenset({"ignore", "fail", "append_new_columns", "sync_all_columns"})

# what makes a model's compiled SQL depend on more than its code: the database's state at
# compile time (introspection) or the moment of the run
_INTROSPECTIVE = re.compile(
    r"\brun_query\s*\(|\bstatement\s*\(|\bload_result\s*\(|\bload_relation\s*\(|"
    r"\badapter\s*\.\s*(?!dispatch\b)\w+|\bget_columns_in_relation\b|\bget_relation\s*\(|"
    r"\bdbt_utils\s*\.\s*(?:star|get_column_values|union_relations|get_relations_by)"
)
_MOMENT = re.compile(r"\brun_started_at\b|\binvocation_id\b|\bmodules\s*\.\s*(?:datetime|time)\b")
# a project or package that redefines the view or table materialization
_OWN_MATERIALIZATIONS = frozenset(
    {
        "materialization_view_default",
        "materialization_view_duckdb",
        "materialization_table_default",
        "materialization_table_duckdb",
        "materialization_incremental_default",
        "materialization_incremental_duckdb",
        "materialization_seed_default",
        "materialization_seed_duckdb",
    }
)
_DBT_PACKAGES = frozenset({"dbt", "dbt_duckdb", "dbt_postgres"})
# the macros (and their adapter__ variants) whose statements sqlorch reproduces, per
# materialization: a project that redefines one keeps that materialization with dbt
_HELPERS = {
    "incremental": frozenset(
        {
            "get_incremental_append_sql",
            "get_incremental_delete_insert_sql",
            "get_incremental_default_sql",
            "get_incremental_merge_sql",
            "get_delete_insert_merge_sql",
            "get_insert_into_sql",
            "get_merge_sql",
            "merge_join_clause",
            "process_schema_changes",
            "check_for_schema_changes",
            "sync_column_schemas",
            "diff_column_data_types",
            "alter_relation_add_remove_columns",
            "alter_column_type",
            "make_temp_relation",
            "dispatch_temporary_relation",
            "create_table_as",
            "get_quoted_csv",
        }
    ),
    "seed": frozenset(
        {
            "load_csv_rows",
            "create_csv_table",
            "reset_csv_table",
            "get_csv_sql",
            "get_binding_char",
            "get_batch_size",
        }
    ),
}


class Execution(StrEnum):
    """Who executes a dbt node."""

    NATIVE = "native"
    DBT = "dbt"


def model_blocker(
    n: Mapping[str, Any],
    config: Mapping[str, Any],
    code: list[str],
    *,
    unit_tested: bool,
    own_materializations: frozenset[str],
) -> str:
    """Why dbt must run this manifest node ("" when sqlorch may run its compiled SQL).

    `code` is the node's code and the code of the macros and ephemeral models it renders.
    `own_materializations` names the materializations the project itself redefines.
    """
    rtype = n.get("resource_type")
    if rtype == "snapshot":
        return "dbt: snapshot"
    own = _sqlorch_meta(n, config)
    if own.get("execution") not in (None, Execution.NATIVE.value, Execution.DBT.value):
        file = n.get("original_file_path")
        raise ProjectError(
            f"dbt {rtype} {n.get('name')!r} ({file}): meta.sqlorch.execution is "
            f"{own.get('execution')!r}; use 'native' (sqlorch runs dbt's compiled SQL where it "
            "reproduces dbt exactly, the default) or 'dbt' (dbt always runs this node).",
            file=file,
        )
    if own.get("execution") == Execution.DBT.value:
        return "dbt: meta.sqlorch.execution is 'dbt'"
    if rtype == "seed":
        if "seed" in own_materializations:
            return "dbt: the project redefines how dbt loads seeds"
        return _seed_blocker(n, config)
    if n.get("language", "sql") != "sql":
        return "dbt: python model"
    materialized = str(config.get("materialized") or "")
    if materialized in own_materializations:
        return f"dbt: custom materialization {materialized!r}"
    if materialized not in NATIVE_MATERIALIZATIONS:
        return f"dbt: custom materialization {materialized!r}"
    if materialized == "incremental":
        _facts, why = incremental_facts(config)
        if why:
            return why
    for hook in ("pre-hook", "post-hook"):
        if config.get(hook):
            return f"dbt: has {hook}"
    if (config.get("contract") or {}).get("enforced"):
        return "dbt: contract enforced"
    if config.get("grants"):
        return "dbt: grants"
    if any((config.get("persist_docs") or {}).values()):
        return "dbt: persist_docs"
    for key in ("sql_header", "indexes", "partitioned_by", "sorted_by", "unlogged"):
        if config.get(key):
            return f"dbt: {key}"
    if unit_tested:
        return "dbt: has unit tests"
    text = "\n".join(code)
    if _MOMENT.search(text):
        return "dbt: renders the run's moment (run_started_at, invocation_id, datetime)"
    if _INTROSPECTIVE.search(text):
        return "dbt: introspective SQL (run_query, adapter calls, ...)"
    return ""


@dataclass(frozen=True, slots=True)
class Incremental:
    """An incremental model's configuration, as dbt-duckdb's materialization reads it."""

    strategy: str  # "append" | "delete+insert" | "merge"
    unique_key: str | tuple[str, ...] | None  # a string, or a list of columns
    predicates: tuple[str, ...] | None  # incremental_predicates (or predicates)
    on_schema_change: str  # ignore | fail | append_new_columns | sync_all_columns
    full_refresh: bool | None  # the model's `full_refresh` config (None: the flag decides)

    @classmethod
    def of(cls, facts: Mapping[str, Any]) -> Incremental:
        """Read the facts `incremental_facts` wrote into a node's metadata."""
        key = facts.get("unique_key")
        preds = facts.get("predicates")
        return cls(
            strategy=str(facts["strategy"]),
            unique_key=tuple(key) if isinstance(key, list | tuple) else key,
            predicates=tuple(preds) if preds is not None else None,
            on_schema_change=str(facts["on_schema_change"]),
            full_refresh=facts.get("full_refresh"),
        )

    def should_full_refresh(self, flag: bool) -> bool:
        """dbt's `should_full_refresh()`: the model's config, else `--full-refresh`."""
        return self.full_refresh if self.full_refresh is not None else flag

    def is_incremental(self, existing: str | None, flag: bool) -> bool:
        """dbt's `is_incremental()`: the relation is a table and no full refresh is due."""
        return existing == "table" and not self.should_full_refresh(flag)


def incremental_facts(config: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """An incremental model's facts for `Incremental.of`, or why dbt must run it."""
    raw = config.get("incremental_strategy") or "default"
    strategy = _STRATEGIES.get(str(raw))
    if strategy is None:
        return None, f"dbt: incremental_strategy {raw!r}"
    if strategy == "merge":
        options = [k for k in _MERGE_OPTIONS if config.get(k) not in (None, [], {}, "")]
        if options:
            return None, f"dbt: merge options ({', '.join(options)})"
    key = config.get("unique_key")
    if not (key is None or isinstance(key, str) or _strings(key)):
        return None, f"dbt: unique_key {key!r}"
    preds = config.get("predicates") or config.get("incremental_predicates")
    text = isinstance(preds, str)
    if isinstance(preds, str) and strategy == "merge":
        preds = [preds]  # dbt-duckdb's merge normalizes a string to a list
    if not (preds is None or _strings(preds)):
        return None, f"dbt: incremental_predicates {preds!r}"
    full_refresh = config.get("full_refresh")
    if full_refresh is not None and not isinstance(full_refresh, bool):
        return None, f"dbt: full_refresh {full_refresh!r}"
    on_change = config.get("on_schema_change")
    facts = {
        "strategy": strategy,
        "unique_key": list(key) if isinstance(key, list | tuple) else key,
        "predicates": list(preds) if preds else None,
        # dbt logs an unknown value and uses 'ignore'
        "on_schema_change": on_change if on_change in _SCHEMA_CHANGES else "ignore",
        "full_refresh": full_refresh,
        # dbt-postgres's merge fails on a string (it adds it to a list): dbt runs it there
        "predicates_text": text,
    }
    return facts, ""


def _strings(value: Any) -> bool:
    return isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)


def _seed_blocker(n: Mapping[str, Any], config: Mapping[str, Any]) -> str:
    """Why dbt must load this seed ("" when sqlorch loads it as dbt-duckdb does)."""
    from sqlorch.dbt.seeds import seed_facts

    for hook in ("pre-hook", "post-hook"):
        if config.get(hook):
            return f"dbt: has {hook}"
    if config.get("grants"):
        return "dbt: grants"
    if any((config.get("persist_docs") or {}).values()):
        return "dbt: persist_docs"
    return seed_facts(n, config)[1]


def dialect_of(target_type: str, project_dir: Path) -> str:
    """Name the dialect `blocker` takes: the adapter, with the project's relevant dbt flags.

    `postgres+truthy-nulls` when dbt_project.yml turns on `enable_truthy_nulls_equals_macro`
    (dbt-postgres's merge then matches keys with IS NOT DISTINCT FROM: dbt runs those).
    """
    if target_type != "postgres":
        return target_type
    import yaml

    try:
        doc = yaml.safe_load((project_dir / "dbt_project.yml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return target_type
    flags = doc.get("flags") if isinstance(doc, Mapping) else None
    if isinstance(flags, Mapping) and flags.get("enable_truthy_nulls_equals_macro"):
        return "postgres+truthy-nulls"
    return target_type


def own_materializations(macros: Mapping[str, Any]) -> frozenset[str]:
    """The materializations among view/table/incremental/seed a project or package redefines."""
    out = set()
    for m in macros.values():
        name = str(m.get("name") or "")
        if m.get("package_name") in _DBT_PACKAGES:
            continue
        if name in _OWN_MATERIALIZATIONS:
            out.add(name.split("_")[1])
        for materialized, helpers in _HELPERS.items():
            if name in helpers or name.split("__", 1)[-1] in helpers:
                out.add(materialized)
    return frozenset(out)


def _sqlorch_meta(n: Mapping[str, Any], config: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = config.get("meta") or n.get("meta") or {}
    own = meta.get("sqlorch") if isinstance(meta, Mapping) else None
    return own if isinstance(own, Mapping) else {}


def blocker(
    node: AssetNode,
    *,
    same_file: bool,
    hook_count: int,
    forced: Mapping[str, str],
    dialect: str = "duckdb",
) -> str:
    """Why dbt must run `node` in this run ("" when sqlorch executes it natively).

    Args:
        node: a dbt node of the graph.
        same_file: the dbt target is the DuckDB file sqlorch writes to (or PostgreSQL).
        hook_count: the project's on-run-start/on-run-end hooks.
        forced: asset key -> why the settings say dbt runs it.
        dialect: the target's adapter ("duckdb" or "postgres").
    """
    if node.key in forced:
        return forced[node.key]
    reason = node.metadata.get("sqlorch_native_blocker")
    if reason is None or "sqlorch_relation" not in node.metadata:
        return "dbt: no compile facts (run `sqlorch build` after dbt parses the project)"
    if reason:
        return str(reason)
    if node.is_partitioned:
        return "dbt: partitioned (its windows are written from templates)"
    if not same_file:
        return "dbt: the target is not the DuckDB file sqlorch writes to"
    if hook_count:
        return "dbt: the project has on-run-start/on-run-end hooks"
    facts = node.metadata.get("sqlorch_incremental") or {}
    merge = facts.get("strategy") == "merge"
    if dialect.startswith("postgres") and merge and facts.get("predicates_text"):
        # dbt-postgres's merge adds the string to a list and fails; dbt-duckdb wraps it
        return "dbt: incremental_predicates is a string (merge)"
    if dialect == "postgres+truthy-nulls" and merge and isinstance(facts.get("unique_key"), str):
        return "dbt: flag enable_truthy_nulls_equals_macro (merge key IS NOT DISTINCT FROM)"
    return ""


def test_blocker(check: CheckNode, graph_nodes: Mapping[str, AssetNode]) -> str:
    """Why dbt must run data test `check` ("" when sqlorch may run its compiled SQL).

    Its compiled SQL is cached under the render inputs of the nodes it tests, which cover
    the test's code and configuration (sqlorch.dbt.meta): every one must be a dbt node.
    """
    if check.is_unit_test:
        return "dbt: unit test"
    if not check.asset_keys:
        return "dbt: tests no model"
    for key in check.asset_keys:
        node = graph_nodes.get(key)
        if node is None or node.unique_id is None or "sqlorch_render_inputs" not in node.metadata:
            return "dbt: tests a relation no dbt node produces"
    return ""
