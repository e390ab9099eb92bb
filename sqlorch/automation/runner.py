"""The process one automation run is launched as: claim the request, plan it, build it.

`python -m sqlorch.automation.runner REQUEST TOKEN [--project-dir ...]` claims the queued
request with its token (a request is run by one process, whatever crashed before), plans
the requested stale set with the same `app` functions as `sqlorch build` (plus the assets to
rebuild regardless and the partitions files map to) as ONE plan, and executes it as one run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from sqlorch.api.asset import FILES_ENV
from sqlorch.app.build import execute
from sqlorch.app.plans import plan_backfill, plan_build
from sqlorch.core.graph import AssetGraph
from sqlorch.core.plan.definition import Plan, Step
from sqlorch.errors import SqlorchError
from sqlorch.events import Event, utcnow
from sqlorch.load.project import load_project
from sqlorch.settings import Settings, load_settings
from sqlorch.state.automation import AutomationStore, RequestStatus, open_automation
from sqlorch.state.store import open_store

log = logging.getLogger(__name__)


def plan_spec(settings: Settings, spec: Mapping[str, Any]) -> tuple[Any, Plan]:
    """Load the project and plan a request's spec as ONE plan; return (project, plan)."""
    project = load_project(settings)
    store = open_store(settings)
    graph = project.graph
    select = [k for k in spec.get("select", ()) if k in graph.assets]
    full = {k for k in spec.get("full", ()) if k in graph.assets}
    # what reads a forced asset inside the request is rebuilt too (it reads new data)
    wanted = set(select) | full
    full |= {k for k in wanted for f in list(full) if k in graph.descendants(f)}
    full = {k for k in full if not graph.assets[k].is_partitioned}
    plans: list[Plan] = []
    stale = [k for k in select if k not in full]
    if stale:
        plans.append(plan_build(project, store, stale, None))
    if full:
        plans.append(plan_build(project, store, sorted(full), None, full=True))
    for b in spec.get("backfills", ()):
        plans.append(
            plan_backfill(
                project,
                store,
                list(b["select"]),
                None,
                start=None,
                end=None,
                keys=tuple(b["keys"]),
                downstream=True,
            )
        )
    return project, merge_plans(graph, plans)


def merge_plans(graph: AssetGraph, plans: Sequence[Plan]) -> Plan:
    """Merge plans into one: each asset once, its partition ranges and reasons combined."""
    steps: dict[str, Step] = {}
    for plan in plans:
        for step in plan.steps:
            have = steps.get(step.key)
            if have is None:
                steps[step.key] = step
                continue
            parts = None
            if have.partitions is not None or step.partitions is not None:
                parts = tuple(sorted(set(have.partitions or ()) | set(step.partitions or ())))
            reasons = tuple(dict.fromkeys((*have.reasons, *step.reasons)))
            steps[step.key] = Step(step.key, step.kind, reasons, parts)
    checks = tuple(dict.fromkeys(c for p in plans for c in p.checks))
    selected = frozenset(k for p in plans for k in p.selected)
    return Plan(tuple(steps[k] for k in graph.topological(steps)), checks, selected)


def run_request(settings: Settings, astore: AutomationStore, request_id: str) -> RequestStatus:
    """Plan and execute a claimed request as one run; record how it ended."""
    record = astore.request(request_id)
    assert record is not None
    spec = record.spec
    os.environ[FILES_ENV] = json.dumps(spec.get("files") or {})
    project, plan = plan_spec(settings, spec)
    if not plan.steps:
        astore.finish_request(request_id, RequestStatus.SUCCESS, utcnow(), "nothing was stale")
        return RequestStatus.SUCCESS
    seen: list[str] = []

    def remember_run(event: Event) -> None:
        if not seen:
            seen.append(event.run_id)
            astore.set_run_id(request_id, event.run_id)

    label = f"automation {request_id}"
    outcome, _hidden = execute(
        project,
        plan,
        open_store(settings),
        [remember_run],
        command="automation",
        selection=label,
    )
    status = RequestStatus.SUCCESS if outcome.status == "success" else RequestStatus.FAILED
    astore.finish_request(
        request_id,
        status,
        utcnow(),
        None if status is RequestStatus.SUCCESS else f"run {outcome.run_id} {outcome.status}",
    )
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Claim and run one request; exit 0 (success, or another process has it), 1 failed."""
    # a process started in the background inherits SIGINT ignored: the daemon cancels a run
    # with SIGINT (the build records it as cancelled), so take the default handler back
    signal.signal(signal.SIGINT, signal.default_int_handler)
    parser = argparse.ArgumentParser(prog="sqlorch-automation-run")
    parser.add_argument("request_id")
    parser.add_argument("token")
    parser.add_argument("--project-dir")
    parser.add_argument("--profiles-dir")
    parser.add_argument("--target")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    settings = load_settings(
        project_dir=args.project_dir, profiles_dir=args.profiles_dir, target=args.target
    )
    astore = open_automation(settings)
    if not astore.claim(args.request_id, args.token, os.getpid()):
        return 0
    try:
        status = run_request(settings, astore, args.request_id)
    except KeyboardInterrupt:
        astore.finish_request(args.request_id, RequestStatus.CANCELLED, utcnow(), "cancelled")
        # threads still inside an asset or dbt cannot be stopped: leave without waiting for
        # them (their writes roll back), as `sqlorch build` does on a second Ctrl-C
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    except SqlorchError as exc:
        astore.finish_request(args.request_id, RequestStatus.FAILED, utcnow(), exc.message)
        print(exc.message, file=sys.stderr)
        return 1
    except BaseException as exc:
        astore.finish_request(
            args.request_id, RequestStatus.FAILED, utcnow(), f"{type(exc).__name__}: {exc}"
        )
        raise
    return 0 if status is RequestStatus.SUCCESS else 1


if __name__ == "__main__":
    sys.exit(main())
