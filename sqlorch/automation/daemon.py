"""`sqlorch tick` (evaluate once, launch, wait, exit) and `sqlorch daemon` (the same, forever).

One process per state store evaluates automation: it holds a lease renewed by a heartbeat; a
second one is told who holds it. The daemon sleeps until something can be due: the next cron
time or sensor interval, a sensor folder changing, a settling file, or a run finishing (its
own launches, or any run the state store records), so an eager downstream is requested as
soon as its upstream's run ends. Runs are queued and launched as their own processes, at most
`max_concurrent_runs` at once (1 by default: DuckDB has one writer). SIGTERM (or Ctrl-C)
stops launching, lets running builds finish for `shutdown_grace`, then cancels them.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType

from sqlorch.automation.evaluate import Evaluation
from sqlorch.automation.launcher import Launch, launch
from sqlorch.automation.ticks import (
    LEASE,
    Loaded,
    commit,
    evaluate_now,
    load_automation,
    sweep,
)
from sqlorch.errors import ConfigError
from sqlorch.events import utcnow
from sqlorch.settings import Settings
from sqlorch.state.automation import (
    OPEN_STATUSES,
    AutomationStore,
    LeaseRecord,
    RequestRecord,
    RequestStatus,
    open_automation,
)
from sqlorch.state.rows import is_alive
from sqlorch.state.store import StateStore

log = logging.getLogger(__name__)

Echo = Callable[[str], None]
#: how often the daemon looks at the runs table and the sensor folders (cheap stat calls)
POLL_S = 0.25
#: reload the project (code and settings changes) at least this often
RELOAD_S = 30.0


class LeaseHeld(ConfigError):
    """Another daemon (or tick) holds the state store's automation lease."""


@dataclass(slots=True)
class Lease:
    """This process's hold on the automation lease of a state store."""

    astore: AutomationStore
    role: str
    ttl: float
    me: LeaseRecord = field(init=False)

    def __post_init__(self) -> None:
        host = socket.gethostname()
        self.me = LeaseRecord(f"{self.role}:{host}:{os.getpid()}", host, os.getpid(), utcnow(), 0)

    def acquire(self) -> None:
        """Take the lease.

        Raises:
            LeaseHeld: another live process holds it.
        """
        me = LeaseRecord(self.me.holder, self.me.host, self.me.pid, utcnow(), time.time())
        held = self.astore.acquire_lease(LEASE, me, self.ttl, is_alive)
        if held is not None:
            age = time.time() - held.heartbeat
            raise LeaseHeld(
                f"Automation of {self.astore.path} is already run by {held.holder} (pid "
                f"{held.pid} on {held.host}, since {held.acquired_at}, last heartbeat "
                f"{age:.0f}s ago). One daemon or tick per state store: stop it first, or wait "
                f"{self.ttl:g}s after it died."
            )

    def beat(self) -> bool:
        """Renew the lease; False when it was lost."""
        return self.astore.heartbeat(LEASE, self.me.holder, time.time())

    def release(self) -> None:
        """Give the lease up."""
        self.astore.release_lease(LEASE, self.me.holder)


@dataclass(frozen=True, slots=True)
class TickReport:
    """What `sqlorch tick` decided and how its runs ended."""

    evaluation: Evaluation
    requests: tuple[RequestRecord, ...]

    @property
    def failed(self) -> bool:
        """True when a run it waited for did not succeed."""
        return any(r.status is not RequestStatus.SUCCESS for r in self.requests)


def run_tick(
    settings: Settings, *, now: datetime | None = None, echo: Echo | None = None
) -> TickReport:
    """Evaluate all automation once, launch what is due (and anything still queued), wait.

    Raises:
        LeaseHeld: a daemon (or another tick) runs automation of this state store.
        ConfigError: a declaration is malformed.
    """
    loaded = load_automation(settings)
    astore = open_automation(settings)
    store = astore.store
    lease = Lease(astore, "tick", loaded.spec.daemon.lease_ttl_s)
    lease.acquire()
    say = echo or (lambda line: None)
    try:
        for line in sweep(astore, store, time.time()):
            say(line)
        at = now or datetime.now(UTC)
        evaluation, facts = evaluate_now(loaded, store, astore, at)
        commit(astore, evaluation, facts, at)
        ids = _drain(settings, loaded, astore, store, lease, say)
    finally:
        lease.release()
    finished = tuple(r for r in (astore.request(i) for i in ids) if r is not None)
    return TickReport(evaluation, finished)


