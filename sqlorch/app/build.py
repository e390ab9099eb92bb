"""The build use case: `build`, `backfill`, `retry` and `check`, one function end to end.

`build` loads the project (`sqlorch.load`), plans (`sqlorch.app.plans` over `sqlorch.core.plan`),
executes (`sqlorch.execute`) and records (`sqlorch.state.recorder`): every event of the run,
the hidden dependencies its compiled SQL shows included, is recorded before the run is
marked finished. The CLI, the web UI and the daemon call it alike.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlorch.app.plans import (
    BuildRequest,
    CheckRequest,
    Request,
    RetryRequest,
    Warn,
    observe,
    plan_request,
    select_assets,
    selection_text,
)
from sqlorch.core.plan.definition import Plan
from sqlorch.errors import ConfigError, SelectionError
from sqlorch.events import Event, EventKind, HiddenDependencyFound, Listener, utcnow
from sqlorch.load.project import Project, load_project
from sqlorch.settings import Settings
from sqlorch.state.store import RunRecord, StateStore, open_store
from sqlorch.warehouse.observe import loaded_at_fields, open_warehouse, remember_view

if TYPE_CHECKING:
    from sqlorch.execute.policies import RunPolicies
    from sqlorch.execute.scheduler import Executor
    from sqlorch.execute.status import RunOutcome
    from sqlorch.warehouse.base import Warehouse

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BuildResult:
    """What one build-like command planned and did."""

    plan: Plan
    #: how the run ended (None: a dry run, or the plan runs nothing)
    outcome: RunOutcome | None = None
    #: models of the run that read relations they do not declare
    hidden: tuple[HiddenDependencyFound, ...] = ()
    #: selected assets sqlorch materializes (all up to date when the plan has no steps)
    selected_materializable: int = 0
    #: the run a retry re-runs
    retried: RunRecord | None = None
    #: dbt step -> "native" or why dbt executes it (issue 16; filled for --dry-run)
    execution: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @property
    def failed(self) -> bool:
        """Return True when the run did not succeed (exit 1)."""
        return self.outcome is not None and self.outcome.status != "success"


def build(
    settings: Settings,
    request: Request,
    listeners: Sequence[Listener] = (),
    *,
    warn: Warn | None = None,
    note: Warn | None = None,
    dry_run: bool = False,
) -> BuildResult:
    """Load the project, plan `request`, execute the plan and record the run.

    Args:
        settings: the resolved settings (threads included).
        request: what to run.
        listeners: receive every event of the run (renderers).
        warn: receives warnings (selectors that matched nothing, ...).
        note: receives what planning left out (`--skip-non-breaking`).
        dry_run: plan only.

    Raises:
        SqlorchError: the project, the request or the warehouse is unusable.
    """
    retried: RunRecord | None = None
    store: StateStore | None = None
    if isinstance(request, RetryRequest):  # a run id that does not exist needs no project
        from sqlorch.app.runs import find_run

        store = open_store(settings)
        retried = find_run(store, settings.state_location, request.run_id)
    if isinstance(request, BuildRequest) and request.vars:
        settings = dataclasses.replace(settings, dbt_vars=parse_vars(request.vars))
    project = load_project(settings)
    store = store or open_store(settings)
    if isinstance(request, BuildRequest) and request.full_refresh:
        request = dataclasses.replace(request, full=True)  # every partition, too
    plan = plan_request(project, store, request, retried=retried, warn=warn, note=note)
    graph = project.graph
    result = BuildResult(
        plan,
        selected_materializable=sum(
            1 for k in plan.selected if k in graph.assets and graph.assets[k].is_materializable
        ),
        retried=retried,
    )
    runs_nothing = not plan.checks if isinstance(request, CheckRequest) else not plan.steps
    if dry_run and plan.steps:
        from sqlorch.app.execution import plan_execution

        result = dataclasses.replace(result, execution=plan_execution(project, plan))
    if dry_run or runs_nothing:
        return result
    run_id: str | None = None
    if isinstance(request, BuildRequest) and request.wait is not None:
        plan, run_id = _wait_for_holders(project, store, request, plan, warn, note)
        result = dataclasses.replace(result, plan=plan)
        if not plan.steps:
            return result
    try:
        if isinstance(request, BuildRequest):
            _prepare_build(project, request, plan, note)
    except BaseException:
        store.release_lease()
        raise
    outcome, hidden = execute(
        project,
        plan,
        store,
        listeners,
        command=request.command,
        selection=selection_text(request, retried),
        schema=_schema_acceptance(request, plan),
        run_id=run_id,
    )
    if isinstance(request, BuildRequest) and request.target_path:
        copy_artifacts(project, outcome.run_id, Path(request.target_path))
    return dataclasses.replace(result, outcome=outcome, hidden=hidden)


def _wait_for_holders(
    project: Project,
    store: StateStore,
    request: BuildRequest,
    plan: Plan,
    warn: Warn | None,
    note: Warn | None,
) -> tuple[Plan, str]:
    """`--wait`: hold the plan's lease once its holder is gone (planning again after a wait)."""
    from sqlorch.app.leases import hold_for
    from sqlorch.execute.status import new_run_id

    run_id = new_run_id()
    plan = hold_for(
        project,
        store,
        plan,
        run_id,
        float(request.wait or 0.0),
        lambda: plan_request(project, store, request, warn=warn, note=note),
        note or warn or (lambda _line: None),
    )
    return plan, run_id


