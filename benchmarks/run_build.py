"""Time a full build of synthetic dbt projects: plain dbt, sqlorch, and the DuckDB floor.

    python benchmarks/run_build.py [--models 100 1000] [--rows 1000000] [--days 90]
                                   [--repeat 3] [--tools dbt,sqlorch,floor] [--json]

For each size it generates (or reuses) a project under benchmarks/projects/ and times, best of
`--repeat`, each repetition starting from a fresh copy of a DuckDB file holding only raw.events:

- dbt:     `dbt build --project-dir P --profiles-dir P` as a subprocess, partial parse warm
           (`dbt parse` runs once before timing);
- sqlorch: `sqlorch build --project-dir P --profiles-dir P` as a subprocess; P/.sqlorch/ is
           emptied between repetitions except the dbt target directories (partial parse) in it;
- floor:   the compiled SQL of every model (`dbt compile` once, target/compiled/...) run as
           `CREATE OR REPLACE TABLE|VIEW main.name AS ...` in dependency order in one DuckDB
           connection in this process; only the SQL and the final CHECKPOINT are timed.

Repetitions are interleaved (dbt, sqlorch, floor, dbt, ...) so background load hits all three
alike. Every timed build is checked to have produced all N relations.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from generate import DB_FILE, GENERATOR_VERSION, META_FILE, generate, write_raw

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent  # the venv's bin/, not resolved: keep the venv
RAW_COPY = "raw_events.duckdb"
LOG_DIR = "bench_logs"
TARGET = "full build of 1000 models at most 1.1x plain dbt build"
TARGET_RATIO = 1.1
TOOLS = ("dbt", "sqlorch", "floor")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def ensure_project(root: Path, models: int, rows: int, days: int, seed: int) -> Path:
    """Return a project for these parameters, generating it unless an identical one exists."""
    project = root / f"bench_m{models}_r{rows}_d{days}_s{seed}"
    wanted = {
        "generator_version": GENERATOR_VERSION,
        "models": models,
        "rows": rows,
        "days": days,
        "seed": seed,
    }
    meta = project / META_FILE
    if meta.exists() and json.loads(meta.read_text()) == wanted:
        if not (project / RAW_COPY).exists():
            log(f"{project.name}: regenerating {RAW_COPY}")
            write_raw(project / RAW_COPY, rows, days, seed)
        log(f"{project.name}: reusing")
        return project
    log(f"{project.name}: generating")
    generate(project, models, rows, days, seed)
    shutil.copyfile(project / DB_FILE, project / RAW_COPY)
    return project


def fresh_database(project: Path) -> None:
    """Replace the project's database with the pristine copy holding only raw.events."""
    db = project / DB_FILE
    db.with_name(db.name + ".wal").unlink(missing_ok=True)
    shutil.copyfile(project / RAW_COPY, db)


def clear_sqlorch_state(project: Path) -> None:
    """Empty P/.sqlorch/ except dbt target directories (those holding a partial parse)."""
    state = project / ".sqlorch"
    if not state.exists():
        return
    keep = [p.parent for p in state.rglob("partial_parse.msgpack")]
    for path in sorted(state.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if any(path == k or k in path.parents or path in k.parents for k in keep):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def run_command(
    cmd: list[str], cwd: Path, logfile: Path, timeout: float
) -> tuple[float, float, int]:
    """Run `cmd` in `cwd`, output to `logfile`; return (wall seconds, CPU seconds, exit code).

    The working directory is the generated project, so neither tool picks up settings (such as
    a `[tool.sqlorch]` table) from the directory the benchmark was started in.
    """
    env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "NO_COLOR": "1"}
    logfile.parent.mkdir(parents=True, exist_ok=True)
    with logfile.open("w") as out:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        try:
            proc = subprocess.run(
                cmd,
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                timeout=timeout,
                check=False,
            )
            code = proc.returncode
        except subprocess.TimeoutExpired:
            out.write(f"\nbenchmark: timed out after {timeout:.0f} s\n")
            code = -1
        except OSError as exc:
            out.write(f"{exc}\n")
            code = -1
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return wall, cpu, code


def error_summary(logfile: Path) -> str:
    """Return the line of a failed command's log that says what went wrong."""
    lines = [ln.strip() for ln in logfile.read_text(errors="replace").splitlines() if ln.strip()]
    if not lines:
        return "no output"
    if any(ln.startswith("Traceback") for ln in lines):
        return lines[-1]
    errors = [ln for ln in lines if "error" in ln.lower()]
    return (errors or lines)[0]


