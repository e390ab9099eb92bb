"""Time what observing the warehouse costs: a no-op build and `status`, two sqlorch trees.

    python benchmarks/run_observe.py --base /work/main [--head .] [--models 100] [--repeat 7]

Issue 18 makes a missing table (or an external model's deleted file) stale: the planner
reads which relations exist, and which files the views over files read, in ONE query of
DuckDB's catalog, remembered while the DuckDB file is unchanged. This script checks that
it stays cheap. For each project shape (the example project, and a synthetic project from
generate.py with `--models` models), each tree gets its own copy (the manifest cache is keyed
on sqlorch's own code, so the trees must not share one), built once (not timed); then, the
trees interleaved (A B A B ...) so background load hits them alike, best and median of
`--repeat`:

- noop:    `sqlorch build` right after a build (the warehouse observation comes from the memo);
- touched: `sqlorch build` after the DuckDB file's modification time changed (the memo is
           stale, so the catalog is queried: the cost of the query itself);
- status:  `sqlorch status`.

Prints wall and CPU seconds per tree, head/base ratios and the load average.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
EXAMPLE_PARTS = (
    "dbt_project.yml",
    "models",
    "seeds",
    "snapshots",
    "macros",
    "dbt_tests",
    "analyses",
    "ingest",
    "profiles",
    "pyproject.toml",
)


def run(tree: Path, project: Path, *args: str) -> tuple[float, float]:
    """Run `sqlorch ARGS` with `tree` on the path; return (wall, CPU) seconds."""
    env = {**os.environ, "PYTHONPATH": str(tree), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "sqlorch.cli", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{tree}: sqlorch {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def example_copy(dest: Path) -> Path:
    dest.mkdir(parents=True)
    for part in EXAMPLE_PARTS:
        src = REPO / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / part)
    return dest


def synthetic_copy(dest: Path, models: int) -> Path:
    sys.path.insert(0, str(HERE))
    from generate import generate

    generate(dest, models, 200_000, 30, 0)
    return dest


def db_file(project: Path) -> Path:
    found = sorted(project.glob("*.duckdb"))
    assert found, f"no DuckDB file in {project}"
    return found[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", type=Path, required=True, help="the sqlorch tree to compare to")
    ap.add_argument("--head", type=Path, default=REPO)
    ap.add_argument("--models", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--work", type=Path, default=HERE / "projects" / "observe")
    args = ap.parse_args()
    trees = {"base": args.base.resolve(), "head": args.head.resolve()}
    shutil.rmtree(args.work, ignore_errors=True)
    for shape in ("example", f"synthetic_{args.models}"):
        projects = {}
        for name, tree in trees.items():
            dest = args.work / shape / name
            if shape == "example":
                projects[name] = example_copy(dest)
            else:
                projects[name] = synthetic_copy(dest, args.models)
            run(tree, projects[name], "build")  # not timed
            run(tree, projects[name], "build")  # the memo now describes the built file
        times: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for _ in range(args.repeat):
            for name, tree in trees.items():
                project = projects[name]
                times.setdefault((name, "noop"), []).append(run(tree, project, "build"))
                db = db_file(project)
                now = time.time()
                os.utime(db, (now, now))
                times.setdefault((name, "touched"), []).append(run(tree, project, "build"))
                times.setdefault((name, "status"), []).append(run(tree, project, "status"))
        print(f"\n{shape}: best / median of {args.repeat}, wall (CPU) seconds")
        for what in ("noop", "touched", "status"):
            cells = []
            for name in trees:
                walls = [w for w, _ in times[(name, what)]]
                cpus = [c for _, c in times[(name, what)]]
                cells.append(
                    f"{name} {min(walls):.3f} / {statistics.median(walls):.3f} ({min(cpus):.3f})"
                )
            base = min(w for w, _ in times[("base", what)])
            head = min(w for w, _ in times[("head", what)])
            print(f"  {what:<8} " + "   ".join(cells) + f"   head/base {head / base:.2f}x")
    print(f"\nload average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