def _prepare_build(project: Project, request: BuildRequest, plan: Plan, note: Warn | None) -> None:
    """dbt's flags; in an environment with --defer, production's upstream linked in."""
    apply_dbt_flags(project, request)
    env = project.settings.environment
    if request.defer_state and env:  # (dbt's --defer is not used)
        from sqlorch.app.environments import link_production

        linked = link_production(project, plan)
        if linked and note is not None:
            note(f"environment {env}: read from production through views: " + ", ".join(linked))


def parse_vars(text: str) -> dict[str, Any]:
    """`--vars` as dbt reads it: a YAML (or JSON) mapping.

    Raises:
        ConfigError: it is not a mapping.
    """
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--vars {text!r} is not valid YAML/JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ConfigError(
            f'--vars {text!r} must be a mapping, e.g. --vars \'{{"start": "2013-01-01"}}\'.'
        )
    return {str(k): v for k, v in value.items()}


def apply_dbt_flags(project: Project, request: BuildRequest) -> None:
    """Hand `--full-refresh` and `--defer --state` to every dbt invocation of the run.

    `--state prod` (a name, not a folder): the manifest of the `prod` target, parsed into
    `.sqlorch/defer/prod/`; a folder: the `manifest.json` in it. In an environment
    (`SQLORCH_ENV`), dbt gets no `--defer`: `app.environments.link_production` makes the
    unselected upstream production's.

    Raises:
        ConfigError: the state folder holds no manifest.json.
    """
    invoker = project.invoker
    invoker.full_refresh = request.full_refresh
    if not request.defer_state or project.settings.environment:
        return  # in an environment, production's relations are linked in (app.environments)
    state = Path(request.defer_state)
    if not (state / "manifest.json").is_file():
        if state.exists() or "/" in request.defer_state:
            raise ConfigError(
                f"--state {request.defer_state}: no manifest.json there. Point it at the "
                "folder of a production run's dbt artifacts (`sqlorch build --target-path "
                "DIR` writes them), or name the production target (`--state prod`)."
            )
        other = dataclasses.replace(
            invoker,
            target=request.defer_state,
            artifacts_dir=project.settings.state_dir / "defer" / request.defer_state,
            manifest=None,
            run_args=(),
            full_refresh=False,
        )
        other.parse()
        state = other.artifacts_dir / "target"
    invoker.run_args = ("--defer", "--state", str(state.resolve()))


def copy_artifacts(project: Project, run_id: str, dest: Path) -> None:
    """Copy the run's dbt artifacts (manifest.json, the last run_results.json) into `dest`."""
    import shutil

    dest.mkdir(parents=True, exist_ok=True)
    manifest = project.invoker.artifacts_dir / "target" / "manifest.json"
    if manifest.is_file():
        shutil.copy2(manifest, dest / "manifest.json")
    run_dir = project.settings.state_dir / "runs" / run_id
    results = sorted(run_dir.glob("dbt-*/target/run_results.json"), key=lambda p: p.stat().st_mtime)
    if results:
        shutil.copy2(results[-1], dest / "run_results.json")


def _schema_acceptance(request: Request, plan: Plan) -> tuple[frozenset[str], frozenset[str]]:
    """(assets whose changed columns are accepted, assets whose partitioned tables evolve)."""
    if not isinstance(request, BuildRequest):
        return frozenset(), frozenset()
    accept = frozenset(plan.keys) if request.accept_schema else frozenset()
    rewrite = request.full or request.full_refresh
    return accept, frozenset(plan.keys) if rewrite else accept


