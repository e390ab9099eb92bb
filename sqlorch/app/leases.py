"""`sqlorch build --wait`: wait for the build holding the assets, then plan again and go.

Without `--wait`, a build whose assets another build holds exits 2 naming the holder
(`LeaseHeldError`). With it, the build says once whom it waits for (again if the holder
changes), polls the lease until it is free or the time is up (exit 2, naming the holder),
then plans again: the holder may well have built what this build wanted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from sqlorch.core.plan.definition import Plan
from sqlorch.errors import LeaseHeldError
from sqlorch.load.project import Project
from sqlorch.state.store import StateStore

#: how often a waiting build tries the lease again (seconds)
POLL_S = 0.5
#: what a lease says of a holder caught starting or ending: not a new holder to announce
_TRANSIENT = frozenset({"a build that is starting", "a run that just ended"})


def lease_keys(project: Project, plan: Plan, waiting: bool) -> list[str]:
    """What a build leases: the assets it writes, and when it waits, its DuckDB file.

    One DuckDB file takes one writing process at a time, so a waiting build on other assets
    of the same file waits too, rather than failing when it opens the file.
    """
    keys = [s.key for s in plan.steps]
    if waiting and project.invoker.duckdb_path is not None:
        keys.append(f"duckdb file {project.invoker.duckdb_path}")
    return keys


def acquire_waiting(
    store: StateStore,
    keys: Iterable[str],
    run_id: str,
    wait: float,
    on_wait: Callable[[str], None],
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Take the lease on `keys`, waiting up to `wait` seconds; return whether it had to wait.

    Raises:
        LeaseHeldError: still held after `wait` seconds (nothing is held then).
    """
    wanted = list(keys)
    deadline = clock() + wait
    told: str | None = None
    while True:
        try:
            store.acquire_lease(wanted, run_id)
            return told is not None
        except LeaseHeldError as exc:
            if told is None or (exc.holder != told and exc.holder not in _TRANSIENT):
                on_wait(f"Waiting for {exc.holder}, which holds {exc.asset} (up to {wait:g} s).")
                told = exc.holder
            if clock() >= deadline:
                raise LeaseHeldError(
                    f"Waited {wait:g} s for another run ({exc.holder}) to release {exc.asset}; "
                    "it still holds it. Run again later, or wait longer (`--wait SECONDS`); "
                    "nothing of this run was written.",
                    asset=exc.asset or "",
                    holder=exc.holder,
                ) from None
            sleep(POLL_S)


def hold_for(
    project: Project,
    store: StateStore,
    plan: Plan,
    run_id: str,
    wait: float,
    replan: Callable[[], Plan],
    on_wait: Callable[[str], None],
) -> Plan:
    """Lease `plan`'s assets for `run_id`, waiting; after a wait, plan again (lease held).

    Returns the plan to execute: its lease is held, unless it has no steps.
    """
    deadline = time.monotonic() + wait
    while True:
        left = max(0.0, deadline - time.monotonic())
        keys = lease_keys(project, plan, True)
        if not acquire_waiting(store, keys, run_id, left, on_wait):
            return plan
        store.release_lease()  # the holder is gone: what is left to do now?
        plan = replan()
        if not plan.steps:
            return plan
