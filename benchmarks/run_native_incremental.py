"""Native incremental models (issue 16): sqlorch against plain dbt and the floor, paired.

    python benchmarks/run_native_incremental.py [--models 60] [--rows 1000000] [--repeat 2]

A synthetic project of incremental models (generated here: raw.events, then layers of
incremental models over it and over each other, cycling through dbt-duckdb's strategies:
delete+insert with a key, append, merge with a key, delete+insert with a list of keys).
Each repetition, interleaved (A B C A B C ...) so background load hits all alike, runs from
a fresh DuckDB file holding the first 80% of the raw rows:

- the first build (every relation missing: `create table as`), then the last 20% of the
  rows are inserted (untimed), then an incremental build (every model's incremental path);
- tools: `dbt build`, `sqlorch build` (native; compiled SQL cached from a warm-up run, as
  dbt's partial parse is warm), and the floor: dbt's compiled SQL in one DuckDB connection
  (`create table as` on the first build; on the incremental build the same temp table,
  delete and insert statements as each strategy, nothing else).

Wall and CPU seconds (user+sys of the process tree) per build, best of `--repeat`, with
the load average (the machine is shared: compare CPU first).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

from run_build import BIN, HERE, LOG_DIR, error_summary, run_command
from run_native import clear_run_state, log, timed

DB = "bench.duckdb"
FIRST = "raw_first.duckdb"
NEW = "raw_new.duckdb"
STRATEGIES = (
    "unique_key='id'",
    "incremental_strategy='append'",
    "unique_key='id', incremental_strategy='merge'",
    "unique_key=['id', 'kind'], incremental_strategy='delete+insert'",
)
TOOLS = ("dbt", "sqlorch", "floor")


def generate(project: Path, models: int, rows: int) -> None:
    """Write the project and the two raw-data files (first 80%, the rest)."""
    import duckdb

    if project.exists():
        shutil.rmtree(project)
    (project / "models").mkdir(parents=True)
    (project / "dbt_project.yml").write_text(
        "name: incr\nversion: '1.0'\nconfig-version: 2\nprofile: incr\nmodel-paths: [models]\n"
    )
    (project / "profiles.yml").write_text(
        "incr:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
        f"      path: {(project / DB).as_posix()}\n      threads: 4\n      schema: main\n"
    )
    (project / "sqlorch.toml").write_text("threads = 4\n")
    (project / "models" / "sources.yml").write_text(
        "version: 2\nsources:\n  - name: raw\n    schema: raw\n    tables:\n      - name: events\n"
    )
    for i in range(models):
        layer = i // (models // 3)  # three layers: raw -> 0 -> 1 -> 2
        upstream = (
            "{{ source('raw', 'events') }}"
            if layer == 0
            else f"{{{{ ref('inc_{i - models // 3}') }}}}"
        )
        body = (
            f"{{{{ config(materialized='incremental', {STRATEGIES[i % len(STRATEGIES)]}) }}}}\n"
            f"select id, kind, ts, amount * {1 + i % 7} as amount, id % {3 + i % 5} as bucket\n"
            f"from {upstream}\nwhere id % {2 + i % 3} = 0 or kind = 'k{i % 10}'\n"
            "{% if is_incremental() %}\n  and ts > (select max(ts) from {{ this }})\n"
            "{% endif %}\n"
        )
        (project / "models" / f"inc_{i}.sql").write_text(body)
    cut = int(rows * 0.8)
    for name, lo, hi in ((FIRST, 0, cut), (NEW, cut, rows)):
        con = duckdb.connect(str(project / name))
        con.execute("create schema raw")
        con.execute(
            "create table raw.events as select i as id, 'k' || (i % 10) as kind, "
            "timestamp '2024-01-01' + to_seconds(i * 10) as ts, (i % 1000) / 10.0 as amount "
            f"from range({lo}, {hi}) t(i)"
        )
        con.close()


def fresh(project: Path) -> None:
    (project / (DB + ".wal")).unlink(missing_ok=True)
    shutil.copyfile(project / FIRST, project / DB)


def add_new_rows(project: Path) -> None:
    import duckdb

    con = duckdb.connect(str(project / DB))
    con.execute(f"attach '{project / NEW}' as new_rows (read_only)")
    con.execute("insert into raw.events select * from new_rows.raw.events")
    con.close()


def compiled(project: Path, tag: str) -> dict[str, str]:
    """dbt's compiled SQL of every model, for the database as it is now."""
    logs = project / LOG_DIR
    target = project / f"target_{tag}"
    cmd = [str(BIN / "dbt"), "compile", "--project-dir", str(project), "--profiles-dir"]
    _, _, code = run_command(
        [*cmd, str(project), "--target-path", str(target)],
        project,
        logs / f"compile-{tag}.log",
        3600,
    )
    if code != 0:
        raise SystemExit(f"dbt compile failed: {error_summary(logs / f'compile-{tag}.log')}")
    manifest = json.loads((target / "manifest.json").read_text())
    nodes = manifest["nodes"]
    order: list[str] = []
    seen: set[str] = set()

    def visit(uid: str) -> None:
        if uid in seen or uid not in nodes:
            return
        seen.add(uid)
        for dep in nodes[uid]["depends_on"]["nodes"]:
            visit(dep)
        order.append(uid)

    for uid in sorted(nodes):
        if nodes[uid]["resource_type"] == "model":
            visit(uid)
    return {nodes[u]["name"]: nodes[u]["compiled_code"] for u in order}


