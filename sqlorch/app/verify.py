"""`sqlorch verify`: build the selection both ways and prove the relations are the same.

The warehouse file is copied twice under `.sqlorch/verify/` (a PostgreSQL target's database
twice with CREATE DATABASE ... TEMPLATE, sqlorch.app.verify_pg), so both builds start from the
same sources, seeds and Python assets; the selected dbt nodes are built into one copy with
dbt executing every node (`execution = "dbt"`) and into the other as `sqlorch build` runs
them (native where sqlorch reproduces dbt). Then each selected relation is compared: its
kind (table or view), column names and types in order, row count and a content hash that
ignores row order; and each dbt test's outcome. Any difference is reported per model.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlorch.app.plans import BuildRequest, plan_request
from sqlorch.core.plan.definition import Plan
from sqlorch.errors import ConfigError, WarehouseError
from sqlorch.events import Listener
from sqlorch.load.project import Project, load_project
from sqlorch.settings import Settings
from sqlorch.state.store import StateStore


@dataclass(frozen=True, slots=True)
class RelationFacts:
    """What `verify` compares of one relation."""

    kind: str | None  # "table" | "view" | None (missing)
    columns: tuple[tuple[str, str], ...] = ()
    rows: int | None = None
    content: str | None = None


@dataclass(frozen=True, slots=True)
class ModelComparison:
    """One selected dbt node, built both ways."""

    key: str
    execution: str  # "native" or why dbt executed it
    dbt: RelationFacts
    native: RelationFacts
    differences: tuple[str, ...] = ()

    @property
    def same(self) -> bool:
        """True when the two builds agree."""
        return not self.differences


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The comparison of every selected dbt node, and of the tests' outcomes."""

    models: tuple[ModelComparison, ...]
    tests: dict[str, tuple[str, str]] = field(default_factory=dict)  # uid -> (dbt, native)
    failed_runs: tuple[str, ...] = ()

    @property
    def same(self) -> bool:
        """True when nothing differs."""
        return (
            all(m.same for m in self.models)
            and all(a == b for a, b in self.tests.values())
            and not self.failed_runs
        )


