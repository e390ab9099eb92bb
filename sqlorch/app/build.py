"""Run a command end to end: load, select, plan, execute, record."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlorch.core.graph import AssetGraph, AssetKind
from sqlorch.core.plan.builder import build_plan
from sqlorch.core.plan.definition import Plan
from sqlorch.core.plan.staleness import (
    AssetRecord,
    StateSnapshot,
    fresher_upstream,
    modified,
    own_reasons,
    stale_reasons,
)
from sqlorch.core.selection import STATE_METHODS, StateSets
from sqlorch.errors import ConfigError, SelectionError, WarehouseError
from sqlorch.events import Event, EventKind, Listener, utcnow
from sqlorch.execute.policies import RunPolicies
from sqlorch.load.project import Project
from sqlorch.state.store import (
    StateStore,
    attempt_row,
    check_result_row,
    event_row,
    materialization_row,
)

if TYPE_CHECKING:
    from sqlorch.core.partitions import PartitionsDefinition, PartitionSet
    from sqlorch.core.plan.partitions import AssetPartitions
    from sqlorch.execute.scheduler import Executor
    from sqlorch.execute.status import RunOutcome

log = logging.getLogger(__name__)


_CHECK_EVENTS = (EventKind.CHECK_PASSED, EventKind.CHECK_WARNED, EventKind.CHECK_FAILED)


class StateRecorder:
    """Write every event of a run to the state store, and materializations after commit.

    Rows are written in small transactions (at most every `interval` seconds, and at the end
    of the run): one SQLite write per event would make the scheduling thread fight dbt's
    threads for the GIL. A process killed outright loses at most that interval of history;
    the tables themselves are never ahead of a lost record by more than a rebuild.
    """

    def __init__(
        self,
        store: StateStore,
        run_id: str,
        interval: float = 0.2,
        definitions: Mapping[str, PartitionsDefinition] | None = None,
    ) -> None:
        self.store = store
        self.definitions = dict(definitions or {})
        self._ledger: list[tuple[str, list[list[str]], str, str, str | None]] = []
        self.run_id = run_id
        self.interval = interval
        self._events: list[tuple[Any, ...]] = []
        self._attempts: list[tuple[Any, ...]] = []
        self._mats: list[tuple[Any, ...]] = []
        self._checks: list[tuple[Any, ...]] = []
        self._started: dict[str, str] = {}
        self._last = time.monotonic()

    def __call__(self, event: Event) -> None:
        data = event.data
        key = event.asset
        self._events.append(
            event_row(
                event.run_id, event.ts, event.kind.value, key, event.message, event.level, data
            )
        )
        if key is not None and event.kind in (
            EventKind.PARTITIONS_MATERIALIZED,
            EventKind.PARTITIONS_FAILED,
        ):
            done = event.kind is EventKind.PARTITIONS_MATERIALIZED
            ranges = data.get("partitions") or []
            text = ", ".join(a if a == b else f"{a}..{b}" for a, b in ranges)
            self._ledger.append(
                (key, ranges, "done" if done else "failed", event.ts, data.get("code_version"))
            )
            if done:
                self._mats.append(
                    materialization_row(
                        key,
                        event.run_id,
                        event.ts,
                        data.get("rows"),
                        data.get("duration_s"),
                        data.get("code_version"),
                        None,
                        partition=text,
                    )
                )
            else:
                self._attempts.append(
                    attempt_row(
                        event.run_id, key, "failed", None, event.ts, event.message, partition=text
                    )
                )
        elif key is not None and event.kind is EventKind.ASSET_MATERIALIZED:
            self._mats.append(
                materialization_row(
                    key,
                    event.run_id,
                    event.ts,
                    data.get("rows"),
                    data.get("duration_s"),
                    data.get("code_version"),
                    data.get("metadata") or None,
                    columns=data.get("columns"),
                )
            )
            self._attempts.append(
                attempt_row(event.run_id, key, "success", self._started.pop(key, None), event.ts)
            )
        elif key is not None and event.kind in (EventKind.ASSET_FAILED, EventKind.ASSET_SKIPPED):
            status = "failed" if event.kind is EventKind.ASSET_FAILED else "skipped"
            self._attempts.append(
                attempt_row(
                    event.run_id, key, status, self._started.pop(key, None), event.ts, event.message
                )
            )
        elif key is not None and event.kind is EventKind.ASSET_STARTED:
            self._started[key] = event.ts
        elif event.kind in _CHECK_EVENTS and data.get("status") != "skipped":
            for asset in data.get("assets") or ([key] if key else []):
                self._checks.append(
                    check_result_row(
                        event.run_id,
                        str(data.get("unique_id") or data.get("check")),
                        str(data.get("check")),
                        str(data.get("check_kind") or "dbt_test"),
                        asset,
                        str(data.get("status")),
                        bool(data.get("blocking")),
                        event.ts,
                        event.message,
                        data.get("metadata") or None,
                        data.get("partition"),
                    )
                )
        if event.kind is EventKind.RUN_FINISHED or time.monotonic() - self._last >= self.interval:
            self.flush()

    def flush(self) -> None:
        """Write what is buffered."""
        if self._events or self._attempts or self._mats or self._checks:
            self.store.write_batch(self._events, self._attempts, self._mats, self._checks)
            self._events, self._attempts, self._mats, self._checks = [], [], [], []
        if self._ledger:
            from sqlorch.core.partitions import PartitionError, SegmentStatus, parse_ranges
            from sqlorch.state import ledger

            pending, self._ledger = self._ledger, []
            for key, ranges, status, ts, code_version in pending:
                definition = self.definitions.get(key)
                if definition is None:
                    continue
                try:
                    parts = parse_ranges(definition, ranges)
                except PartitionError:
                    log.warning("ledger: unreadable ranges %r of %s", ranges, key)
                    continue
                ledger.write(
                    self.store,
                    key,
                    definition,
                    parts,
                    SegmentStatus(status),
                    self.run_id,
                    ts,
                    code_version,
                )
        self._last = time.monotonic()


def select_assets(
    project: Project,
    select: Sequence[str] | None,
    exclude: Sequence[str] | None,
    warn: Callable[[str], None] | None = None,
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


def open_warehouse(project: Project) -> Any:
    """Open the warehouse the dbt target points at (None when Python assets need none).

    Raises:
        ConfigError: the target cannot hold Python assets.
    """
    from sqlorch.warehouse.duckdb import DuckDBWarehouse

    target = project.target
    if target.type == "duckdb" and target.path and target.path != ":memory:":
        try:
            return DuckDBWarehouse(target.path, target.config)
        except WarehouseError as exc:
            cause = str(exc.__cause__ or exc)
            hint = (
                " The file is held by another process (a second sqlorch, dbt, or a DuckDB "
                "shell): close it and run again."
                if "lock" in cause.lower()
                else " Check `path:` (its folder must exist) and the other settings of the target."
            )
            raise ConfigError(
                f"Target {target.name!r} of profile {target.profile!r} ({target.profiles_file}) "
                f"could not be opened: DuckDB file {str(Path(target.path).resolve())!r}: "
                f"{cause}.{hint}"
            ) from exc
    if project.python_assets:
        what = (
            "an in-memory DuckDB database, which sqlorch cannot share with dbt"
            if target.type == "duckdb"
            else f"a {target.type!r} warehouse, which this sqlorch version cannot write to yet"
        )
        raise ConfigError(
            f"Target {target.name!r} of profile {target.profile!r} ({target.profiles_file}) is "
            f"{what}. Python assets need a DuckDB file: set `path:` to a .duckdb file."
        )
    return None


@dataclasses.dataclass(frozen=True, slots=True)
class WarehouseView:
    """What the planner reads from the warehouse itself.

    `relations`: the `schema.name` relations that exist (None: unknown). `loaded_at`: for
    observed sources with a dbt `loaded_at_field`, the newest value of it (UTC, ISO-8601).
    """

    relations: frozenset[str] | None
    loaded_at: dict[str, str] = dataclasses.field(default_factory=dict)


def observe_warehouse(project: Project, warehouse: Any = None) -> WarehouseView:
    """Read which relations exist and when observed sources last received rows.

    A DuckDB file that does not exist holds nothing. The answer is remembered with the size
    and modification time of the file and its WAL: while neither changed (a DROP, an INSERT,
    a checkpoint all change one), the file is not opened at all, so a no-op build does not
    even import DuckDB. Otherwise, without an open `warehouse`, the file is opened read-only
    for a moment; when another process holds it (a build), nothing is known (None) rather
    than waited for.
    """
    path = project.invoker.duckdb_path
    if project.target.type != "duckdb" or path is None:
        return WarehouseView(None)
    if not path.exists():
        return WarehouseView(frozenset())
    wanted = _loaded_at_fields(project)
    memo = project.settings.state_dir / "relations.json"
    if warehouse is None:
        cached = _read_memo(memo, path, wanted)
        if cached is not None:
            return cached
        import duckdb

        try:
            con = duckdb.connect(str(path), read_only=True)
        except duckdb.Error:
            try:
                # this process already has the file open (dbt-duckdb, a long-lived process):
                # a connection with the same configuration shares that instance
                con = duckdb.connect(str(path), config=dict(project.target.config))
            except duckdb.Error:
                log.debug("warehouse busy; table presence not checked", exc_info=True)
                return WarehouseView(None)
        try:
            view = _observe(con, wanted)
        finally:
            con.close()
        remember_view(memo, path, wanted, view)
        return view
    return _observe(warehouse.connection, wanted)


def _loaded_at_fields(project: Project) -> dict[str, str | None]:
    """Observed sources that say when their rows arrived: key -> dbt `loaded_at_field`."""
    return {
        n.key: n.loaded_at_field
        for n in project.graph
        if n.kind is AssetKind.SOURCE and n.loaded_at_field
    }


def _observe(con: Any, wanted: Mapping[str, str | None]) -> WarehouseView:
    from sqlorch.warehouse.duckdb import quote_key

    relations = frozenset(
        r[0]
        for r in con.execute(
            "SELECT lower(table_schema || '.' || table_name) FROM information_schema.tables "
            "WHERE table_catalog = current_database()"
        ).fetchall()
    )
    loaded: dict[str, str] = {}
    for key, field in wanted.items():
        if key not in relations:
            continue
        try:
            row = con.execute(f"SELECT max({field}) FROM {quote_key(key)}").fetchone()
        except Exception as exc:  # noqa: BLE001 - a bad loaded_at_field only loses freshness
            log.warning("source %s: loaded_at_field %r could not be read: %s", key, field, exc)
            continue
        stamp = _utc_iso(row[0] if row else None)
        if stamp is not None:
            loaded[key] = stamp
    return WarehouseView(relations, loaded)


def _utc_iso(value: Any) -> str | None:
    """A timestamp (naive = UTC), date or ISO string as `events.utcnow()` formats it."""
    from datetime import UTC, date, datetime

    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if isinstance(value, datetime):
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    elif isinstance(value, date):
        value = datetime(value.year, value.month, value.day, tzinfo=UTC)
    else:
        return None
    return str(value.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


def _stamp(path: Path) -> list[list[int]]:
    out = []
    for p in (path, path.with_name(path.name + ".wal")):
        try:
            st = p.stat()
            out.append([st.st_size, st.st_mtime_ns])
        except OSError:
            out.append([])
    return out


def _read_memo(memo: Path, path: Path, wanted: Mapping[str, str | None]) -> WarehouseView | None:
    try:
        doc = json.loads(memo.read_text())
    except (OSError, ValueError):
        return None
    if (
        doc.get("path") != str(path)
        or doc.get("stamp") != _stamp(path)
        or doc.get("wanted") != wanted
    ):
        return None
    return WarehouseView(frozenset(doc.get("relations", ())), dict(doc.get("loaded_at", {})))


def remember_view(
    memo: Path, path: Path, wanted: Mapping[str, str | None], view: WarehouseView
) -> None:
    """Remember what the DuckDB file `path` holds as of its current size and time."""
    if view.relations is None:
        return
    doc = {
        "path": str(path),
        "stamp": _stamp(path),
        "wanted": wanted,
        "relations": sorted(view.relations),
        "loaded_at": view.loaded_at,
    }
    tmp = memo.with_suffix(f".{os.getpid()}.tmp")
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, memo)
    except OSError:
        log.debug("could not write %s", memo, exc_info=True)


def _record_relations_after_run(project: Project, warehouse: Any) -> None:
    """After a run: observe the warehouse, close every handle on the file, stamp it.

    The database is checkpointed when its last connection closes; stamping after that makes
    the next no-op build read the observation without opening the file.
    """
    path = project.invoker.duckdb_path
    try:
        view: WarehouseView | None = observe_warehouse(project, warehouse)
    except Exception:  # noqa: BLE001 - only a cache
        log.debug("could not observe the warehouse", exc_info=True)
        view = None
    warehouse.close()
    project.invoker.release()
    if view is not None and path is not None and path.exists():
        memo = project.settings.state_dir / "relations.json"
        remember_view(memo, path, _loaded_at_fields(project), view)


def state_snapshot(
    store: StateStore,
    relations: frozenset[str] | WarehouseView | None = None,
    graph: AssetGraph | None = None,
) -> StateSnapshot:
    """Read what the planner needs from the state store (and what the warehouse showed).

    Blocking checks whose latest result failed keep their asset stale; checks the project
    no longer has (by id, when `graph` is given) do not. An observed source's newest
    `loaded_at_field` value stands for its materialization time.
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
    for key, st in store.asset_states().items():
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
        "result:error": {k for k, s in outcomes.items() if s == "failed"},
        "result:fail": {k for k, s in outcomes.items() if s == "failed"},
        "result:skipped": {k for k, s in outcomes.items() if s == "skipped"},
        "result:success": {k for k, s in outcomes.items() if s == "success"},
        "source_status:fresher": fresher_upstream(graph, snapshot),
    }