def count_relations(project: Path) -> int:
    """Return how many tables and views the schema `main` of the project's database holds."""
    import duckdb

    con = duckdb.connect(str(project / DB_FILE), read_only=True)
    try:
        row = con.execute(
            "select count(*) from information_schema.tables where table_schema = 'main'"
        ).fetchone()
        return int(row[0]) if row else 0
    finally:
        con.close()


def floor_plan(project: Path) -> list[tuple[str, str, str]]:
    """Return (TABLE|VIEW, relation, compiled SQL) for every model in dependency order."""
    manifest = json.loads((project / "target" / "manifest.json").read_text())
    models = {k: n for k, n in manifest["nodes"].items() if n["resource_type"] == "model"}
    deps = {k: [d for d in n["depends_on"]["nodes"] if d in models] for k, n in models.items()}
    done: set[str] = set()
    order: list[str] = []
    pending = sorted(models)
    while pending:
        ready = [k for k in pending if all(d in done for d in deps[k])]
        if not ready:
            raise SystemExit(f"cycle among models: {pending[:5]}")
        order.extend(ready)
        done.update(ready)
        pending = [k for k in pending if k not in done]
    plan = []
    for key in order:
        node = models[key]
        compiled = project / node["compiled_path"]
        sql = compiled.read_text() if compiled.exists() else node["compiled_code"]
        kind = "VIEW" if node["config"]["materialized"] == "view" else "TABLE"
        relation = f'"{node["schema"]}"."{node["alias"]}"'
        plan.append((kind, relation, sql.strip().rstrip(";")))
    return plan


def run_floor(project: Path, plan: list[tuple[str, str, str]]) -> tuple[float, float, float]:
    """Execute the plan in one connection; return (SQL s, CHECKPOINT s, CPU s of both)."""
    import duckdb

    con = duckdb.connect(str(project / DB_FILE))
    try:
        cpu = time.process_time()
        start = time.perf_counter()
        for kind, relation, sql in plan:
            con.execute(f"CREATE OR REPLACE {kind} {relation} AS\n{sql}")
        sql_done = time.perf_counter()
        con.execute("CHECKPOINT")
        end = time.perf_counter()
        return sql_done - start, end - sql_done, time.process_time() - cpu
    finally:
        con.close()


def prepare(project: Path, tools: list[str], timeout: float) -> list[tuple[str, str, str]]:
    """Warm dbt's partial parse (and sqlorch's), compile for the floor; return the floor plan."""
    dirs = ["--project-dir", str(project), "--profiles-dir", str(project)]
    logs = project / LOG_DIR
    fresh_database(project)
    for step in ("parse", "compile"):
        seconds, _, code = run_command(
            [str(BIN / "dbt"), step, *dirs], project, logs / f"dbt-{step}.log", timeout
        )
        if code != 0:
            raise SystemExit(f"dbt {step} failed: {error_summary(logs / f'dbt-{step}.log')}")
        log(f"  dbt {step} (untimed): {seconds:.2f} s")
    if "sqlorch" in tools:
        # untimed: lets sqlorch fill its own caches, as `dbt parse` does for dbt
        seconds, _, code = run_command(
            [str(BIN / "sqlorch"), "ls", *dirs], project, logs / "sqlorch-warmup.log", timeout
        )
        log(f"  sqlorch ls (untimed warm-up): {seconds:.2f} s, exit {code}")
    return floor_plan(project) if "floor" in tools else []