def _drain(
    settings: Settings,
    loaded: Loaded,
    astore: AutomationStore,
    store: StateStore,
    lease: Lease,
    say: Echo,
) -> list[str]:
    """Launch queued requests (within the concurrency) until none is open; return their ids."""
    limit = loaded.spec.daemon.max_concurrent_runs
    running: dict[str, Launch] = {}
    ids: list[str] = []
    last_beat = time.time()
    while True:
        for rid, started in list(running.items()):
            if started.process.poll() is not None:
                del running[rid]
        open_requests = astore.requests(OPEN_STATUSES)
        if not open_requests and not running:
            return ids
        busy = sum(1 for r in open_requests if r.status is not RequestStatus.QUEUED)
        for request in open_requests:
            if request.status is RequestStatus.QUEUED and busy < limit:
                launched = launch(settings, astore, request, time.time())
                if launched is not None:
                    running[request.request_id] = launched
                    ids.append(request.request_id)
                    busy += 1
                    say(f"launched {request.request_id}: {', '.join(request.reasons)}")
        if time.time() - last_beat >= loaded.spec.daemon.heartbeat_s:
            lease.beat()
            for line in sweep(astore, store, time.time()):
                say(line)
            last_beat = time.time()
        time.sleep(POLL_S)


class Daemon:
    """The long-lived automation loop of one state store."""

    def __init__(self, settings: Settings, echo: Echo | None = None) -> None:
        self.settings = settings
        self.say = echo or (lambda line: None)
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self.running: dict[str, Launch] = {}

    def stop(self, signum: int = signal.SIGTERM, frame: FrameType | None = None) -> None:
        """Stop launching; running builds are let finish (see `run`)."""
        self.stopping.set()
        self.wake.set()

    def run(self) -> int:
        """Run until stopped; return the exit code (0).

        Raises:
            LeaseHeld: another daemon holds the lease (exit 2).
        """
        settings = self.settings
        loaded = load_automation(settings)
        options = loaded.spec.daemon
        astore = open_automation(settings)
        store = astore.store
        lease = Lease(astore, "daemon", options.lease_ttl_s)
        lease.acquire()
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        self.say(
            f"daemon {lease.me.holder}: {len(loaded.spec.sources)} automation source(s); "
            f"max {options.max_concurrent_runs} run(s) at once"
        )
        try:
            self._loop(loaded, astore, store, lease)
            self._shut_down(options.shutdown_grace_s)
        finally:
            lease.release()
        self.say("daemon stopped")
        return 0

    def _loop(
        self, loaded: Loaded, astore: AutomationStore, store: StateStore, lease: Lease
    ) -> None:
        options = loaded.spec.daemon
        next_eval = 0.0
        loaded_at = time.time()
        sensors_due: dict[str, float] = {}
        last_beat = 0.0
        signature = astore.runs_signature()
        folders = self._folder_marks(loaded)
        while not self.stopping.is_set():
            now = time.time()
            if now - last_beat >= options.heartbeat_s:
                if not lease.beat():
                    self.say("lost the automation lease; stopping")
                    self.stopping.set()
                    break
                for line in sweep(astore, store, now):
                    self.say(line)
                last_beat = now
            if self._reap():
                next_eval = 0.0
            current = astore.runs_signature()
            if current != signature:
                signature, next_eval = current, 0.0
            marks = self._folder_marks(loaded)
            if marks != folders:
                folders = marks
                next_eval = 0.0
                sensors_due.clear()
            evaluated = now >= next_eval
            if evaluated:
                next_eval = self._evaluate(loaded, astore, store, sensors_due)
            self._launch(loaded, astore)
            if not evaluated and now - loaded_at >= RELOAD_S:
                # off the path from an event to its run: code and settings changes count
                loaded = self._reload(loaded)
                loaded_at = time.time()
                folders = self._folder_marks(loaded)
                next_eval = 0.0
            self.wake.wait(timeout=max(0.0, min(POLL_S, next_eval - time.time())))
            self.wake.clear()

    def _evaluate(
        self,
        loaded: Loaded,
        astore: AutomationStore,
        store: StateStore,
        sensors_due: dict[str, float],
    ) -> float:
        """Evaluate once; return when the next evaluation is due (epoch seconds)."""
        at = datetime.now(UTC)
        # folder sensors are a directory listing: looked at every evaluation; functions by interval
        due = {s.source for s in loaded.spec.folder_sensors}
        due |= {
            f.source
            for f in loaded.spec.function_sensors
            if sensors_due.get(f.source, 0.0) <= at.timestamp()
        }
        try:
            evaluation, facts = evaluate_now(loaded, store, astore, at, due)
            request = commit(astore, evaluation, facts, at)
        except ConfigError as exc:
            self.say(f"evaluation failed: {exc.message}")
            return time.time() + 30.0
        for fn in loaded.spec.function_sensors:
            if fn.source in due:
                sensors_due[fn.source] = at.timestamp() + fn.interval_s
        for d in evaluation.decisions:
            self.say(f"{d.source}: {d.status} {'; '.join(d.reasons or (d.error or '',))}")
        if request is not None:
            keys = evaluation.spec.keys if evaluation.spec else ()
            self.say(f"queued {request.request_id}: {', '.join(keys)}")
        wakes = [w.timestamp() for w in (evaluation.next_wake,) if w is not None]
        wakes += list(sensors_due.values())
        return min(wakes) if wakes else time.time() + 3600.0

    def _launch(self, loaded: Loaded, astore: AutomationStore) -> None:
        if self.stopping.is_set():
            return
        limit = loaded.spec.daemon.max_concurrent_runs
        open_requests = astore.requests(OPEN_STATUSES)
        busy = sum(1 for r in open_requests if r.status is not RequestStatus.QUEUED)
        for request in open_requests:
            if request.status is not RequestStatus.QUEUED or busy >= limit:
                continue
            started = launch(self.settings, astore, request, time.time())
            if started is None:
                continue
            busy += 1
            self.running[request.request_id] = started
            self.say(f"launched {request.request_id} (pid {started.process.pid})")
            threading.Thread(target=self._watch, args=(started,), daemon=True).start()

    def _watch(self, started: Launch) -> None:
        started.process.wait()
        self.wake.set()

    def _reap(self) -> bool:
        """Forget finished launches; True when one finished."""
        done = [rid for rid, s in self.running.items() if s.process.poll() is not None]
        for rid in done:
            code = self.running.pop(rid).process.returncode
            self.say(f"run of {rid} finished (exit {code})")
        return bool(done)

    def _reload(self, loaded: Loaded) -> Loaded:
        try:
            return load_automation(self.settings)
        except ConfigError as exc:
            self.say(f"reloading the project failed, keeping the last one: {exc.message}")
            return loaded

    def _folder_marks(self, loaded: Loaded) -> tuple[tuple[str, int], ...]:
        """The modification times of the sensors' folders (a file added or removed)."""
        marks = []
        for sensor in loaded.spec.folder_sensors:
            try:
                marks.append((sensor.source, sensor.folder.stat().st_mtime_ns))
            except OSError:
                marks.append((sensor.source, -1))
        return tuple(marks)

    def _shut_down(self, grace: float) -> None:
        """Let running builds finish for `grace` seconds, then cancel them (SIGINT)."""
        if self.running:
            self.say(f"stopping: waiting up to {grace:g}s for {len(self.running)} run(s)")
        deadline = time.time() + grace
        while self.running and time.time() < deadline:
            self._reap()
            time.sleep(POLL_S)
        # a build cancels on its second Ctrl-C (the first only stops it launching more)
        for attempt in range(2):
            for rid, started in list(self.running.items()):
                if attempt == 0:
                    self.say(f"cancelling {rid} (pid {started.process.pid})")
                started.process.send_signal(signal.SIGINT)
            deadline = time.time() + (1.0 if attempt == 0 else 30.0)
            while self.running and time.time() < deadline:
                self._reap()
                time.sleep(POLL_S)
        for rid, started in list(self.running.items()):
            self.say(f"{rid} (pid {started.process.pid}) did not stop; the next sweep fails it")