def plan_build(
    project: Project,
    store: StateStore,
    select: Sequence[str] | None,
    exclude: Sequence[str] | None,
    warn: Callable[[str], None] | None = None,
    now: datetime | None = None,
    *,
    full: bool = False,
    warehouse: Any = None,
) -> Plan:
    """Select and plan a build: the stale selected assets (all selected with `full`), and
    per partitioned asset the partitions to run."""
    snapshot = state_snapshot(store, observe_warehouse(project, warehouse), project.graph)
    sets = state_sets(project.graph, store, snapshot) if _uses_state(select, exclude) else None
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
) -> dict[str, AssetPartitions]:
    """Plan the partitions of the partitioned assets among `keys` from the ledger.

    With `full`, every partition that should exist of each of them. With `snapshot`, the
    unpartitioned assets they read count too (see `partition_plan.plan_graph`).
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
    if snapshot is not None:
        plain = {
            n.key: PlainUpstream(
                snapshot.record(n.key).materialized_at,
                snapshot.record(n.key).materialized_run,
                full or bool(own_reasons(n, graph, snapshot)),
            )
            for n in graph
            if n.partitions is None and n.is_materializable
        }
    return plan_graph(graph, keys, ledgers, now, forced=forced, propagate=propagate, plain=plain)


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
    warn: Callable[[str], None] | None = None,
) -> Plan:
    """Plan a backfill: the partitions `start`..`end` (or `keys`) of the selected assets
    and, with `downstream`, the partitions that read them and the assets downstream.

    Raises:
        PartitionError: a date or key is invalid or outside an asset's partitions, or the
            selection holds no partitioned asset.
    """
    from sqlorch.core.partitions import PartitionError

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
    snapshot = state_snapshot(store, observe_warehouse(project), graph)
    return build_plan(graph, keys_to_plan, snapshot, partitions=planned)


def plan_retry(
    project: Project,
    store: StateStore,
    run_id: str,
    warn: Callable[[str], None] | None = None,
) -> Plan:
    """Plan the assets that failed or were skipped in `run_id`, and those whose blocking
    check failed there, with their checks."""
    outcomes = store.run_attempts(run_id)
    why = {k: f"{s} in run {run_id}" for k, s in outcomes.items() if s in ("failed", "skipped")}
    for result in store.check_results(run_id=run_id):
        if (
            result.blocking
            and result.status in ("fail", "error")
            and outcomes.get(result.asset) == "success"
        ):
            why.setdefault(result.asset, f"check {result.name} failed in run {run_id}")
    graph = project.graph
    gone = sorted(k for k in why if k not in graph.assets)
    if gone and warn is not None:
        warn(f"No longer in the project, not retried: {', '.join(gone)}.")
    keys = {k for k in why if k in graph.assets}
    if not keys:
        return Plan(steps=(), checks=(), selected=frozenset())
    snapshot = state_snapshot(store, observe_warehouse(project), graph)
    # a partitioned asset retries its missing and failed partitions, not all of them
    partitions = plan_partitions(project, store, keys)
    plan = build_plan(graph, keys, snapshot, full=True, partitions=partitions)
    steps = tuple(
        dataclasses.replace(s, reasons=(why[s.key], *_not_full(s.reasons))) for s in plan.steps
    )
    return dataclasses.replace(plan, steps=steps)


def _not_full(reasons: Sequence[str]) -> tuple[str, ...]:
    return tuple(r for r in reasons if not r.startswith("--full"))


def _uses_state(*selectors: Sequence[str] | None) -> bool:
    return any(m in token for sel in selectors for token in sel or () for m in STATE_METHODS)


def run_policies(project: Project, store: StateStore) -> RunPolicies:
    """Gather what the executor needs besides the plan: checks' inputs, retries, rates.

    Raises:
        ConfigError: a `retries` setting is malformed or its selector matches nothing.
    """
    from sqlorch.api.retries import RetryPolicy, policy_from_settings
    from sqlorch.core.checks import Observed

    settings = project.settings
    retries: dict[str, RetryPolicy] = {}
    for selector, raw in settings.retries.items():
        where = f'[tool.sqlorch.retries."{selector}"] in {settings.settings_file}'
        policy = policy_from_settings(raw, where)
        try:
            keys = select_assets(project, [selector], None)
        except SelectionError as exc:
            raise ConfigError(f"{where}: {exc.message}") from exc
        for key in keys:
            retries[key] = policy
    previous = {
        asset: Observed(m.rows, m.columns, m.materialized_at)
        for (asset, partition), m in store.last_materializations().items()
        if partition is None
    }
    return RunPolicies(
        python_checks=dict(project.python_checks),
        previous=previous,
        retries=retries,
        pool_rates=dict(settings.pool_rates),
    )


def execute(
    project: Project,
    plan: Plan,
    store: StateStore,
    listeners: Iterable[Listener],
    *,
    command: str = "build",
    selection: str = "",
    threads: int | None = None,
) -> RunOutcome:
    """Execute `plan`, recording the run in `store`."""
    settings = project.settings
    from sqlorch.execute.scheduler import Executor
    from sqlorch.execute.status import new_run_id

    run_id = new_run_id()
    warehouse = open_warehouse(project) if plan.steps or plan.checks else None
    if warehouse is not None and any(s.partitions for s in plan.steps):
        from sqlorch.execute.chunks import check_partition_columns

        try:
            check_partition_columns(project.graph, plan.steps, warehouse)
        except BaseException:
            warehouse.close()
            raise
    store.mark_abandoned_runs(utcnow())
    graph = project.graph
    store.save_code_parts(
        (s.key, graph.assets[s.key].code_version, graph.assets[s.key].code_parts)
        for s in plan.steps
        if graph.assets[s.key].code_version
    )
    store.start_run(run_id, command, selection, utcnow())
    outcome: RunOutcome | None = None
    executor: Executor | None = None
    interrupted = False
    recorder: StateRecorder | None = None
    try:
        recorder = StateRecorder(
            store,
            run_id,
            definitions={n.key: n.partitions for n in project.graph if n.partitions is not None},
        )
        executor = Executor(
            graph=project.graph,
            plan=plan,
            python_fns={k: fa.definition for k, fa in project.python_assets.items()},
            warehouse=warehouse,
            invoker=project.invoker,
            dbt_project=project.dbt,
            run_id=run_id,
            run_dir=settings.state_dir / "runs" / run_id,
            threads=threads or settings.threads,
            listeners=[recorder, *listeners],
            pools=dict(settings.pools),
            policies=run_policies(project, store),
        )
        try:
            outcome = executor.run()
        except KeyboardInterrupt:
            interrupted = True
            raise
        return outcome
    finally:
        from sqlorch.execute.status import Status

        if recorder is not None:
            recorder.flush()
        if outcome is None:
            states = executor.status.values() if executor is not None else []
            store.finish_run(
                run_id,
                "cancelled" if interrupted else "failed",
                utcnow(),
                sum(1 for s in states if s is Status.SUCCEEDED),
                sum(1 for s in states if s is Status.FAILED),
                sum(1 for s in states if s is not Status.SUCCEEDED and s is not Status.FAILED),
            )
        else:
            store.finish_run(
                run_id,
                outcome.status,
                utcnow(),
                outcome.count(Status.SUCCEEDED),
                outcome.count(Status.FAILED),
                outcome.count(Status.SKIPPED),
            )
        if warehouse is not None and not interrupted:
            # (after a second Ctrl-C the process exits at once)
            _record_relations_after_run(project, warehouse)
