"""Native execution (issue 16): sqlorch against plain dbt and the floor, cold and warm cache.

    python benchmarks/run_native.py [--models 100 1000] [--rows 2000000] [--days 90]
                                    [--repeat 2] [--json]

For each size (projects from benchmarks/generate.py, shared with run_build.py) and each
repetition, interleaved so background load hits all alike, from a fresh copy of the DuckDB
file holding only raw.events:

- dbt:            `dbt build` (subprocess, partial parse warm);
- sqlorch cold:   `sqlorch build` with nothing of sqlorch's cached (no manifest cache, no
                  compiled SQL; dbt's partial parse warm, as for dbt);
- sqlorch warm:   `sqlorch build` with the manifest cache and compiled SQL cached but no run
                  state (every model is built);
- sqlorch via dbt: `SQLORCH_EXECUTION=dbt sqlorch build` (the fallback), warm caches;
- floor:          the compiled SQL in dependency order in one DuckDB connection;
- floor_parallel: the same with two DuckDB cursors writing independent models at once
                  (what parallel native writers could gain at best).

Then the edit loop: one leaf model is edited (its SQL wrapped in a subquery, toggled each
time) and `sqlorch build` (it compiles only that model) is timed against
`dbt build -s leaf`, then, with a `sqlorch dev` started and idle, from the file written to
the end of `sqlorch build` (the dev process's CPU for it added to the build's). Wall and
CPU seconds (user+sys) and peak RSS are printed; the best of `--repeat` is reported, with
the load average at the start and the end. The two lines that answer issue 16's edit-loop
targets start with ONE-LEAF EDIT and EDIT LOOP. The edit loop alone, on a quiet machine:

    python benchmarks/run_native.py --models 100 1000 --repeat 5 --modes ""
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from run_build import (
    BIN,
    HERE,
    LOG_DIR,
    clear_sqlorch_state,
    count_relations,
    ensure_project,
    error_summary,
    fresh_database,
    prepare,
    run_floor,
)

MODES = ("dbt", "sqlorch_cold", "sqlorch_warm", "sqlorch_via_dbt", "floor", "floor_parallel")
EDIT_MODES = ("edit_sqlorch", "edit_dbt", "edit_warm")
LOAD_AT_START: list[float] = []


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def timed(
    cmd: list[str], cwd: Path, logfile: Path, env: dict[str, str]
) -> tuple[float, float, int]:
    """Run `cmd`; return (wall s, CPU s, peak RSS MB) of it alone (a wrapper process)."""
    wrapper = (
        "import resource, subprocess, sys, time, json\n"
        "t = time.perf_counter()\n"
        "code = subprocess.run(sys.argv[1:]).returncode\n"
        "wall = time.perf_counter() - t\n"
        "r = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "print(json.dumps([wall, r.ru_utime + r.ru_stime, r.ru_maxrss, code]), file=sys.stderr)\n"
    )
    logfile.parent.mkdir(parents=True, exist_ok=True)
    with logfile.open("w") as out:
        proc = subprocess.run(
            [sys.executable, "-c", wrapper, *cmd],
            cwd=cwd,
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **env, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "NO_COLOR": "1"},
            check=False,
        )
    wall, cpu, rss_kb, code = json.loads(proc.stderr.strip().splitlines()[-1])
    if code != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} failed ({logfile}): {error_summary(logfile)}")
    return wall, cpu, rss_kb / 1024


def clear_all_but_dbt_parse(project: Path) -> None:
    """sqlorch cold: nothing of sqlorch's cached (dbt's partial parse kept)."""
    clear_sqlorch_state(project)


def clear_run_state(project: Path) -> None:
    """sqlorch warm: keep the manifest cache and compiled SQL; forget runs (all stale)."""
    state = project / ".sqlorch"
    for name in ("state.db", "state.db-wal", "state.db-shm", "relations.json"):
        (state / name).unlink(missing_ok=True)
    shutil.rmtree(state / "runs", ignore_errors=True)


def run_floor_parallel(
    project: Path, plan: list[tuple[str, str, str]], writers: int = 2
) -> tuple[float, float]:
    """The floor with `writers` DuckDB cursors, each model once its parents are written.

    What parallel native writers could gain at best (independent branches of the graph
    written at once); returns (wall s, CPU s) including the CHECKPOINT.
    """
    import threading

    import duckdb

    relations = [r for _, r, _ in plan]
    names = [r.split(".")[-1].strip('"') for r in relations]
    parents = [
        {j for j in range(i) if f'"{names[j]}"' in sql or f".{names[j]}" in sql}
        for i, (_, _, sql) in enumerate(plan)
    ]
    con = duckdb.connect(str(project / "bench.duckdb"))
    done: set[int] = set()
    taken: set[int] = set()
    cond = threading.Condition()
    errors: list[BaseException] = []

    def worker() -> None:
        cur = con.cursor()
        try:
            while True:
                with cond:
                    while True:
                        if errors or len(done) == len(plan):
                            return
                        ready = [
                            i for i in range(len(plan)) if i not in taken and parents[i] <= done
                        ]
                        if ready:
                            i = ready[0]
                            taken.add(i)
                            break
                        cond.wait()
                kind, relation, sql = plan[i]
                try:
                    cur.execute(f"CREATE OR REPLACE {kind} {relation} AS\n{sql}")
                except BaseException as exc:  # noqa: BLE001 - reported below
                    with cond:
                        errors.append(exc)
                        cond.notify_all()
                    return
                with cond:
                    done.add(i)
                    cond.notify_all()
        finally:
            cur.close()

    try:
        cpu = time.process_time()
        start = time.perf_counter()
        threads = [threading.Thread(target=worker) for _ in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise SystemExit(f"parallel floor failed: {errors[0]}")
        con.execute("CHECKPOINT")
        return time.perf_counter() - start, time.process_time() - cpu
    finally:
        con.close()


def leaf_of(project: Path) -> Path:
    """A model nothing depends on (from dbt's manifest)."""
    manifest = json.loads((project / "target" / "manifest.json").read_text())
    models = {k: n for k, n in manifest["nodes"].items() if n["resource_type"] == "model"}
    used = {d for n in models.values() for d in n["depends_on"]["nodes"]}
    leaf = sorted(k for k in models if k not in used)[-1]
    return project / models[leaf]["original_file_path"]


def edit(path: Path, original: str, n: int) -> None:
    """Change the model's code (not its result): its SQL in a subquery named after `n`."""
    config, _, body = original.rpartition("}}\n\n")
    prefix = config + "}}\n\n" if config else ""
    path.write_text(f"{prefix}select * from (\n{body}\n) as bench_edit_{n}\n")


def bench_size(
    project: Path, models: int, repeat: int, modes: tuple[str, ...], edits: bool
) -> dict[str, Any]:
    plan = prepare(project, ["dbt", "sqlorch", "floor"], 3600)
    dirs = ["--project-dir", str(project), "--profiles-dir", str(project)]
    logs = project / LOG_DIR
    runs: dict[str, list[tuple[float, float, float]]] = {m: [] for m in (*MODES, *EDIT_MODES)}
    if "sqlorch_warm" in modes:
        # untimed: fills the compiled-SQL cache, as `dbt parse` warms dbt's partial parse
        fresh_database(project)
        timed([str(BIN / "sqlorch"), "build", *dirs], project, logs / "native-warmup.log", {})
    for rep in range(1, repeat + 1):
        for mode in modes:
            fresh_database(project)
            if mode == "floor":
                sql_s, ck_s, cpu = run_floor(project, plan)
                runs[mode].append((sql_s + ck_s, cpu, 0.0))
                log(f"  rep {rep} floor: {sql_s + ck_s:.2f} s wall, {cpu:.2f} s CPU")
                continue
            if mode == "floor_parallel":
                wall, cpu = run_floor_parallel(project, plan)
                runs[mode].append((wall, cpu, 0.0))
                log(f"  rep {rep} floor, 2 writers: {wall:.2f} s wall, {cpu:.2f} s CPU")
                continue
            env: dict[str, str] = {}
            if mode == "dbt":
                cmd = [str(BIN / "dbt"), "build", *dirs]
            else:
                cmd = [str(BIN / "sqlorch"), "build", *dirs]
                if mode == "sqlorch_cold":
                    clear_all_but_dbt_parse(project)
                else:
                    clear_run_state(project)
                if mode == "sqlorch_via_dbt":
                    env["SQLORCH_EXECUTION"] = "dbt"
            got = timed(cmd, project, logs / f"native-{mode}-{rep}.log", env)
            built = count_relations(project)
            if built != models:
                raise SystemExit(f"{mode} built {built} of {models} relations")
            runs[mode].append(got)
            log(f"  rep {rep} {mode}: {got[0]:.2f} s wall, {got[1]:.2f} s CPU, {got[2]:.0f} MB")
    result: dict[str, Any] = {"models": models}
    if edits:
        result["leaf"], result["warm_build_imports"] = edit_loop(project, repeat, runs)
    for mode, values in runs.items():
        if values:
            result[mode] = {
                "wall_s": round(min(v[0] for v in values), 3),
                "cpu_s": round(min(v[1] for v in values), 3),
                "peak_mb": round(max(v[2] for v in values), 1),
                "walls": [round(v[0], 3) for v in values],
                "cpus": [round(v[1], 3) for v in values],
            }
    return result


def edit_loop(
    project: Path, repeat: int, runs: dict[str, list[tuple[float, float, float]]]
) -> tuple[str, list[str]]:
    """Edit one leaf model and build: `sqlorch build` (without and with a `sqlorch dev`
    running) against `dbt build -s leaf`.

    With `sqlorch dev`, the time runs from the edit (the file written) to the end of the
    build, so it includes the warm process noticing the change, parsing and compiling;
    the dev process's own CPU for it is added to the build's.
    """
    dirs = ["--project-dir", str(project), "--profiles-dir", str(project)]
    logs = project / LOG_DIR
    fresh_database(project)
    clear_run_state(project)
    timed([str(BIN / "sqlorch"), "build", *dirs], project, logs / "native-edit-prep.log", {})
    leaf = leaf_of(project)
    name, original = leaf.stem, leaf.read_text()
    sq = [str(BIN / "sqlorch"), "build", *dirs]
    # the same build, saying whether it imported dbt (it must not, with `sqlorch dev` warm)
    marker = logs / "edit-w-dbt-imported.txt"
    checked = [
        sys.executable,
        "-c",
        "import sys\n"
        "from sqlorch.cli import cli\n"
        "code = 0\n"
        "try:\n"
        f"    cli(['build', *{dirs!r}], prog_name='sqlorch')\n"
        "except SystemExit as exc:\n"
        "    code = exc.code\n"
        "dbt = any(m == 'dbt' or m.startswith('dbt.') for m in sys.modules)\n"
        f"open({str(marker)!r}, 'w').write('dbt imported' if dbt else 'no dbt')\n"
        "sys.exit(code)\n",
    ]
    imports: list[str] = []
    try:
        for rep in range(1, repeat + 1):
            edit(leaf, original, 3 * rep)
            got = timed(sq, project, logs / f"edit-s-{rep}.log", {})
            runs["edit_sqlorch"].append(got)
            edit(leaf, original, 3 * rep + 1)
            db = [str(BIN / "dbt"), "build", "-s", name, *dirs]
            got_dbt = timed(db, project, logs / f"edit-d-{rep}.log", {})
            runs["edit_dbt"].append(got_dbt)
            with WarmDev(project, logs / f"edit-dev-{rep}.log") as dev:
                cpu_before = dev.cpu()
                started = time.perf_counter()
                edit(leaf, original, 3 * rep + 2)
                wall, cpu, peak = timed(checked, project, logs / f"edit-w-{rep}.log", {})
                wall = time.perf_counter() - started
                got_warm = (wall, cpu + dev.cpu() - cpu_before, peak)
                imported = marker.read_text().strip()
            runs["edit_warm"].append(got_warm)
            imports.append(imported)
            log(
                f"  rep {rep} edit {name}: sqlorch {got[0]:.2f} s, dbt -s {got_dbt[0]:.2f} s, "
                f"with sqlorch dev {got_warm[0]:.2f} s ({imported} in the build)"
            )
    finally:
        leaf.write_text(original)
    return name, imports


class WarmDev:
    """A `sqlorch dev` process over the project, idle (its first refresh done) when entered."""

    def __init__(self, project: Path, logfile: Path) -> None:
        self.project = project
        self.logfile = logfile
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> WarmDev:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        dirs = ["--project-dir", str(self.project), "--profiles-dir", str(self.project)]
        self.logfile.parent.mkdir(parents=True, exist_ok=True)
        with self.logfile.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(BIN / "sqlorch"), "dev", *dirs, "--port", str(port)],
                cwd=self.project,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "NO_COLOR": "1"},
            )
        info = self.project / ".sqlorch" / "dbt" / "warm.json"
        deadline = time.monotonic() + 600
        while not info.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"sqlorch dev did not start ({self.logfile})")
            time.sleep(0.1)
        self.wait_idle()
        time.sleep(3.0)  # the UI and the daemon settle
        self.wait_idle()
        return self

    def wait_idle(self) -> None:
        """Block until the warm process is not parsing or compiling."""
        import fcntl

        time.sleep(0.5)  # it takes the lock within its polling interval
        fd = os.open(self.project / ".sqlorch" / "dbt" / "warm.lock", os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def cpu(self) -> float:
        """The dev process's own CPU seconds so far (its warm compiler runs in it)."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def render(results: list[dict[str, Any]], rows: int, repeat: int) -> str:
    now = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    start = ", ".join(f"{x:.2f}" for x in LOAD_AT_START)
    lines = [
        f"native execution, {rows:,} raw rows, best of {repeat}; "
        f"load average at start {start}, at the end {now}"
    ]
    for r in results:
        floor, dbt = r.get("floor"), r.get("dbt")
        lines.append(f"{r['models']} models:")
        for mode in (*MODES, *EDIT_MODES):
            m = r.get(mode)
            if not m:
                continue
            ratios = ""
            if not mode.startswith("edit") and floor and dbt:
                ratios = (
                    f"  wall/floor {m['wall_s'] / floor['wall_s']:.2f}x"
                    f"  wall/dbt {m['wall_s'] / dbt['wall_s']:.2f}x"
                    f"  cpu/dbt {m['cpu_s'] / dbt['cpu_s']:.2f}x"
                )
            lines.append(
                f"  {mode:<16} {m['wall_s']:7.2f} s wall {m['cpu_s']:7.2f} s CPU "
                f"{m['peak_mb']:7.0f} MB peak{ratios}"
            )
        es, ed = r.get("edit_sqlorch"), r.get("edit_dbt")
        if not es or not ed:
            continue
        pairs = ", ".join(f"{a / b:.2f}x" for a, b in zip(es["cpus"], ed["cpus"], strict=True))
        lines.append(
            f"  ONE-LEAF EDIT, no warm process ({r['leaf']}): `sqlorch build` / "
            f"`dbt build -s {r['leaf']}`: CPU {es['cpu_s'] / ed['cpu_s']:.2f}x (best of each; "
            f"per pair {pairs}), wall {es['wall_s'] / ed['wall_s']:.2f}x   (target < 1.00x)"
        )
        ew = r.get("edit_warm")
        if ew:
            walls = sorted(ew["walls"])
            imported = sorted(set(r.get("warm_build_imports") or ["?"]))
            lines.append(
                f"  EDIT LOOP with `sqlorch dev` warm: edit -> build done {ew['wall_s']:.2f} s "
                f"wall best, {walls[len(walls) // 2]:.2f} s median (target < 1.0 s); CPU "
                f"(build + dev process) {ew['cpu_s']:.2f} s; {ew['wall_s'] / ed['wall_s']:.2f}x "
                f"the wall of `dbt build -s`; the build: {', '.join(imported)}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--projects-dir", type=Path, default=HERE / "projects")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated subset")
    parser.add_argument("--no-edit", action="store_true", help="skip the one-leaf edit loop")
    args = parser.parse_args(argv)
    LOAD_AT_START[:] = os.getloadavg()
    results = []
    for models in args.models:
        project = ensure_project(args.projects_dir, models, args.rows, args.days, args.seed)
        log(f"{models} models: {project}")
        modes = tuple(m for m in args.modes.split(",") if m)
        results.append(bench_size(project, models, args.repeat, modes, not args.no_edit))
    print(json.dumps(results, indent=1) if args.json else render(results, args.rows, args.repeat))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
