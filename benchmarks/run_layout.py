"""Compare two checkouts of sqlorch on the commands whose speed is start-up: before/after a change.

    python benchmarks/run_layout.py --before DIR [--after DIR] [--models 1000] [--repeat 7]

A restructure must not make sqlorch slower to start. This script runs, in ONE run and
interleaved (before, after, before, after, ...) so background load hits both alike:

- noop:   `sqlorch build` with nothing stale (a manifest-cache hit: dbt is not imported);
- status: `sqlorch status`;
- help:   `sqlorch --help`;
- import: `python -c "import sqlorch.cli"`,

each with PYTHONPATH pointing at one checkout (the venv's editable install is overridden), on
two shapes of project: the synthetic dbt project of benchmarks/generate.py (`--models`
models, no Python assets) and the example NYC flights project of this repository (Python
assets, partitions, seeds, snapshots, checks). Each checkout gets its own copy of each
project, since the manifest cache is keyed by sqlorch's own code and would otherwise be
invalidated by every switch. Processes cache bytecode, as on a user's machine.

It prints, per shape and command, the median and best wall seconds of each checkout and the
after/before ratios of wall and CPU time (median), with the load average before and after.
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

from run_build import HERE, ensure_project, fresh_database, log

REPO = HERE.parent
BIN = Path(sys.executable).parent
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
COMMANDS: dict[str, list[str]] = {
    "noop": [str(BIN / "sqlorch"), "build"],
    "status": [str(BIN / "sqlorch"), "status"],
    "help": [str(BIN / "sqlorch"), "--help"],
    "import": [sys.executable, "-c", "import sqlorch.cli"],
}


def env_for(tree: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(PYTHONPATH=str(tree), NO_COLOR="1", DBT_SEND_ANONYMOUS_USAGE_STATS="false")
    return env


def run(cmd: list[str], cwd: Path, tree: Path) -> tuple[float, float, str]:
    """Run `cmd`; return (wall seconds, CPU seconds, output). A failure stops the benchmark."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env_for(tree), capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} in {cwd} ({tree}) failed:\n{proc.stdout}{proc.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.stdout + proc.stderr


def synthetic(work: Path, models: int) -> Path:
    project = ensure_project(HERE / "projects", models, 100_000, 30, 0)
    fresh_database(project)
    copy = work / "synthetic"
    shutil.copytree(project, copy, ignore=shutil.ignore_patterns(".sqlorch", "target", "logs"))
    return copy


def example(work: Path) -> Path:
    copy = work / "example"
    copy.mkdir()
    for part in EXAMPLE_PARTS:
        src = REPO / part
        if src.is_dir():
            shutil.copytree(src, copy / part)
        else:
            shutil.copy(src, copy / part)
    return copy


def measure(shape: str, project: Path, trees: dict[str, Path], repeat: int) -> None:
    copies = {}
    for name, tree in trees.items():
        copies[name] = project.with_name(f"{project.name}-{name}")
        shutil.copytree(project, copies[name])
        log(f"{shape}/{name}: setup build (not timed)")
        run(COMMANDS["noop"], copies[name], tree)
        _, _, out = run(COMMANDS["noop"], copies[name], tree)
        log(f"{shape}/{name}: second build says: {out.strip().splitlines()[-1]}")
    walls: dict[tuple[str, str], list[float]] = {}
    cpus: dict[tuple[str, str], list[float]] = {}
    for _ in range(repeat):
        for command, cmd in COMMANDS.items():
            for name, tree in trees.items():
                wall, cpu, _ = run(cmd, copies[name], tree)
                walls.setdefault((command, name), []).append(wall)
                cpus.setdefault((command, name), []).append(cpu)
    print(f"\n{shape}: median (best) wall seconds of {repeat}, ratios after/before (median)")
    print(f"  {'command':<8} {'before':>16} {'after':>16} {'wall':>7} {'cpu':>7}")
    for command in COMMANDS:
        b, a = walls[(command, "before")], walls[(command, "after")]
        cb, ca = cpus[(command, "before")], cpus[(command, "after")]
        wall_ratio = statistics.median(a) / statistics.median(b)
        cpu_ratio = statistics.median(ca) / statistics.median(cb)
        print(
            f"  {command:<8} {statistics.median(b):7.3f} ({min(b):6.3f})"
            f" {statistics.median(a):7.3f} ({min(a):6.3f}) {wall_ratio:6.2f}x {cpu_ratio:6.2f}x"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", type=Path, required=True, help="checkout before the change")
    ap.add_argument("--after", type=Path, default=REPO, help="checkout after (default: this one)")
    ap.add_argument("--models", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    for tree in trees.values():
        if not (tree / "sqlorch").is_dir():
            raise SystemExit(f"{tree} is not a sqlorch checkout (no sqlorch/ folder)")
    print(f"load average at start: {os.getloadavg()}")
    work = HERE / "out" / "layout"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    measure(f"synthetic, {args.models} models", synthetic(work, args.models), trees, args.repeat)
    measure("example (NYC flights)", example(work), trees, args.repeat)
    print(f"\nload average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
