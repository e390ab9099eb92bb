"""Plan what a build-like command runs: select, read state, plan partitions and steps.

A command is asked for by a request value (`BuildRequest`, `BackfillRequest`,
`RetryRequest`, `CheckRequest`); `plan_request` turns one into a `Plan`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar

from sqlorch.core.graph import AssetGraph, AssetNode
from sqlorch.core.plan.builder import build_plan
from sqlorch.core.plan.definition import Plan, Reason, ReasonKind
from sqlorch.core.plan.groups import with_load_groups
from sqlorch.core.plan.staleness import (
    AssetRecord,
    StateSnapshot,
    fresher_upstream,
    modified,
    own_reasons,
    stale_reasons,
    table_missing,
)
from sqlorch.core.selection import STATE_METHODS, StateSets
from sqlorch.errors import SqlorchError
from sqlorch.events import AttemptOutcome
from sqlorch.load.project import Project
from sqlorch.state.store import AssetState, RunRecord, StateStore, open_store
from sqlorch.warehouse.base import Warehouse
from sqlorch.warehouse.observe import (
    WarehouseView,
    loaded_at_fields,
    observe_warehouse,
    open_warehouse,
)

if TYPE_CHECKING:
    from sqlorch.core.partitions.ranges import PartitionSet
    from sqlorch.core.plan.partitions import AssetPartitions

log = logging.getLogger(__name__)

Warn = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class BuildRequest:
    """`sqlorch build`: the stale selected assets (all selected with `full`)."""

    command: ClassVar[str] = "build"
    select: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    full: bool = False
    skip_non_breaking: bool = False
    #: dbt's flags (issue 14): rebuild incremental models and seeds from scratch (and every
    #: partition of the selection); read unselected upstream from a state manifest (`prod`:
    #: the production target's); copy the run's dbt artifacts to a folder
    full_refresh: bool = False
    defer_state: str | None = None
    target_path: str | None = None
    #: dbt's `--vars` (YAML or JSON): part of every code version, like the project's vars
    vars: str | None = None
    #: accept changed columns (schema_change checks pass, partitioned tables evolve)
    accept_schema: bool = False
    #: wait up to this many seconds for another build holding the assets (None: exit 2)
    wait: float | None = None


@dataclass(frozen=True, slots=True)
class BackfillRequest:
    """`sqlorch backfill`: a range of partitions of the selected assets (and downstream)."""

    command: ClassVar[str] = "backfill"
    select: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    start: str | None = None
    end: str | None = None
    keys: tuple[str, ...] = ()
    downstream: bool = True


@dataclass(frozen=True, slots=True)
class RetryRequest:
    """`sqlorch retry`: what failed or was skipped in a run (None: the last run)."""

    command: ClassVar[str] = "retry"
    run_id: str | None = None


@dataclass(frozen=True, slots=True)
class CheckRequest:
    """`sqlorch check`: the checks of the selected assets, building nothing."""

    command: ClassVar[str] = "check"
    select: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


Request = BuildRequest | BackfillRequest | RetryRequest | CheckRequest


def selection_text(request: Request, retried: RunRecord | None = None) -> str:
    """Return how the run's selection is recorded (`sqlorch runs` shows it)."""
    if isinstance(request, RetryRequest):
        return f"retry {retried.run_id if retried else request.run_id}"
    return " ".join([*request.select, *(f"--exclude {e}" for e in request.exclude)])


def plan_request(
    project: Project,
    store: StateStore,
    request: Request,
    *,
    retried: RunRecord | None = None,
    warn: Warn | None = None,
    note: Warn | None = None,
) -> Plan:
    """Plan what `request` runs (`retried`: the run a `RetryRequest` names, found).

    The assets one load writes together (a dlt source's tables) are planned together.
    """
    plan = _plan_request(project, store, request, retried=retried, warn=warn, note=note)
    if isinstance(request, CheckRequest):
        return plan
    return with_load_groups(project.graph, plan)


def _plan_request(
    project: Project,
    store: StateStore,
    request: Request,
    *,
    retried: RunRecord | None = None,
    warn: Warn | None = None,
    note: Warn | None = None,
) -> Plan:
    match request:
        case BuildRequest():
            plan = plan_build(
                project, store, request.select, request.exclude, warn, full=request.full
            )
            if request.skip_non_breaking:
                plan = skip_non_breaking(project, plan, warn, note)
            return plan
        case BackfillRequest():
            return plan_backfill(
                project,
                store,
                list(request.select),
                list(request.exclude),
                start=request.start,
                end=request.end,
                keys=request.keys,
                downstream=request.downstream,
                warn=warn,
            )
        case RetryRequest():
            assert retried is not None, "a retry plans a run that was found"
            return plan_retry(project, store, retried.run_id, warn)
        case CheckRequest():
            return plan_checks(project, request.select, request.exclude, warn)