def verify(
    settings: Settings,
    select: Sequence[str] = (),
    exclude: Sequence[str] = (),
    listeners: Sequence[Listener] = (),
    *,
    full_refresh: bool = False,
) -> VerifyResult:
    """Build the selected dbt nodes with dbt and natively, and compare the results.

    `full_refresh`: both builds get `--full-refresh` (incremental models are rebuilt).

    Raises:
        ConfigError: the target is neither a DuckDB file nor a PostgreSQL database, or the
            selection holds no dbt node.
        WarehouseError: the PostgreSQL database cannot be copied (CREATE DATABASE ... TEMPLATE).
        SqlorchError: the project cannot be loaded or the selection is malformed.
    """
    project = load_project(settings)
    target = project.target
    on_postgres = target.type == "postgres"
    if on_postgres:
        from sqlorch.app.verify_pg import copy_databases, require_postgres_copyable

        require_postgres_copyable(target.options)
    elif target.type != "duckdb" or not target.path or target.path == ":memory:":
        raise ConfigError(
            f"`sqlorch verify` compares two copies of a DuckDB file or PostgreSQL database; "
            f"target {target.name!r} of profile {target.profile!r} is {target.type!r}. Run it "
            "against a DuckDB or PostgreSQL target (--target)."
        )
    root = settings.state_dir / "verify"
    shutil.rmtree(root, ignore_errors=True)
    copies: dict[str, str] = {}
    if on_postgres:
        copies = copy_databases(target.options, ("dbt", "native"))
    else:
        source = Path(str(target.path)).resolve()
        for mode in ("dbt", "native"):
            db = root / mode / source.name
            _copy_database(source, db)
            copies[mode] = str(db)
    outcomes: dict[str, Any] = {}
    execution: dict[str, str] = {}
    keys: list[str] = []
    relations: dict[str, dict[str, tuple[str, str]]] = {}
    for mode in ("dbt", "native"):
        folder = root / mode
        folder.mkdir(parents=True, exist_ok=True)
        copy_settings = _settings_for(settings, project, folder, copies[mode], mode)
        copied = load_project(copy_settings)
        store = StateStore(copy_settings.state_path)
        plan = _dbt_plan(copied, store, select, exclude)
        copied.invoker.full_refresh = full_refresh
        keys = [s.key for s in plan.steps]
        relations[mode] = {k: _relation(copied, k) for k in keys}
        if mode == "native":
            from sqlorch.app.execution import plan_execution

            execution = plan_execution(copied, plan)
        from sqlorch.app.build import execute

        outcome, _hidden = execute(copied, plan, store, listeners, command="verify")
        outcomes[mode] = outcome
    if on_postgres:
        from sqlorch.app.verify_pg import compare_databases

        pairs = {
            k: (relations["dbt"].get(k, relations["native"][k]), relations["native"][k])
            for k in keys
        }
        raw = compare_databases(target.options, (copies["dbt"], copies["native"]), pairs)
        facts = {k: (RelationFacts(*a), RelationFacts(*b)) for k, (a, b) in raw.items()}
    else:
        facts = compare_files(Path(copies["dbt"]), Path(copies["native"]), project, keys)
    models = tuple(
        ModelComparison(k, execution.get(k, "dbt"), a, b, _differences(a, b))
        for k, (a, b) in facts.items()
    )
    by_dbt, by_sqlorch = outcomes["dbt"].check_statuses, outcomes["native"].check_statuses
    tests = {
        uid: (str(by_dbt.get(uid, "-")), str(by_sqlorch.get(uid, "-")))
        for uid in sorted(set(by_dbt) | set(by_sqlorch))
    }
    failed = tuple(m for m in ("dbt", "native") if outcomes[m].status != "success")
    return VerifyResult(models, tests, failed)


def _copy_database(source: Path, dest: Path) -> None:
    """Copy the warehouse file (checkpointed first, so the copy holds everything)."""
    import duckdb

    dest.parent.mkdir(parents=True, exist_ok=True)
    if source.exists():
        try:
            con = duckdb.connect(str(source))
            con.execute("checkpoint")
            con.close()
        except duckdb.Error as exc:
            raise WarehouseError(
                f"Could not open {source} to copy it for `sqlorch verify`: {exc}. Close other "
                "processes holding it (a build, a DuckDB shell) and run again."
            ) from exc
        shutil.copyfile(source, dest)


def _relation(project: Project, key: str) -> tuple[str, str]:
    """(schema, name) of a dbt node's relation."""
    relation = project.graph.assets[key].metadata.get("sqlorch_relation")
    if relation:
        return (str(relation[1]), str(relation[2]))
    schema, name = key.split(".", 1)
    return (schema, name)


def _settings_for(
    settings: Settings, project: Project, folder: Path, db: str, mode: str
) -> Settings:
    """Settings of one copy: its own profiles.yml (the target's file or database), state."""
    import yaml

    target = project.target
    doc = yaml.safe_load(target.profiles_file.read_text()) or {}
    # only this target's output: other outputs may hold Jinja (env_var) that YAML re-quoting
    # would change
    field = "dbname" if target.type == "postgres" else "path"
    output = {**doc[target.profile]["outputs"][target.name], field: db}
    if field == "dbname":
        output.pop("database", None)
    doc = {target.profile: {"target": target.name, "outputs": {target.name: output}}}
    # double-quoted scalars: Jinja inside keeps its single quotes as written
    text = yaml.safe_dump(doc, sort_keys=False, default_style='"')
    (folder / "profiles.yml").write_text(text)
    execution = {"default": "dbt"} if mode == "dbt" else dict(settings.execution)
    return dataclasses.replace(
        settings,
        profiles_dir=folder,
        target=target.name,
        state_path=folder / "state.db",
        state_url=None,  # each copy has its own SQLite state, whatever the project uses
        execution=execution,
        state_root=folder / "state",
    )