def run_policies(
    project: Project,
    store: StateStore,
    accept_schema: frozenset[str] = frozenset(),
    evolve_schema: frozenset[str] = frozenset(),
) -> RunPolicies:
    """Gather what the executor needs besides the plan: checks' inputs, retries, rates.

    Raises:
        ConfigError: a `retries` setting is malformed or its selector matches nothing.
    """
    from sqlorch.api.retries import RetryPolicy, policy_from_settings
    from sqlorch.app.baselines import accepted_columns, previous_materializations
    from sqlorch.app.execution import execution_settings
    from sqlorch.execute.policies import RunPolicies

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
    target = f"{project.target.type}:{project.target.name}" if project.target else None
    previous = previous_materializations(store, target)
    previous.update(accepted_columns(store, target))
    native, forced_dbt = execution_settings(project)
    return RunPolicies(
        python_checks=dict(project.python_checks),
        previous=previous,
        retries=retries,
        pool_rates=dict(settings.pool_rates),
        accept_schema=accept_schema,
        evolve_schema=evolve_schema | accept_schema,
        native=native,
        forced_dbt=forced_dbt,
        # `execution = "dbt"`: dbt executes every dbt node, partition windows included
        direct_windows=native,
        target=target,
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
    schema: tuple[frozenset[str], frozenset[str]] = (frozenset(), frozenset()),
    run_id: str | None = None,
) -> tuple[RunOutcome, tuple[HiddenDependencyFound, ...]]:
    """Execute `plan`, recording the run in `store`; return how it ended and what it hid.

    `schema`: the assets whose changed columns the run accepts (`--accept-schema`), and those
    whose partitioned tables take new columns (`--full` too). `run_id`: the run's id when
    its lease is already held (`build --wait`).

    Raises:
        KeyboardInterrupt: a second Ctrl-C (the run is recorded as cancelled).
    """
    from sqlorch.execute.status import new_run_id
    from sqlorch.state.recorder import StateRecorder

    if run_id is None:
        run_id = new_run_id()
        # a shared store: no other build writes these assets while this one runs
        store.acquire_lease((s.key for s in plan.steps), run_id)
    try:
        warehouse = _open_for(project, plan)
    except BaseException:
        store.release_lease()
        raise
    _prepare_store(store, project, plan)
    store.start_run(run_id, command, selection, utcnow())
    recorder = StateRecorder(
        store,
        run_id,
        definitions={n.key: n.partitions for n in project.graph if n.partitions is not None},
    )
    events = RunEvents([recorder, *listeners])
    outcome: RunOutcome | None = None
    executor: Executor | None = None
    interrupted = False
    hidden: tuple[HiddenDependencyFound, ...] = ()
    try:
        executor = _executor(project, plan, store, warehouse, events, run_id, threads, schema)
        try:
            outcome = executor.run()
        except KeyboardInterrupt:
            interrupted = True
            raise
    finally:
        # the writes are done and recorded: free the assets and the warehouse file for
        # other processes before the hidden-dependency scan (sqlglot), which needs neither
        recorder.flush()
        store.release_lease()
        if warehouse is not None and not interrupted:
            # (after a second Ctrl-C the process exits at once)
            _record_relations_after_run(project, warehouse)
        if outcome is not None:
            try:
                hidden = record_hidden_dependencies(project, run_id, events)
            except KeyboardInterrupt:
                # the run's work is done and keeps its outcome; only the scan is dropped
                log.warning("Ctrl-C: skipped the hidden-dependency scan of run %s", run_id)
        events.finish()  # run_finished last, after the scan's warnings
        recorder.flush()
        _finish_run(store, run_id, outcome, executor, interrupted)
    assert outcome is not None  # (else what the executor raised propagates)
    return outcome, hidden


def _executor(
    project: Project,
    plan: Plan,
    store: StateStore,
    warehouse: Warehouse | None,
    events: RunEvents,
    run_id: str,
    threads: int | None,
    schema: tuple[frozenset[str], frozenset[str]],
) -> Executor:
    """Return the executor of `plan` for run `run_id`."""
    from sqlorch.execute.scheduler import Executor

    settings = project.settings
    return Executor(
        graph=project.graph,
        plan=plan,
        python_fns={k: fa.definition for k, fa in project.python_assets.items()},
        warehouse=warehouse,
        invoker=project.invoker,
        dbt_project=project.dbt,
        run_id=run_id,
        run_dir=settings.state_dir / "runs" / run_id,
        threads=threads or settings.threads,
        listeners=[events],
        pools=dict(settings.pools),
        policies=run_policies(project, store, *schema),
        dbt_threads=threads or settings.dbt_threads(project.target.threads),
    )


