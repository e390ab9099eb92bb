"""kill -9 during a Spark partition write, then `sqlorch build`: the ledger never lies.

A build of a daily partitioned asset (one Spark write per day) runs as its own process, with
its own Spark session and catalog; it is killed (SIGKILL, with its JVM) while Spark writes a
later day's partition. The ledger then holds only days whose Parquet files are complete, and
the next build finishes the job. The table's files are read with pyarrow, not Spark.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, clean_environ, run_cli, write_dbt_project
from spark_support import SPARK_PROFILE, has_java

pytestmark = pytest.mark.spark

ROWS = 300_000
DAYS = ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"]

BIG = f'''
import pyarrow as pa
import pyarrow.compute as pc

from sqlorch import AssetContext, asset, daily


@asset(schema="raw", partitions=daily(start="2024-01-01", end="2024-01-05", column="day"),
       max_partitions_per_run=1)
def big(context: AssetContext):
    """{ROWS:,} rows a day: long enough a Spark write to be killed in."""
    n = {ROWS}
    ids = pa.array(range(n), pa.int64())
    return pa.table({{
        "id": ids,
        "payload": pc.cast(pc.multiply(ids, 7), pa.string()),
        "day": pa.array([context.partition.start.date()] * n, pa.date32()),
    }})
'''


def _done(project: Path) -> list[list[str]]:
    result = run_cli(project, "partitions", "raw.big", "--json")
    assert result.exit_code == 0, result.describe()
    doc = json.loads(result.stdout)
    return list(doc.get("partitions", doc)["done"])


def _rows_on_disk(table_dir: Path, day: str) -> int:
    import pyarrow.dataset as ds

    folder = table_dir / f"day={day}"
    if not folder.is_dir():
        return 0
    return int(ds.dataset(folder, format="parquet").count_rows())


def _days(ranges: list[list[str]]) -> set[str]:
    return {d for lo, hi in ranges for d in DAYS if lo <= d <= hi}


def test_kill_9_during_a_partition_write_never_leaves_a_false_done(tmp_path: Path) -> None:
    if not has_java():
        pytest.skip("no Java runtime: Spark needs Java 17 (openjdk-17-jre-headless)")
    root = tmp_path / "spark"
    root.mkdir()
    project = write_dbt_project(
        tmp_path / "tiny",
        {
            "profiles.yml": SPARK_PROFILE.format(name="tiny", root=root.as_posix()),
            # one chunk at a time: the first day is written and recorded before the second
            "pyproject.toml": (
                '[tool.sqlorch]\ningest = ["ingest"]\nprofiles_dir = "."\nthreads = 1\n'
            ),
        },
        {"ingest/big.py": BIG},
    ).path
    table_dir = root / "warehouse" / "raw.db" / "big"
    env = clean_environ({"PYTHONPATH": str(REPO)})
    proc = subprocess.Popen(
        [sys.executable, "-m", "sqlorch.cli", "build", "--project-dir", str(project)],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its JVM too: the whole process group is killed
    )
    try:
        # wait for a later day's partition overwrite to be under way in Spark: a staging
        # folder other than the first day's, once the first day's partition is in place
        deadline = time.monotonic() + 600
        first: set[str] = set()
        while time.monotonic() < deadline and proc.poll() is None:
            staging = set()
            if table_dir.is_dir():
                staging = {p.name for p in table_dir.iterdir() if p.name.startswith(".spark-")}
            if not (table_dir / f"day={DAYS[0]}").is_dir():
                first |= staging
            elif staging - first:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the build ended before a partition write could be killed"
        assert time.monotonic() < deadline, "no partition write started within 10 minutes"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    time.sleep(1)  # the JVM's files are closed

    done = _days(_done(project))
    assert done, "the first day was written and recorded before the kill"
    assert done != set(DAYS), "the build was killed before its last day"
    for day in done:
        assert _rows_on_disk(table_dir, day) == ROWS, f"{day} is done in the ledger, not on disk"

    result = run_cli(project, "status", "--json")
    assert result.exit_code == 0, result.describe()
    big = next(s for s in json.loads(result.stdout) if s["key"] == "raw.big")
    assert big["stale"], big

    finish = subprocess.run(
        [sys.executable, "-m", "sqlorch.cli", "build", "--project-dir", str(project)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert finish.returncode == 0, finish.stdout + finish.stderr
    assert _days(_done(project)) == set(DAYS)
    for day in DAYS:
        assert _rows_on_disk(table_dir, day) == ROWS, day