def observe(
    project: Project, warehouse: Warehouse | None = None, *, present: bool = True
) -> WarehouseView:
    """Observe the project's warehouse (see `warehouse.observe.observe_warehouse`).

    A target that is not a DuckDB file is observed through a connection of its own, opened
    here for the moment (unknown when it cannot be opened). With `present`, a view whose
    files are gone (a dbt-duckdb `external` model's parquet/csv) counts as missing.
    """
    opened = None
    reads = project.settings.warehouse_reads  # False: the web UI, which opens no warehouse
    # Spark: opening it starts a JVM (10-20 s) and locks an embedded metastore a running
    # build holds; without an open session its tables are looked for as directories
    heavy = project.target.type == "spark"
    if warehouse is None and heavy:
        from sqlorch.warehouse.spark_presence import has_session, observe_files

        if not has_session(project.target.options):
            view = observe_files(project.target.options, project.graph)
            return view.present() if present else view
        heavy = False  # this process runs a session already: its catalog costs nothing
    if warehouse is None and project.invoker.duckdb_path is None and reads and not heavy:
        try:
            warehouse = opened = open_warehouse(
                project.target, needs_file=False, environment=project.settings.environment
            )
        except SqlorchError:
            log.debug("warehouse not reachable; table presence not checked", exc_info=True)
    try:
        view = _observe_with(project, warehouse)
        return view.present() if present else view
    finally:
        if opened is not None:
            opened.close()


def _observe_with(project: Project, warehouse: Warehouse | None) -> WarehouseView:
    return observe_warehouse(
        project.invoker.duckdb_path,
        project.target.config,
        loaded_at_fields(project.graph),
        project.settings.state_dir / "relations.json",
        warehouse,
        open_file=project.settings.warehouse_reads,
        environment=project.settings.environment,
    )


def select_assets(
    project: Project,
    select: Sequence[str] | None,
    exclude: Sequence[str] | None,
    warn: Warn | None = None,
    *,
    state: StateSets | None = None,
) -> set[str]:
    """Return the selected asset keys; selectors that matched nothing go to `warn`."""
    from sqlorch.core.selection import resolve_selection

    result = resolve_selection(project.graph, list(select or ()), list(exclude or ()), state=state)
    if warn is not None:
        for token in result.unmatched:
            warn(f"The selector {token!r} matched no asset.")
        for token in result.unmatched_exclude:
            warn(f"The exclude selector {token!r} matched no asset.")
    return set(result.keys)


def state_snapshot(
    store: StateStore,
    relations: frozenset[str] | WarehouseView | None = None,
    graph: AssetGraph | None = None,
    states: Mapping[str, AssetState] | None = None,
) -> StateSnapshot:
    """Read what the planner needs from the state store (and what the warehouse showed).

    Blocking checks whose latest result failed keep their asset stale; checks the project
    no longer has (by id, when `graph` is given) do not. An observed source's newest
    `loaded_at_field` value stands for its materialization time. `states`: the store's
    `asset_states()` when the caller has read them already (one query less).
    """
    view = relations if isinstance(relations, WarehouseView) else WarehouseView(relations)
    failing: dict[str, list[str]] = {}
    for asset, results in store.failing_blocking_checks().items():
        names = [
            r.name
            for r in results
            if r.partition is None and (graph is None or r.check_id in graph.checks)
        ]
        if names:
            failing[asset] = list(dict.fromkeys(names))
    records = {
        key: AssetRecord(materialized_at=ts, materialized_run="observed")
        for key, ts in view.loaded_at.items()
    }
    for key, st in (store.asset_states() if states is None else states).items():
        records[key] = AssetRecord(
            materialized_at=st.last_materialized_at,
            materialized_run=st.materialized_run,
            code_version=st.code_version,
            code_parts=st.code_parts,
            rows=st.rows,
            last_status=st.last_status,
            last_run_id=st.last_run_id,
            failed_checks=tuple(failing.get(key, ())),
        )
    return StateSnapshot(records, view.relations)


def state_sets(graph: AssetGraph, store: StateStore, snapshot: StateSnapshot) -> StateSets:
    """The asset sets the `state:`, `result:` and `source_status:` selectors stand for."""
    last = store.runs(1)
    outcomes = store.run_attempts(last[0].run_id) if last else {}
    return {
        "state:modified": modified(graph, snapshot),
        "state:new": {
            k
            for k in graph.assets
            if graph.assets[k].is_materializable and snapshot.record(k).materialized_at is None
        },
        "state:stale": set(stale_reasons(graph, snapshot)),
        "result:error": {k for k, s in outcomes.items() if s == AttemptOutcome.FAILED},
        "result:fail": {k for k, s in outcomes.items() if s == AttemptOutcome.FAILED},
        "result:skipped": {k for k, s in outcomes.items() if s == AttemptOutcome.SKIPPED},
        "result:success": {k for k, s in outcomes.items() if s == AttemptOutcome.SUCCESS},
        "source_status:fresher": fresher_upstream(graph, snapshot),
    }