def bench_size(
    project: Path, models: int, tools: list[str], repeat: int, timeout: float
) -> dict[str, Any]:
    """Time every tool `repeat` times on one project; return the measurements."""
    plan = prepare(project, tools, timeout)
    dirs = ["--project-dir", str(project), "--profiles-dir", str(project)]
    runs: dict[str, list[float]] = {t: [] for t in tools}
    cpu_runs: dict[str, list[float]] = {t: [] for t in tools}
    result: dict[str, Any] = {"models": models, "project": str(project)}
    active = list(tools)
    for rep in range(1, repeat + 1):
        for tool in list(active):
            fresh_database(project)
            logfile = project / LOG_DIR / f"{tool}-{rep}.log"
            if tool == "floor":
                sql_s, checkpoint_s, cpu = run_floor(project, plan)
                seconds = sql_s + checkpoint_s
                result.setdefault("floor_checkpoint_runs", []).append(round(checkpoint_s, 3))
                code = 0
            else:
                if tool == "sqlorch":
                    clear_sqlorch_state(project)
                cmd = [str(BIN / tool), "build", *dirs]
                seconds, cpu, code = run_command(cmd, project, logfile, timeout)
            if code != 0:
                summary = error_summary(logfile)
                if tool != "sqlorch":
                    raise SystemExit(f"{tool} build failed ({logfile}): {summary}")
                log(f"  sqlorch: not available ({summary})")
                result["sqlorch_error"] = summary
                active.remove(tool)
                continue
            built = count_relations(project)
            if built != models:
                message = f"{tool} built {built} of {models} relations (see {logfile})"
                if tool != "sqlorch":
                    raise SystemExit(message)
                log(f"  sqlorch: not available ({message})")
                result["sqlorch_error"] = message
                active.remove(tool)
                continue
            runs[tool].append(seconds)
            cpu_runs[tool].append(cpu)
            log(f"  rep {rep} {tool}: {seconds:.2f} s wall, {cpu:.2f} s CPU")
    for tool in tools:
        result[f"{tool}_runs"] = [round(s, 3) for s in runs[tool]]
        result[f"{tool}_s"] = round(min(runs[tool]), 3) if runs[tool] else None
        result[f"{tool}_cpu_runs"] = [round(s, 3) for s in cpu_runs[tool]]
        result[f"{tool}_cpu_s"] = round(min(cpu_runs[tool]), 3) if cpu_runs[tool] else None
    for a, b in (("sqlorch", "dbt"), ("sqlorch", "floor"), ("dbt", "floor")):
        x, y = result.get(f"{a}_s"), result.get(f"{b}_s")
        result[f"{a}_over_{b}"] = round(x / y, 3) if x and y else None
    return result


def fmt(value: float | None, suffix: str = "") -> str:
    return "-" if value is None else f"{value:.2f}{suffix}"


def render(results: list[dict[str, Any]], rows: int, days: int, repeat: int) -> str:
    header = (
        "models",
        "dbt s",
        "sqlorch s",
        "floor s",
        "sqlorch/dbt",
        "sqlorch/floor",
        "dbt/floor",
    )
    table = [header]
    for r in results:
        table.append(
            (
                str(r["models"]),
                fmt(r.get("dbt_s")),
                fmt(r.get("sqlorch_s")),
                fmt(r.get("floor_s")),
                fmt(r.get("sqlorch_over_dbt"), "x"),
                fmt(r.get("sqlorch_over_floor"), "x"),
                fmt(r.get("dbt_over_floor"), "x"),
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = [f"full build, {rows:,} raw rows over {days} days, best of {repeat}"]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in table]
    for r in results:
        cpu = ", ".join(f"{t} {fmt(r.get(f'{t}_cpu_s'))}" for t in TOOLS if f"{t}_cpu_s" in r)
        lines.append(f"CPU s (user+sys, best of {repeat}) at {r['models']} models: {cpu}")
    for r in results:
        if r.get("sqlorch_error"):
            lines.append(f"sqlorch ({r['models']} models): not available ({r['sqlorch_error']})")
    lines.append(f"target: {TARGET}: {verdict(results)}")
    return "\n".join(lines)


def verdict(results: list[dict[str, Any]]) -> str:
    big = [r for r in results if r["models"] == 1000]
    if not big:
        return "not measured (no 1000-model size in this run)"
    ratio = big[0].get("sqlorch_over_dbt")
    if ratio is None:
        return "not measured (sqlorch did not run)"
    return f"{ratio:.2f}x {'PASS' if ratio <= TARGET_RATIO else 'FAIL'}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tools", default=",".join(TOOLS), help="comma-separated subset")
    parser.add_argument("--projects-dir", type=Path, default=HERE / "projects")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per command")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    tools = [t for t in TOOLS if t in args.tools.split(",")]
    if not tools or args.repeat < 1:
        parser.error("need at least one known tool and --repeat >= 1")

    load_before = os.getloadavg()
    results = []
    for models in args.models:
        project = ensure_project(
            args.projects_dir.resolve(), models, args.rows, args.days, args.seed
        )
        results.append(bench_size(project, models, tools, args.repeat, args.timeout))
    load_after = os.getloadavg()
    text = render(results, args.rows, args.days, args.repeat)
    text += f"\nload average (1 min) before/after: {load_before[0]:.2f}/{load_after[0]:.2f}"
    text += f" on {os.cpu_count()} CPUs"
    if args.json:
        log(text)
        doc = {
            "rows": args.rows,
            "days": args.days,
            "seed": args.seed,
            "repeat": args.repeat,
            "target": TARGET,
            "target_ratio": TARGET_RATIO,
            "verdict": verdict(results),
            "load_average_before_after": [load_before[0], load_after[0]],
            "cpus": os.cpu_count(),
            "results": results,
        }
        print(json.dumps(doc, indent=2))
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
