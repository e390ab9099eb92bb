"""How fast the web UI answers on a large project: `sqlorch ui` against the issue's targets.

    python benchmarks/run_ui.py [--models 1000] [--runs 1000] [--events 1000000] [--repeat 7]
                                [--no-browser]

Sets up (once, cached under benchmarks/projects/): the synthetic dbt project of
benchmarks/generate.py with `--models` models, plus one Python asset with 44,000 hourly
partitions, and a state store holding `--runs` runs and `--events` events (one run alone has
100,000 of them), a materialization of every model in the first run and about 50 more per
model over the other runs, check results, and a ledger of ranges for the hourly asset
(done, failed, stale and missing stretches). Nothing is built: the UI only reads state.

Then, in ONE run, it measures:
- each page's server time through Starlette's TestClient in this process, the pages
  interleaved round-robin (graph, asset, partitions, runs, run, run log, API twins...) so
  background load hits all alike: median and p90 of `--repeat` rounds, against 50 ms;
- the first layout of the whole graph (igraph Sugiyama, 1000+ nodes) against 0.5 s;
- `sqlorch ui` as a process: time to print its URL and to answer the first page, and its
  resident memory (peak) after every page was served, against 1 s and 200 MB;
- in headless Chromium (Playwright, /usr/bin/chromium): the whole graph page loaded and
  drawn (against 1.5 s), the 100,000-event run page (against 1 s) and the 44,000-partition
  grid (against 1 s), median of `--repeat`;
with the load average before and after. The ratio column is median wall / target (< 1: met);
for what runs in this process, the CPU seconds too (less sensitive to a loaded machine).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

from generate import generate  # noqa: E402

HOURS = 44_000
BIG_RUN_EVENTS = 100_000
START = datetime(2021, 1, 1, tzinfo=UTC)

HOURLY_ASSET = '''
from sqlorch import asset, hourly


@asset(schema="raw", partitions=hourly("2021-01-01T00:00", column="ts", end="{end}"))
def clicks_hourly(context):
    """Clicks by hour (44,000 hourly partitions; the benchmark never builds it)."""
    raise RuntimeError("not built in the UI benchmark")
'''


def log(message: str) -> None:
    print(f"[run_ui] {message}", file=sys.stderr, flush=True)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ensure_project(root: Path, models: int, runs: int, events: int) -> Path:
    """Return the project with its state store, creating both unless an identical one exists."""
    project = root / f"ui_m{models}_r{runs}_e{events}"
    marker = project / "ui_ready.json"
    wanted = {"models": models, "runs": runs, "events": events, "version": 1}
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        log(f"{project.name}: reusing")
        return project
    shutil.rmtree(project, ignore_errors=True)
    log(f"{project.name}: generating {models} models")
    generate(project, models, 20_000, 30, 0)
    end = (START + timedelta(hours=HOURS)).strftime("%Y-%m-%dT%H:%M")
    (project / "ui_assets").mkdir()
    (project / "ui_assets" / "__init__.py").write_text("")
    (project / "ui_assets" / "hourly.py").write_text(HOURLY_ASSET.format(end=end))
    (project / "sqlorch.toml").write_text('ingest = ["ui_assets"]\nthreads = 4\n')
    log("parsing the project (sqlorch ls: dbt parses once, the graph is cached)")
    subprocess.run(
        [sys.executable, "-m", "sqlorch.cli", "ls", "--project-dir", str(project)],
        cwd=project,
        check=True,
        stdout=subprocess.DEVNULL,
        env=_env(),
    )
    log(f"filling the state store: {runs} runs, {events:,} events")
    fill_state(project, runs, events)
    marker.write_text(json.dumps(wanted))
    return project


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


def fill_state(project: Path, runs: int, events: int) -> None:
    """Write runs, events, materializations, check results and a ledger into the state store."""
    from sqlorch.events import AttemptOutcome
    from sqlorch.load.project import load_project
    from sqlorch.settings import load_settings
    from sqlorch.state.records import LedgerRow
    from sqlorch.state.store import (
        StateStore,
        attempt_row,
        check_result_row,
        event_row,
        materialization_row,
    )

    os.chdir(project)  # profiles.yml is in the project's folder
    settings = load_settings(project_dir=project)
    graph = load_project(settings).graph
    models = [n for n in graph if n.is_materializable and n.partitions is None]
    hourly = next(n for n in graph if n.partitions is not None)
    store = StateStore(settings.state_path)
    rng = random.Random(0)
    per_run = (events - BIG_RUN_EVENTS) // max(runs - 1, 1)
    base = datetime.now(UTC) - timedelta(minutes=10 * runs + 60)
    for i in range(runs):
        run_id = f"{(base + timedelta(minutes=10 * i)):%Y%m%dT%H%M%S}-{i:06x}"
        started = base + timedelta(minutes=10 * i)
        store.start_run(run_id, "build", "", iso(started))
        n_events = BIG_RUN_EVENTS if i == runs - 1 else per_run
        built = models if i == 0 else rng.sample(models, min(len(models), 50))
        evs, attempts, mats, checks = [], [], [], []
        t = started
        for j in range(n_events):
            node = built[j % len(built)]
            t += timedelta(milliseconds=5)
            level = "warning" if j % 97 == 0 else "debug" if j % 3 else "info"
            evs.append(
                event_row(run_id, iso(t), "asset_log", node.key, f"line {j} of {node.key}", level)
            )
        for node in built:
            t += timedelta(milliseconds=20)
            rows = rng.randint(1_000, 50_000)
            duration = round(rng.uniform(0.05, 2.0), 3)
            mats.append(
                materialization_row(
                    node.key,
                    run_id,
                    iso(t),
                    rows,
                    duration,
                    node.code_version,
                    {"bytes": rows * 40},
                    None,
                    [(c.name, "BIGINT") for c in node.columns],
                )
            )
            attempts.append(attempt_row(run_id, node.key, AttemptOutcome.SUCCESS, iso(t), iso(t)))
            checks.append(
                check_result_row(
                    run_id,
                    f"check.builtin.{node.key}.row_count",
                    f"row_count_{node.name}",
                    "builtin",
                    node.key,
                    "pass" if rng.random() > 0.02 else "fail",
                    True,
                    iso(t),
                )
            )
        store.write_batch(evs, attempts, mats, checks)
        store.finish_run(run_id, "success", iso(t), len(built), 0, 0)
    definition = hourly.partitions
    assert definition is not None
    key = definition.key
    last = run_id
    stretches = [(0, 20_000, "done"), (20_001, 20_100, "failed"), (20_101, 43_000, "done")]
    ledger = [
        LedgerRow("", key((), lo), key((), hi), status, last, iso(datetime.now(UTC)), "x")
        for lo, hi, status in stretches
    ]
    store.update_ledger(hourly.key, lambda _rows: ledger)
    store.close()


#: CPU seconds of this process per measure (TestClient serves in this process's threads)
CPU: dict[str, list[float]] = {}


def timed(fn: Callable[[], Any], name: str | None = None) -> float:
    started, cpu = time.perf_counter(), time.process_time()
    fn()
    if name is not None:
        CPU.setdefault(name, []).append(time.process_time() - cpu)
    return time.perf_counter() - started


def server_times(project: Path, repeat: int) -> dict[str, list[float]]:
    """Each page through TestClient, interleaved round-robin; seconds per request."""
    from starlette.testclient import TestClient

    from sqlorch.settings import load_settings
    from sqlorch.web.server import create_app

    os.chdir(project)
    client = TestClient(create_app(load_settings(project_dir=project)))
    big = client.get("/api/runs", params={"limit": 1}).json()[0]["run_id"]
    asset = "main." + sorted(p.stem for p in (project / "models").rglob("*.sql"))[-1]
    pages = {
        "graph (whole, 1000+ nodes)": "/?all=1",
        "graph (selection +x)": f"/?select=%2B{asset.split('.')[1]}",
        "graph JSON": "/api/graph",
        "asset page": f"/assets/{asset}",
        "asset JSON": f"/api/assets/{asset}",
        "partitions (44,000 hourly)": "/partitions/raw.clicks_hourly",
        "runs list": "/runs",
        "run page (100,000 events)": f"/runs/{big}",
        "run log, a deep page": f"/api/runs/{big}/events?after=90000",
        "runs JSON": "/api/runs",
    }
    first = timed(lambda: client.get("/?all=1"), "graph, first (layout)")
    out: dict[str, list[float]] = {"graph, first (layout)": [first]}
    for _ in range(repeat):
        for name, url in pages.items():
            response = None

            def get(url: str = url) -> None:
                nonlocal response
                response = client.get(url)

            out.setdefault(name, []).append(timed(get, name))
            assert response is not None and response.status_code == 200, (url, response)
    return out


def layout_time(project: Path) -> float:
    from sqlorch.load.project import load_project
    from sqlorch.settings import load_settings
    from sqlorch.web.layout import layered

    graph = load_project(load_settings(project_dir=project)).graph
    nodes = [n.key for n in graph]
    edges = [(d, n.key) for n in graph for d in n.deps]
    return timed(lambda: layered(nodes, edges), "layout of the whole graph")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_figures(project: Path, repeat: int, browser: bool) -> dict[str, Any]:
    """`sqlorch ui` as a process: start-up, memory; the browser's figures against it."""
    port = free_port()
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "sqlorch.cli", "ui", "--port", str(port)],
        cwd=project,
        env=_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    process.stdout.readline()
    printed = time.perf_counter() - started
    url = f"http://127.0.0.1:{port}/"
    while True:
        try:
            with urllib.request.urlopen(url + "runs", timeout=30) as r:
                r.read()
            break
        except OSError:
            time.sleep(0.02)
    answered = time.perf_counter() - started
    figures: dict[str, Any] = {"start: URL printed": printed, "start: first page": answered}
    try:
        big = json.loads(urllib.request.urlopen(url + "api/runs?limit=1").read())[0]["run_id"]
        if browser:
            figures.update(browser_times(url, big, repeat))
        for path in ("?all=1", "api/graph", "partitions/raw.clicks_hourly", f"runs/{big}"):
            urllib.request.urlopen(url + path, timeout=60).read()
        status = Path(f"/proc/{process.pid}/status").read_text()
        figures["memory: peak RSS (MB)"] = _kb(status, "VmHWM") / 1024
        figures["memory: RSS now (MB)"] = _kb(status, "VmRSS") / 1024
    finally:
        process.terminate()
        process.wait(timeout=30)
    return figures