def _dbt_plan(
    project: Project, store: StateStore, select: Sequence[str], exclude: Sequence[str]
) -> Plan:
    """Every selected dbt model, seed and snapshot (and their tests), built in full."""
    request = BuildRequest(tuple(select), tuple(exclude), full=True)
    plan = plan_request(project, store, request)
    graph = project.graph
    steps = tuple(s for s in plan.steps if graph.assets[s.key].kind.is_dbt)
    if not steps:
        raise ConfigError(
            "The selection holds no dbt model, seed or snapshot: `sqlorch verify` compares "
            "what dbt and sqlorch build. Select dbt nodes (-s)."
        )
    chosen = {s.key for s in steps}
    checks = tuple(
        c
        for c in plan.checks
        if graph.checks[c].runs_in_dbt and set(graph.checks[c].asset_keys) <= chosen
    )
    return dataclasses.replace(plan, steps=steps, checks=checks)


def compare_files(
    first: Path, second: Path, project: Project, keys: Sequence[str]
) -> dict[str, tuple[RelationFacts, RelationFacts]]:
    """Read the facts of each relation `keys` names in both files (one connection)."""
    import duckdb

    con = duckdb.connect()
    try:
        con.execute(f"attach '{first}' as verify_a (read_only)")
        con.execute(f"attach '{second}' as verify_b (read_only)")
        out = {}
        for key in keys:
            node = project.graph.assets[key]
            relation = node.metadata.get("sqlorch_relation")
            schema, name = (relation[1], relation[2]) if relation else key.split(".", 1)
            out[key] = (
                relation_facts(con, "verify_a", schema, name),
                relation_facts(con, "verify_b", schema, name),
            )
        return out
    finally:
        con.close()


def relation_facts(con: Any, catalog: str, schema: str, name: str) -> RelationFacts:
    """Kind, columns (name, type) in order, rows and an order-free content hash."""
    row = con.execute(
        "select table_type from information_schema.tables where table_catalog = ? "
        "and table_schema = ? and table_name = ?",
        [catalog, schema, name],
    ).fetchone()
    if row is None:
        return RelationFacts(None)
    kind = "view" if str(row[0]).upper() == "VIEW" else "table"
    columns = tuple(
        (str(c), str(t))
        for c, t in con.execute(
            "select column_name, data_type from information_schema.columns where "
            "table_catalog = ? and table_schema = ? and table_name = ? order by ordinal_position",
            [catalog, schema, name],
        ).fetchall()
    )
    target = ".".join('"' + p.replace('"', '""') + '"' for p in (catalog, schema, name))
    counted = con.execute(
        f"select count(*), coalesce(sum(hash(t)::hugeint), 0) from {target} as t"
    ).fetchone()
    return RelationFacts(kind, columns, int(counted[0]), str(counted[1]))


def _differences(a: RelationFacts, b: RelationFacts) -> tuple[str, ...]:
    """Say how the native build's relation differs from dbt's."""
    if a.kind is None or b.kind is None:
        if a.kind == b.kind:
            return ("built neither way",)
        return (f"missing in the {'dbt' if a.kind is None else 'native'} build",)
    out = []
    if a.kind != b.kind:
        out.append(f"a {b.kind} natively, a {a.kind} by dbt")
    if a.columns != b.columns:
        out.append(f"columns differ: dbt {_cols(a)}; native {_cols(b)}")
    if a.rows != b.rows:
        out.append(f"rows differ: dbt {a.rows}, native {b.rows}")
    elif a.content != b.content:
        out.append("contents differ (same row count)")
    return tuple(out)


def _cols(f: RelationFacts) -> str:
    return ", ".join(f"{c} {t}" for c, t in f.columns)
