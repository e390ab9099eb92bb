"""Helpers of the Spark tests (the `spark_session` and `spark` fixtures are in tests/conftest.py).

sqlorch and dbt-spark's `session` method both join the active SparkSession of the process,
so every in-process `sqlorch build -t spark` in the tests runs on the one session of the
test session; its warehouse directory and Derby metastore live in a temp dir.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

from conftest import REPO, TinyProject, write_dbt_project

SPARK_PROFILE = """
{name}:
  target: spark
  outputs:
    spark:
      type: spark
      method: session
      host: localhost
      schema: main
      threads: 1
      server_side_parameters:
        spark.master: "local[2]"
        spark.sql.warehouse.dir: "{root}/warehouse"
        spark.hadoop.javax.jdo.option.ConnectionURL: >-
          jdbc:derby:;databaseName={root}/metastore_db;create=true
        spark.driver.extraJavaOptions: "-Dderby.system.home={root}"
        spark.ui.showConsoleProgress: "false"
        spark.sql.session.timeZone: UTC
"""


def session_params(root: Path) -> dict[str, str]:
    """The Spark settings of a session whose tables and catalog live under `root`."""
    return {
        "spark.master": "local[2]",
        "spark.driver.memory": "2g",
        "spark.sql.shuffle.partitions": "4",
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.warehouse.dir": str(root / "warehouse"),
        "spark.hadoop.javax.jdo.option.ConnectionURL": (
            f"jdbc:derby:;databaseName={root / 'metastore_db'};create=true"
        ),
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={root}",
    }


def has_java() -> bool:
    """True when a Java runtime is on PATH or in JAVA_HOME."""
    home = os.environ.get("JAVA_HOME")
    return shutil.which("java") is not None or bool(home and Path(home, "bin", "java").exists())


def spark_project(root: Path, files: dict[str, str], python: dict[str, str]) -> TinyProject:
    """A tiny project whose default target is Spark (in process: the shared session)."""
    base = root.parent / f"{root.name}-spark"
    base.mkdir(parents=True, exist_ok=True)
    profile = SPARK_PROFILE.format(name="tiny", root=base.as_posix())
    shared = _session_warehouse()
    if shared is not None:  # the test session's Spark holds the tables: say where they are
        profile = profile.replace(f"{base.as_posix()}/warehouse", shared)
    files = {
        "profiles.yml": profile,
        "macros/sqlorch.sql": (REPO / "sqlorch" / "dbt" / "macros" / "sqlorch.sql").read_text(),
        "macros/generate_schema_name.sql": (
            REPO / "macros" / "generate_schema_name.sql"
        ).read_text(),
        **files,
    }
    return write_dbt_project(root, files, python)


def _session_warehouse() -> str | None:
    """The warehouse directory of the process's SparkSession (None: none runs)."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is None:
        return None
    return str(active.conf.get("spark.sql.warehouse.dir")).removeprefix("file:")


def warehouse_path(spark: Any) -> Path:
    """The local warehouse directory of `spark`."""
    return Path(str(spark.conf.get("spark.sql.warehouse.dir")).removeprefix("file:"))


def table_rows(spark: Any, key: str) -> list[tuple[Any, ...]]:
    """Every row of `key`, sorted (by their text)."""
    return sorted((tuple(r) for r in spark.table(key).collect()), key=repr)


def content_hash(spark: Any, key: str) -> str:
    """A hash of a table's content: its schema and its rows in a canonical order."""
    h = hashlib.sha256(spark.table(key).schema.simpleString().encode())
    for row in table_rows(spark, key):
        h.update(repr(row).encode())
    return h.hexdigest()


def partitions(spark: Any, key: str) -> list[str]:
    """The partitions of `key` as Spark lists them (`day=2024-01-01`)."""
    return sorted(r[0] for r in spark.sql(f"SHOW PARTITIONS {key}").collect())