def _kb(status: str, field: str) -> float:
    line = next(x for x in status.splitlines() if x.startswith(field + ":"))
    return float(line.split()[1])


def browser_times(url: str, big_run: str, repeat: int) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    out: dict[str, list[float]] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        checks = {
            "browser: whole graph interactive": (url + "?all=1", "svg.graph a.node"),
            "browser: run page, 100,000 events": (url + f"runs/{big_run}", "#log tr.info"),
            "browser: 44,000-partition grid": (url + "partitions/raw.clicks_hourly", ".seg"),
        }
        for _ in range(repeat):
            for name, (target, selector) in checks.items():
                started = time.perf_counter()
                page.goto(target, wait_until="load")
                page.wait_for_selector(selector)
                out.setdefault(name, []).append(time.perf_counter() - started)
        browser.close()
    return out


TARGETS = {
    "graph, first (layout)": 0.5 + 0.05,
    "layout of the whole graph": 0.5,
    "start: URL printed": 1.0,
    "start: first page": 1.0,
    "memory: peak RSS (MB)": 200.0,
    "memory: RSS now (MB)": 200.0,
    "browser: whole graph interactive": 1.5,
    "browser: run page, 100,000 events": 1.0,
    "browser: 44,000-partition grid": 1.0,
}


def report(figures: dict[str, Any]) -> None:
    print(
        f"{'measure':<38} {'median':>10} {'p90':>10} {'target':>8} {'ratio':>7} "
        f"{'CPU med':>9} {'CPU ratio':>9}"
    )
    for name, value in figures.items():
        values = value if isinstance(value, list) else [value]
        med = statistics.median(values)
        p90 = sorted(values)[min(len(values) - 1, int(0.9 * len(values)))]
        target = TARGETS.get(name, 0.05)
        unit = "" if "MB" in name else "s"
        cpu = statistics.median(CPU[name]) if name in CPU else None
        tail = f" {cpu:>8.3f}s {cpu / target:>9.2f}" if cpu is not None else ""
        print(
            f"{name:<38} {med:>9.3f}{unit} {p90:>9.3f}{unit} {target:>7.2f}{unit} "
            f"{med / target:>7.2f}{tail}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    root = HERE / "projects"
    root.mkdir(exist_ok=True)
    project = ensure_project(root, args.models, args.runs, args.events)
    os.chdir(project)  # as `sqlorch ui` runs: profiles.yml is in the project's folder
    load = os.getloadavg()
    figures: dict[str, Any] = {}
    figures["layout of the whole graph"] = layout_time(project)
    figures.update(server_times(project, args.repeat))
    figures.update(process_figures(project, max(3, args.repeat // 2), not args.no_browser))
    print(
        f"{args.models} models + 1 hourly asset ({HOURS:,} partitions); {args.runs} runs, "
        f"{args.events:,} events; load average before {load[0]:.2f}, "
        f"after {os.getloadavg()[0]:.2f} (2 cores)"
    )
    report(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