def floor(project: Path, sqls: dict[str, str], incremental: bool) -> tuple[float, float]:
    """Run the models' compiled SQL in one connection: (wall s, CPU s)."""
    import duckdb

    con = duckdb.connect(str(project / DB))
    cpu, start = time.process_time(), time.perf_counter()
    try:
        for i, (name, sql) in enumerate(sqls.items()):
            target = f'main."{name}"'
            if not incremental:
                con.execute(f"create table {target} as ({sql})")
                continue
            strategy = STRATEGIES[int(name.split("_")[1]) % len(STRATEGIES)]
            con.execute("begin")
            con.execute(f"create temporary table t{i} as ({sql})")
            if "merge" in strategy:
                con.execute(
                    f"merge into {target} as d using t{i} as s on (s.id = d.id) "
                    "when matched then update by name when not matched then insert by name"
                )
            else:
                if "['id', 'kind']" in strategy:
                    keys = f"t{i}.id = d.id and t{i}.kind = d.kind"
                    con.execute(f"delete from {target} as d using t{i} where {keys}")
                elif "unique_key" in strategy:
                    con.execute(f"delete from {target} where (id) in (select (id) from t{i})")
                con.execute(f"insert into {target} select * from t{i}")
            con.execute(f"drop table t{i}")
            con.execute("commit")
        con.execute("checkpoint")
    finally:
        con.close()
    return time.perf_counter() - start, time.process_time() - cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=60)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--projects-dir", type=Path, default=HERE / "projects")
    args = parser.parse_args(argv)
    project = args.projects_dir / f"incr_m{args.models}_r{args.rows}"
    generate(project, args.models, args.rows)
    dirs = ["--project-dir", str(project), "--profiles-dir", str(project)]
    logs = project / LOG_DIR
    # untimed: dbt's partial parse and the floor's SQL in both modes; sqlorch's caches in both
    fresh(project)
    full_sql = compiled(project, "full")
    run_command([str(BIN / "dbt"), "build", *dirs], project, logs / "warm-dbt.log", 3600)
    add_new_rows(project)
    incr_sql = compiled(project, "incr")
    fresh(project)
    for step in ("first", "incr"):
        clear_run_state(project)  # every model built (sqlorch does not watch raw.events)
        timed([str(BIN / "sqlorch"), "build", *dirs], project, logs / f"warm-s-{step}.log", {})
        add_new_rows(project)
    runs: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for rep in range(1, args.repeat + 1):
        for tool in TOOLS:
            fresh(project)
            for step in ("first", "incr"):
                if step == "incr":
                    add_new_rows(project)
                if tool == "floor":
                    got = floor(project, full_sql if step == "first" else incr_sql, step == "incr")
                else:
                    if tool == "sqlorch":
                        clear_run_state(project)  # every model built, caches kept
                    cmd = [str(BIN / tool), "build", *dirs]
                    wall, cpu, _mb = timed(cmd, project, logs / f"{tool}-{step}-{rep}.log", {})
                    got = (wall, cpu)
                runs.setdefault((tool, step), []).append(got)
                log(f"  rep {rep} {tool} {step}: {got[0]:.2f} s wall, {got[1]:.2f} s CPU")
    print(
        f"native incremental: {args.models} incremental models, {args.rows:,} raw rows "
        f"(80% first, 20% new), best of {args.repeat}, load {os.getloadavg()}"
    )
    for step in ("first", "incr"):
        best = {
            t: (min(w for w, _ in runs[(t, step)]), min(c for _, c in runs[(t, step)]))
            for t in TOOLS
        }
        for tool in TOOLS:
            w, c = best[tool]
            print(
                f"  {step:<5} {tool:<8} {w:8.2f} s wall {c:8.2f} s CPU"
                f"  wall/floor {w / best['floor'][0]:6.2f}x  CPU/floor {c / best['floor'][1]:6.2f}x"
                f"  wall/dbt {w / best['dbt'][0]:5.2f}x  CPU/dbt {c / best['dbt'][1]:5.2f}x"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