def _production_sets(project: Project, view: WarehouseView) -> StateSets | None:
    """In an environment, `state:` selectors compare with production's state (read-only):
    `state:modified` is what differs from what production last built, as dbt's `--state`."""
    if not project.settings.environment:
        return None
    prod = open_store(project.settings.production(), readonly=True)
    try:
        return state_sets(project.graph, prod, state_snapshot(prod, view, project.graph))
    finally:
        prod.close()


def plan_build(
    project: Project,
    store: StateStore,
    select: Sequence[str] | None,
    exclude: Sequence[str] | None,
    warn: Warn | None = None,
    now: datetime | None = None,
    *,
    full: bool = False,
    warehouse: Warehouse | None = None,
) -> Plan:
    """Select and plan a build: the stale selected assets (all selected with `full`), and
    per partitioned asset the partitions to run."""
    view = observe(project, warehouse)
    snapshot = state_snapshot(store, view, project.graph)
    sets = None
    if _uses_state(select, exclude):
        sets = _production_sets(project, view) or state_sets(project.graph, store, snapshot)
    selected = select_assets(project, select, exclude, warn, state=sets)
    partitions = plan_partitions(project, store, selected, now, full=full, snapshot=snapshot)
    return build_plan(project.graph, selected, snapshot, full=full, partitions=partitions)


def plan_partitions(
    project: Project,
    store: StateStore,
    keys: Iterable[str],
    now: datetime | None = None,
    forced: Mapping[str, PartitionSet] | None = None,
    propagate: bool = True,
    full: bool = False,
    snapshot: StateSnapshot | None = None,
    rebuilt: Collection[str] = (),
) -> dict[str, AssetPartitions]:
    """Plan the partitions of the partitioned assets among `keys` from the ledger.

    With `full`, every partition that should exist of each of them. With `snapshot`, the
    unpartitioned assets they read count too (see `partition_plan.plan_graph`), those in
    `rebuilt` as rebuilt by this plan whatever their state (a retry), and a partitioned
    asset whose table the warehouse does not hold has every partition missing.
    """
    from sqlorch.core.plan.partitions import PlainUpstream, plan_graph
    from sqlorch.state import ledger

    graph = project.graph
    definitions = {n.key: n.partitions for n in graph if n.partitions is not None}
    if not definitions:
        return {}
    now = now or datetime.now(UTC)
    keys = list(keys)
    if full and forced is None:
        forced = {k: d.expected(now) for k, d in definitions.items() if k in set(keys)}
    ledgers = ledger.all_segments(store, definitions)
    plain = None
    absent: set[str] = set()
    if snapshot is not None:
        plain = {
            n.key: PlainUpstream(
                snapshot.record(n.key).materialized_at,
                snapshot.record(n.key).materialized_run,
                full or n.key in rebuilt or _changed_itself(n, graph, snapshot),
            )
            for n in graph
            if n.partitions is None and n.is_materializable
        }
        absent = {k for k in definitions if table_missing(graph.assets[k], snapshot)}
    return plan_graph(
        graph,
        keys,
        ledgers,
        now,
        forced=forced,
        propagate=propagate,
        plain=plain,
        absent=absent,
    )


def _changed_itself(node: AssetNode, graph: AssetGraph, snapshot: StateSnapshot) -> bool:
    """Whether `node` is stale on its own account; a view's upstream getting rows is not:
    a view holds no data of its own, so it is looked through."""
    reasons = own_reasons(node, graph, snapshot)
    if node.materialized in ("view", "ephemeral"):
        reasons = [r for r in reasons if r.kind is not ReasonKind.UPSTREAM_NEWER]
    return bool(reasons)


