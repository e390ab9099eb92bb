"""Time what "build only what changed" costs on a synthetic 1000-model project.

    python benchmarks/run_changes.py [--models 1000] [--repeat 5] [--json]

After one full `sqlorch build` (not timed), each measure is the best of `--repeat`, the
competing commands interleaved so background load hits them alike:

- no-op:  `sqlorch build` with nothing stale (right after a build), against `dbt parse`
          with a warm partial parse (the least any dbt command costs on this project) and
          the interpreter floor
          (`python -c pass`);
- status: `sqlorch status` (reasons for all 1000 models);
- help:   `sqlorch --help`;
- leaf:   one leaf model edited (a new column each repetition), then `sqlorch build` (which
          must rebuild exactly that model and its checks, verified) against a similarly edited
          model built with `dbt build -s that_model` and against the floor: the model's
          compiled SQL as one `CREATE OR REPLACE` in DuckDB.

Targets (issue 4): no-op under 0.5 s and at least 10x faster than `dbt parse` warm; status
under 0.5 s; --help under 0.2 s; the leaf edit at most 1.5x `dbt build -s that_model`.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from generate import DB_FILE
from run_build import (
    BIN,
    HERE,
    ensure_project,
    fresh_database,
    log,
    run_command,
)

TARGETS = {
    "noop_s": 0.5,
    "noop_vs_dbt_parse": 10.0,
    "status_s": 0.5,
    "help_s": 0.2,
    "leaf_vs_dbt": 1.5,
}


def sqlorch(*args: str) -> list[str]:
    return [str(BIN / "sqlorch"), *args]


def dbt(*args: str) -> list[str]:
    return [str(BIN / "dbt"), *args]


def timed(project: Path, cmd: list[str], name: str) -> float:
    wall, _cpu, code = run_command(cmd, project, project / "bench_logs" / f"{name}.log", 900)
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({code}); see bench_logs/{name}.log")
    return wall


def leaves(project: Path) -> list[tuple[str, Path]]:
    """(model name, file) of tables no other model reads, from `sqlorch ls --json`."""
    out = subprocess.run(
        sqlorch("ls", "--json"), cwd=project, capture_output=True, text=True, check=True
    ).stdout
    assets = json.loads(out)
    used = {d for a in assets for d in a["deps"]}
    found = []
    for a in assets:
        if a["kind"] == "model" and a["key"] not in used and a["materialized"] == "table":
            found.append((a["key"].split(".", 1)[1], project / a["file"]))
    return sorted(found)


def edit(path: Path, n: int) -> None:
    """Add (or change) a constant column `bench_edit` in a model's final select."""
    text = re.sub(r",\s*\d+ as bench_edit\b", "", path.read_text())
    head, sep, tail = text.rpartition("from")
    path.write_text(f"{head.rstrip()}, {n} as bench_edit\n{sep}{tail}")


def floor_model(project: Path, name: str) -> float:
    """Run the model's compiled SQL (from dbt's last build) in DuckDB; return seconds."""
    import duckdb

    compiled = next((project / "target" / "compiled").rglob(f"{name}.sql"))
    sql = compiled.read_text().strip().rstrip(";")
    con = duckdb.connect(str(project / DB_FILE))
    try:
        start = time.perf_counter()
        con.execute(f'CREATE OR REPLACE TABLE main."{name}" AS\n{sql}')
        con.execute("CHECKPOINT")
        return time.perf_counter() - start
    finally:
        con.close()


def last_run(project: Path) -> dict[str, Any]:
    out = subprocess.run(
        sqlorch("runs", "--json", "-n", "1"), cwd=project, capture_output=True, text=True
    ).stdout
    return json.loads(out)[0]  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", type=int, default=1000)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    project = ensure_project(HERE / "projects", args.models, args.rows, args.days, args.seed)
    fresh_database(project)
    log("setup: one full sqlorch build (not timed) and a warm dbt parse")
    timed(project, sqlorch("build", "--full"), "setup_build")
    timed(project, dbt("parse", "--profiles-dir", "."), "setup_parse")
    timed(project, sqlorch("build"), "setup_noop")

    found = leaves(project)
    ours, theirs = found[0], found[1]
    log(f"leaf models: {ours[0]} (sqlorch), {theirs[0]} (dbt)")
    originals = {p: p.read_text() for _, p in (ours, theirs)}
    timed(project, dbt("build", "--profiles-dir", ".", "-s", theirs[0]), "setup_dbt_leaf")
    timed(project, sqlorch("build"), "setup_noop_again")

    best: dict[str, float] = {}

    def keep(name: str, seconds: float) -> None:
        best[name] = min(best.get(name, float("inf")), seconds)

    try:
        for rep in range(args.repeat):
            log(f"repetition {rep + 1}/{args.repeat}")
            keep("python_floor", timed(project, [sys.executable, "-c", "pass"], "floor"))
            keep("noop", timed(project, sqlorch("build"), "noop"))
            run = last_run(project)
            keep("dbt_parse", timed(project, dbt("parse", "--profiles-dir", "."), "dbt_parse"))
            keep("status", timed(project, sqlorch("status"), "status"))
            keep("help", timed(project, sqlorch("--help"), "help"))
            edit(ours[1], rep + 1)
            keep("leaf_sqlorch", timed(project, sqlorch("build"), "leaf_sqlorch"))
            after = last_run(project)
            if after["run_id"] == run["run_id"] or after["assets"] != {
                "succeeded": 1,
                "failed": 0,
                "skipped": 0,
            }:
                raise SystemExit(f"the leaf edit did not rebuild exactly one model: {after}")
            edit(theirs[1], rep + 1)
            keep(
                "leaf_dbt",
                timed(project, dbt("build", "--profiles-dir", ".", "-s", theirs[0]), "leaf_dbt"),
            )
            keep("leaf_floor", floor_model(project, theirs[0]))
            # not timed: sqlorch catches up with dbt's edit, so the next no-op is one
            timed(project, sqlorch("build"), "catch_up")
    finally:
        for path, text in originals.items():
            path.write_text(text)

    ratios = {
        "noop_s": best["noop"],
        "noop_vs_dbt_parse": best["dbt_parse"] / best["noop"],
        "status_s": best["status"],
        "help_s": best["help"],
        "leaf_vs_dbt": best["leaf_sqlorch"] / best["leaf_dbt"],
        "leaf_vs_floor": best["leaf_sqlorch"] / best["leaf_floor"],
        "noop_vs_python_floor": best["noop"] / best["python_floor"],
    }
    verdict = {
        name: (ratios[name] >= want if name == "noop_vs_dbt_parse" else ratios[name] <= want)
        for name, want in TARGETS.items()
    }
    if args.json:
        print(json.dumps({"seconds": best, "ratios": ratios, "pass": verdict}, indent=2))
        return
    print(f"{args.models} models, best of {args.repeat} (seconds)")
    for name, value in best.items():
        print(f"  {name:<14} {value:8.3f}")
    print("ratios / targets")
    for name, value in ratios.items():
        target = TARGETS.get(name)
        mark = "" if target is None else ("PASS" if verdict[name] else "FAIL")
        sign = ">=" if name.endswith("parse") else "<="
        want = "" if target is None else f"(target {sign} {target})"
        print(f"  {name:<22} {value:8.2f} {want} {mark}")


if __name__ == "__main__":
    main()
