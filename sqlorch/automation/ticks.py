"""One evaluation with I/O around it: load, gather facts, call sensors, evaluate, commit.

`load_automation` reads the project and its declarations; `evaluate_now` gathers the facts
(the planner's stale set from the state store and the last observation of the warehouse,
never opening the file a build may hold), calls the due sensors and runs the pure
evaluation; `commit` records its ticks, its one queued run request, run keys and cursors in
one transaction; `sweep` finds runs whose process died.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlorch.api.automation import SensorDefinition
from sqlorch.app.plans import observe, plan_partitions, select_assets, state_snapshot
from sqlorch.automation.definitions import AutomationSpec, Resolve, read_spec
from sqlorch.automation.evaluate import (
    AssetFacts,
    Evaluation,
    Facts,
    SensorOutcome,
    TickStatus,
    evaluate,
    iso,
)
from sqlorch.automation.sensors import call_sensor, folder_outcome, list_folder
from sqlorch.core.plan.builder import build_plan
from sqlorch.errors import SelectionError
from sqlorch.events import utcnow
from sqlorch.load.project import Project, load_project
from sqlorch.settings import Settings
from sqlorch.state.automation import (
    OPEN_STATUSES,
    AutomationStore,
    RequestRecord,
    RequestStatus,
    TickRecord,
)
from sqlorch.state.rows import is_alive
from sqlorch.state.store import StateStore

log = logging.getLogger(__name__)

#: the lease name: one daemon (or one `sqlorch tick`) per state store
LEASE = "automation"
#: a launched process that has not claimed its request after this long is presumed lost
CLAIM_TIMEOUT_S = 60.0


@dataclass(slots=True)
class Loaded:
    """A project loaded for automation, with what it declares."""

    project: Project
    spec: AutomationSpec


def load_automation(settings: Settings) -> Loaded:
    """Load the project and read its automation declarations.

    Raises:
        ConfigError: a declaration is malformed (see `definitions.read_spec`).
    """
    # evaluation never opens the warehouse file a build may hold: what the last observation
    # of it remembered counts, else table presence is unknown
    project = load_project(dataclasses.replace(settings, warehouse_reads=False))
    spec = read_spec(
        settings, project.graph, _resolver(project), discover_sensors(settings, project)
    )
    return Loaded(project, spec)


def discover_sensors(settings: Settings, project: Project) -> list[SensorDefinition]:
    """Return the `@sensor` functions of the ingest modules (imported by `load_project`)."""
    roots = [(settings.root / entry).resolve() for entry in settings.ingest]
    modules = {fa.module for fa in project.python_assets.values()}
    found: dict[int, SensorDefinition] = {}
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        inside = file is not None and any(
            Path(file).resolve().is_relative_to(r) or Path(file).resolve() == r.with_suffix(".py")
            for r in roots
        )
        if not (inside or name in modules):
            continue
        for value in vars(module).values():
            if isinstance(value, SensorDefinition):
                found.setdefault(id(value), value)
    return sorted(found.values(), key=lambda d: d.name)


def _resolver(project: Project) -> Resolve:
    graph = project.graph

    def resolve(select: tuple[str, ...], exclude: tuple[str, ...] = ()) -> frozenset[str]:
        keys = select_assets(project, select, exclude)
        return frozenset(k for k in keys if graph.assets[k].is_materializable)

    return resolve


def gather_facts(
    loaded: Loaded, store: StateStore, astore: AutomationStore, now: datetime
) -> Facts:
    """Read what the evaluation decides on: the stale set (the planner's reasons), the last
    materializations, cursors, pauses, open requests and the last tick of each source."""
    project = loaded.project
    graph = project.graph
    snapshot = state_snapshot(store, observe(project), graph)
    wanted = _planned_keys(loaded)
    partitions = plan_partitions(project, store, wanted, now, snapshot=snapshot)
    plan = build_plan(graph, wanted, snapshot, partitions=partitions)
    reasons = {s.key: s.reasons for s in plan.steps}
    # durations only matter to freshness targets (how early to start a rebuild)
    lagged = any(a.max_lag_s is not None for a in loaded.spec.assets.values())
    states = store.asset_states() if lagged else {}
    assets = {}
    for key in wanted:
        st = states.get(key)
        assets[key] = AssetFacts(
            stale=tuple(reasons.get(key, ())),
            materialized_at=_when(snapshot.record(key).materialized_at),
            duration_s=st.duration_s if st else None,
            partitioned=graph.assets[key].is_partitioned,
        )
    open_requests = astore.requests(OPEN_STATUSES)
    in_flight = frozenset(k for r in open_requests for k in _spec_keys(r))
    last = {s: (t.status, t.reasons) for s, t in astore.last_ticks().items()}
    return Facts(
        graph=graph,
        assets=assets,
        cursors=astore.cursors(),
        paused=frozenset(astore.paused()),
        in_flight=in_flight,
        last_ticks=last,
        used_run_keys=astore.used_run_keys,
    )


def _planned_keys(loaded: Loaded) -> set[str]:
    """The automated assets and everything upstream of them (staleness flows down)."""
    graph = loaded.project.graph
    keys = set(loaded.spec.assets)
    todo = list(keys)
    while todo:  # one walk up from all of them (not one per asset)
        for parent in graph.parents(todo.pop()):
            if parent not in keys:
                keys.add(parent)
                todo.append(parent)
    return {k for k in keys if k in graph.assets and graph.assets[k].is_materializable}


def evaluate_now(
    loaded: Loaded,
    store: StateStore,
    astore: AutomationStore,
    now: datetime,
    due_sensors: Collection[str] | None = None,
) -> tuple[Evaluation, Facts]:
    """Gather facts, call the due sensors (None: all) and evaluate."""
    facts = gather_facts(loaded, store, astore, now)
    outcomes = list(_sensor_outcomes(loaded, facts, now, due_sensors))
    return evaluate(loaded.spec, facts, now, outcomes), facts


def _sensor_outcomes(
    loaded: Loaded, facts: Facts, now: datetime, due: Collection[str] | None
) -> Iterable[SensorOutcome]:
    graph = loaded.project.graph
    resolve = _resolver(loaded.project)
    for folder in loaded.spec.folder_sensors:
        if (due is not None and folder.source not in due) or folder.source in facts.paused:
            continue
        if not folder.folder.is_dir():
            yield SensorOutcome(
                folder.source,
                error=f"{folder.where}: the folder {folder.folder} does not exist (any more). "
                "Create it or fix `path`.",
            )
            continue
        yield folder_outcome(
            folder, list_folder(folder), facts.cursors.get(folder.source), now, graph
        )
    for fn in loaded.spec.function_sensors:
        if (due is not None and fn.source not in due) or fn.source in facts.paused:
            continue

        def by_selection(select: tuple[str, ...]) -> frozenset[str]:
            try:
                return resolve(select, ())
            except SelectionError as exc:
                raise SelectionError(f"RunRequest(select={list(select)}): {exc.message}") from exc

        yield call_sensor(fn, facts.cursors.get(fn.source), now, graph, by_selection)


def commit(
    astore: AutomationStore, evaluation: Evaluation, facts: Facts, now: datetime
) -> RequestRecord | None:
    """Record the evaluation (ticks, the one queued request, run keys, cursors) at once."""
    request = None
    at = iso(now)
    if evaluation.spec is not None:
        reasons = [f"{d.source}: {'; '.join(d.reasons)}" for d in evaluation.requested if d.reasons]
        request = RequestRecord(
            request_id=_new_id("req", now),
            created_at=utcnow(),
            status=RequestStatus.QUEUED,
            spec=evaluation.spec.to_json(),
            reasons=tuple(reasons),
        )
    ticks = [
        TickRecord(
            tick_id=_new_id("tick", now),
            source=d.source,
            kind=str(d.kind),
            at=at,
            status=str(d.status),
            assets=d.assets,
            reasons=d.reasons,
            request_id=request.request_id
            if request is not None and d.status is TickStatus.REQUESTED
            else None,
            run_key=d.run_key,
            error=d.error,
        )
        for d in evaluation.decisions
    ]
    expected = {s: facts.cursors.get(s) for s in evaluation.cursors}
    astore.commit_tick(ticks, request, evaluation.run_keys, evaluation.cursors, at, expected)
    return request


def sweep(astore: AutomationStore, store: StateStore, now_epoch: float) -> list[str]:
    """Mark runs whose process died failed (and queue them once more); requeue lost launches.

    Returns what it did, one line each (for the daemon's log).
    """
    done: list[str] = []
    for r in astore.requests([RequestStatus.LAUNCHING, RequestStatus.RUNNING]):
        if r.status is RequestStatus.RUNNING and r.pid and not is_alive(r.pid):
            astore.finish_request(
                r.request_id, RequestStatus.FAILED, utcnow(), f"its process {r.pid} died"
            )
            store.mark_abandoned_runs(utcnow())
            done.append(f"request {r.request_id}: process {r.pid} died; marked failed")
            if r.attempt < 2:
                retry = RequestRecord(
                    request_id=_new_id("req", datetime.now(UTC)),
                    created_at=utcnow(),
                    status=RequestStatus.QUEUED,
                    spec=r.spec,
                    reasons=(*r.reasons, f"retry of {r.request_id} (its process died)"),
                    attempt=r.attempt + 1,
                )
                astore.add_request(retry)
                done.append(f"request {r.request_id}: queued again as {retry.request_id}")
        elif (
            r.status is RequestStatus.LAUNCHING
            and (r.launched_at or 0) + CLAIM_TIMEOUT_S < now_epoch
        ):
            astore.requeue(r.request_id)
            done.append(f"request {r.request_id}: never claimed; queued again")
    return done


def _spec_keys(r: RequestRecord) -> set[str]:
    spec = r.spec
    keys = set(spec.get("select", ())) | set(spec.get("full", ()))
    for b in spec.get("backfills", ()):
        keys |= set(b.get("select", ()))
    return keys


def _when(text: str | None) -> datetime | None:
    if not text:
        return None
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _new_id(prefix: str, now: datetime) -> str:
    return f"{prefix}-{now.astimezone(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


def epoch() -> float:
    """The wall clock, in seconds (the daemon's leases and launch times)."""
    return time.time()
