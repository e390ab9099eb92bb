"""Which Spark tables exist, read from the warehouse directory without starting Spark.

Opening a SparkSession starts a JVM (10-20 s) and locks an embedded Derby metastore, too much
for `sqlorch status`. A managed table of a local session (what dbt-spark and sqlorch create
unless told `location_root`) is the directory `<warehouse>/<schema>.db/<name>` (the `default`
database: `<warehouse>/<name>`), created with the table and deleted by `DROP TABLE`: its
presence is a `stat`. Views live only in the metastore, and tables elsewhere (an external
location, a cluster's warehouse) cannot be seen from here: those are reported as not observed,
never as present.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from sqlorch.core.graph import AssetKind, AssetNode
from sqlorch.warehouse.observe import WarehouseView

#: Spark's warehouse directory when `spark.sql.warehouse.dir` is not set (relative to the
#: process's working directory, as Spark resolves it)
DEFAULT_WAREHOUSE_DIR = "spark-warehouse"

#: dbt materializations that leave a managed table directory on Spark
_TABLE_MATERIALIZATIONS = frozenset({"table", "incremental", "seed", "snapshot"})


def warehouse_dir(options: Mapping[str, Any]) -> Path | None:
    """The local warehouse directory of a dbt-spark target (None: not a local session)."""
    if str(options.get("method") or "") != "session":
        return None
    params = options.get("server_side_parameters") or {}
    if not isinstance(params, Mapping):
        return None
    master = str(params.get("spark.master", "local[2]"))
    if not master.startswith("local"):
        return None
    return local_dir(str(params.get("spark.sql.warehouse.dir") or DEFAULT_WAREHOUSE_DIR))


def local_dir(location: str) -> Path | None:
    """The local directory of a Spark location (`/x`, `file:/x`; None: hdfs://, s3a://...)."""
    if not location:
        return None
    if location.startswith("file://"):
        location = location[len("file://") :]
    elif location.startswith("file:"):
        location = location[len("file:") :]
    elif ":" in location.split("/", 1)[0]:
        return None  # hdfs://, s3a://, ...
    return Path(location).expanduser().resolve()


def has_session(options: Mapping[str, Any]) -> bool:
    """Whether this process already runs the target's SparkSession (joining it starts nothing).

    A session of this process on another warehouse directory is not the target's: its
    catalog would not hold the target's tables.
    """
    import sys

    module = sys.modules.get("pyspark.sql.session")
    active = module.SparkSession.getActiveSession() if module is not None else None
    if active is None:
        return False
    wanted = warehouse_dir(options)
    return wanted is None or wanted == local_dir(str(active.conf.get("spark.sql.warehouse.dir")))


def table_dir(root: Path, key: str) -> Path:
    """Where a managed table `schema.name` keeps its files under the warehouse `root`."""
    schema, _, name = key.lower().partition(".")
    return root / name if schema == "default" else root / f"{schema}.db" / name


def observe_files(options: Mapping[str, Any], nodes: Iterable[AssetNode]) -> WarehouseView:
    """Observe the relations of `nodes` on a Spark target from its warehouse directory.

    Managed tables are present when their directory is; every other relation (views,
    tables with a `location_root`, any relation of a target that is not a local session)
    is in `unobserved` and counted as present, so nothing is called missing on a guess.
    """
    root = warehouse_dir(options)
    present: set[str] = set()
    unobserved: set[str] = set()
    for node in nodes:
        if not node.is_materializable or node.materialized == "ephemeral":
            continue
        key = node.key.lower()
        if root is None or not _managed_table(node):
            unobserved.add(key)
        elif table_dir(root, key).is_dir():
            present.add(key)
    return WarehouseView(frozenset(present | unobserved), unobserved=frozenset(unobserved))


def _managed_table(node: AssetNode) -> bool:
    """Whether `node` is written as a managed table (a directory of the warehouse)."""
    if node.kind is AssetKind.PYTHON:
        return True  # sqlorch writes Python assets with saveAsTable (managed)
    writes = node.metadata.get("sqlorch_write_config") or {}
    if writes.get("location_root"):
        return False
    if node.kind is AssetKind.SEED:
        return True
    return (node.materialized or "") in _TABLE_MATERIALIZATIONS


def footer_rows(root: Path | None, key: str) -> int | None:
    """The rows of the managed Parquet table `key` from its files' footers (no Spark job).

    Partitions are the table's `column=value` folders (a managed table's dropped partition
    loses its folder). None when anything else is found (another format, another folder),
    or no folder: count with Spark then. What Spark itself skips (`_SUCCESS`, `.crc` files,
    `.spark-staging-*` of an unfinished write) is skipped.
    """
    if root is None:
        return None
    import pyarrow.parquet as pq

    total = 0
    folders = [table_dir(root, key)]
    while folders:
        try:
            entries = list(os.scandir(folders.pop()))
        except OSError:
            return None
        for entry in entries:
            if entry.name.startswith(("_", ".")):
                continue
            if entry.is_dir():
                if "=" not in entry.name:
                    return None
                folders.append(Path(entry.path))
            elif not entry.name.endswith(".parquet"):
                return None
            else:
                try:
                    total += pq.read_metadata(entry.path).num_rows
                except (OSError, ValueError):
                    return None
    return total


def data_files(folder: Path) -> frozenset[str] | None:
    """The names of the data files in `folder` (None: no such folder).

    What Spark skips is skipped (`_SUCCESS`, `.crc`, `.spark-staging-*`).
    """
    try:
        return frozenset(
            e.name for e in os.scandir(folder) if e.is_file() and not e.name.startswith(("_", "."))
        )
    except OSError:
        return None