class RunEvents:
    """Hand a run's events to the recorder and the listeners, `run_finished` last.

    The executor announces the end of its work; what the use case records after it (the
    hidden dependencies) still belongs to the run, so `run_finished` waits for `finish`.
    """

    def __init__(self, listeners: Iterable[Listener]) -> None:
        self._listeners = list(listeners)
        self._finished: Event | None = None

    def __call__(self, event: Event) -> None:
        if event.kind is EventKind.RUN_FINISHED:
            self._finished = event
            return
        for listener in self._listeners:
            listener(event)

    def flush(self) -> None:
        """Flush the listeners that buffer (the state recorder): the executor is idle."""
        for listener in self._listeners:
            flush = getattr(listener, "flush", None)
            if flush is not None:
                flush()

    def finish(self) -> None:
        """Hand on `run_finished` (stamped now), when the executor announced it."""
        if self._finished is None:
            return
        event = dataclasses.replace(self._finished, ts=utcnow())
        self._finished = None
        for listener in self._listeners:
            listener(event)


def record_hidden_dependencies(
    project: Project, run_id: str, emit: Listener
) -> tuple[HiddenDependencyFound, ...]:
    """Scan the run's compiled SQL for hidden dependencies; emit one event per model."""
    from sqlorch.dbt.runner import few_collections
    from sqlorch.lineage.service import after_run

    # importing sqlglot builds ~1000 classes: with dbt's parse still in memory, every full
    # collection they trigger walks it (0.27 s of CPU at 1000 models, 0.09 s at 100)
    with few_collections():
        found = tuple(
            HiddenDependencyFound(key, message)
            for key, message in after_run(project, project.settings.state_dir / "runs" / run_id)
        )
    for item in found:
        emit(item.event(run_id, utcnow()))
    return found


def _open_for(project: Project, plan: Plan) -> Warehouse | None:
    """Open the warehouse when the plan runs anything; check partition columns exist."""
    if not (plan.steps or plan.checks):
        return None
    from sqlorch.api.dlt import refusals

    dlt_refused = refusals((project.graph.assets[s.key] for s in plan.steps), project.target.type)
    if dlt_refused:
        raise ConfigError(
            f"Target {project.target.name!r} is {project.target.type}; nothing was run: "
            + " ".join(dlt_refused)
        )
    if project.target.type == "spark":
        from sqlorch.warehouse.spark_refusals import unsupported

        refused = unsupported(project.graph.assets[s.key] for s in plan.steps)
        if refused:
            raise ConfigError(
                f"Target {project.target.name!r} is Spark with plain tables; nothing was "
                "run: " + " ".join(refused)
            )
    warehouse = open_warehouse(
        project.target,
        needs_file=bool(project.python_assets),
        environment=project.settings.environment,
    )
    if warehouse is not None and any(s.partitions for s in plan.steps):
        from sqlorch.execute.chunks import check_partition_columns

        try:
            check_partition_columns(project.graph, plan.steps, warehouse)
        except BaseException:
            warehouse.close()
            raise
    return warehouse


def _prepare_store(store: StateStore, project: Project, plan: Plan) -> None:
    """Mark runs that died as abandoned; save the code parts of what the plan builds."""
    store.mark_abandoned_runs(utcnow())
    assets = project.graph.assets
    store.save_code_parts(
        (s.key, assets[s.key].code_version, assets[s.key].code_parts)
        for s in plan.steps
        if assets[s.key].code_version
    )


def _finish_run(
    store: StateStore,
    run_id: str,
    outcome: RunOutcome | None,
    executor: Executor | None,
    interrupted: bool,
) -> None:
    """Mark the run finished with its counts (cancelled or failed when it did not end)."""
    from sqlorch.execute.status import Status

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


def _record_relations_after_run(project: Project, warehouse: Warehouse) -> None:
    """After a run: observe the warehouse, close every handle on the file, stamp it.

    The database is checkpointed when its last connection closes; stamping after that makes
    the next no-op build read the observation without opening the file.
    """
    path = project.invoker.duckdb_path
    view = None
    try:
        # only a DuckDB file's observation is remembered: another target's (a Spark catalog
        # sweep, one metastore call per table) would be thrown away
        view = observe(project, warehouse, present=False) if path is not None else None
    except Exception:  # noqa: BLE001 - only a cache
        log.debug("could not observe the warehouse", exc_info=True)
    warehouse.close()
    project.invoker.release()
    if view is not None and path is not None and path.exists():
        memo = project.settings.state_dir / "relations.json"
        remember_view(memo, path, loaded_at_fields(project.graph), view)