def plan_backfill(
    project: Project,
    store: StateStore,
    select: Sequence[str],
    exclude: Sequence[str] | None,
    *,
    start: str | None,
    end: str | None,
    keys: Sequence[str] = (),
    downstream: bool = True,
    now: datetime | None = None,
    warn: Warn | None = None,
) -> Plan:
    """Plan a backfill: the partitions `start`..`end` (or `keys`) of the selected assets
    and, with `downstream`, the partitions that read them and the assets downstream.

    Raises:
        PartitionError: a date or key is invalid or outside an asset's partitions, or the
            selection holds no partitioned asset.
    """
    from sqlorch.errors import PartitionError

    now = now or datetime.now(UTC)
    graph = project.graph
    selected = select_assets(project, select, exclude, warn)
    partitioned = [k for k in graph.topological(selected) if graph.assets[k].partitions]
    if not partitioned:
        raise PartitionError(
            f"The selection {' '.join(select)!r} holds no partitioned asset; a backfill "
            "rebuilds partitions. `sqlorch ls` shows which assets have partitions "
            "(use `sqlorch build` for the others)."
        )
    forced: dict[str, PartitionSet] = {}
    for key in partitioned:
        definition = graph.assets[key].partitions
        assert definition is not None
        try:
            forced[key] = definition.select(now, start, end, keys)
            note = definition.clipped(now, start, end)
            if note and warn is not None:
                warn(f"Asset {key}: {note}.")
        except PartitionError as exc:
            node = graph.assets[key]
            where = (
                f" ({node.file}{':' + str(node.line) if node.line else ''})" if node.file else ""
            )
            raise PartitionError(f"Asset {key}{where}: {exc.message}", asset=key) from exc
    keys_to_plan = set(partitioned)
    if downstream:
        for key in partitioned:
            keys_to_plan |= graph.descendants(key)
    planned = plan_partitions(project, store, keys_to_plan, now, forced, propagate=downstream)
    snapshot = state_snapshot(store, observe(project), graph)
    return build_plan(graph, keys_to_plan, snapshot, partitions=planned)


def plan_retry(
    project: Project,
    store: StateStore,
    run_id: str,
    warn: Warn | None = None,
) -> Plan:
    """Plan the assets that failed or were skipped in `run_id`, and those whose blocking
    check failed there, with their checks."""
    outcomes = store.run_attempts(run_id)
    why = {
        k: Reason(f"{s} in run {run_id}", ReasonKind.RETRY)
        for k, s in outcomes.items()
        if s in (AttemptOutcome.FAILED, AttemptOutcome.SKIPPED)
    }
    for result in store.check_results(run_id=run_id):
        if (
            result.blocking
            and result.status in ("fail", "error")
            and outcomes.get(result.asset) == AttemptOutcome.SUCCESS
        ):
            text = f"check {result.name} failed in run {run_id}"
            why.setdefault(result.asset, Reason(text, ReasonKind.RETRY))
    graph = project.graph
    gone = sorted(k for k in why if k not in graph.assets)
    if gone and warn is not None:
        warn(f"No longer in the project, not retried: {', '.join(gone)}.")
    keys = {k for k in why if k in graph.assets}
    if not keys:
        return Plan(steps=(), checks=(), selected=frozenset())
    snapshot = state_snapshot(store, observe(project), graph)
    # a partitioned asset retries its missing and failed partitions, not all of them, and
    # every partition that reads an unpartitioned asset retried here
    partitions = plan_partitions(project, store, keys, snapshot=snapshot, rebuilt=keys)
    plan = build_plan(graph, keys, snapshot, full=True, partitions=partitions)
    steps = tuple(
        dataclasses.replace(s, reasons=(why[s.key], *_not_full(s.reasons))) for s in plan.steps
    )
    return dataclasses.replace(plan, steps=steps)


def _not_full(reasons: Sequence[Reason]) -> tuple[Reason, ...]:
    return tuple(r for r in reasons if r.kind is not ReasonKind.FULL)


def _uses_state(*selectors: Sequence[str] | None) -> bool:
    return any(m in token for sel in selectors for token in sel or () for m in STATE_METHODS)


def plan_checks(
    project: Project,
    select: Sequence[str] | None,
    exclude: Sequence[str] | None,
    warn: Warn | None = None,
) -> Plan:
    """Plan the checks of the selected assets on what the warehouse holds now (no steps)."""
    keys = select_assets(project, select, exclude, warn)
    checks = sorted(
        c.unique_id for c in project.graph.checks.values() if any(k in keys for k in c.asset_keys)
    )
    return Plan(steps=(), checks=tuple(checks), selected=frozenset(keys))


def skip_non_breaking(
    project: Project, plan: Plan, warn: Warn | None = None, note: Warn | None = None
) -> Plan:
    """`build --skip-non-breaking`: drop the steps no breaking change reaches (never raises).

    Each dropped step goes to `note` (`skip     KEY: why`).
    """
    from sqlorch.app.lineage import skip_non_breaking as skip

    filtered, dropped = skip(project, plan, warn or _ignore)
    if note is not None:
        for key, why in dropped.items():
            note(f"skip     {key}: {why}")
    return filtered


def _ignore(message: str) -> None:
    """Drop a warning nobody asked to see."""
