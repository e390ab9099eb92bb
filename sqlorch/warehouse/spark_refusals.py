"""What plain Spark tables cannot do, said before anything runs (dbt-spark's limits)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from sqlorch.core.graph import AssetKind, AssetNode
from sqlorch.errors import ConfigError

#: table formats that give Spark MERGE, DELETE and snapshots (their jars are not in pyspark)
_TRANSACTIONAL = ("delta", "iceberg", "hudi")


def refuse_method(name: str, profile: str, profiles_file: Path, options: Mapping[str, Any]) -> None:
    """Refuse a dbt-spark target whose `method` is not `session`, before dbt parses anything.

    sqlorch writes Python assets and reads the catalog through a SparkSession in its own
    process, which dbt-spark shares only with `method: session`; a Thrift, HTTP or ODBC
    target runs dbt's SQL on a server sqlorch cannot join (dbt's own parse would fail first
    on a missing driver, PyHive or pyodbc, and say nothing of this).

    Raises:
        ConfigError: the method is not `session`.
    """
    method = str(options.get("method") or "")
    if method == "session":
        return
    raise ConfigError(
        f"Target {name!r} of profile {profile!r} ({profiles_file}) is a dbt-spark target with "
        f"`method: {method or '(none)'}`; nothing was run. sqlorch runs Spark through a "
        "SparkSession in its own process (Python assets are written from Arrow through it, "
        "and dbt-spark joins it), which dbt-spark shares only with `method: session`. Set "
        "`method: session` on the target (pyspark reaches a cluster through `spark.master` "
        "in its server_side_parameters), or run this target with plain dbt."
    )


def unsupported(nodes: Iterable[AssetNode]) -> list[str]:
    """Why each of `nodes` cannot be built on plain Spark tables (one sentence per node).

    Plain (Parquet) Spark tables have no MERGE, DELETE or UPDATE: dbt-spark's `merge`
    strategy and snapshots need Delta, Iceberg or Hudi; `delete+insert` does not exist there;
    and a partitioned model must be written partition by partition (`partition_by` on its
    partition column), or an overwrite would replace the whole table by one window.
    """
    out: list[str] = []
    for node in nodes:
        if not node.kind.is_dbt:
            continue
        config = node.metadata.get("sqlorch_write_config") or {}
        fmt = str(config.get("file_format") or "parquet").lower()
        strategy = str(config.get("incremental_strategy") or "append").lower()
        where = f"dbt {node.kind.value} {node.name!r} ({node.file or node.key})"
        if fmt in _TRANSACTIONAL:
            continue  # dbt-spark handles it (the table format's jars must be on the cluster)
        if node.kind is AssetKind.SNAPSHOT:
            out.append(
                f"{where} is a snapshot, which dbt-spark builds only on Delta, Iceberg or Hudi "
                "tables (file_format), not plain Parquet tables. Set its file_format to one of "
                "them on a cluster that has the format, or disable it on this target: "
                "`+enabled: \"{{ target.type != 'spark' }}\"`."
            )
            continue
        if node.materialized != "incremental":
            continue
        if strategy == "merge":
            out.append(
                f"{where} uses incremental_strategy='merge', which needs Delta, Iceberg or Hudi "
                f"tables (file_format is {fmt!r}). Use 'insert_overwrite' with partition_by "
                "(partitions replaced whole), or 'append'; or set file_format to delta/iceberg "
                "on a cluster that has it."
            )
        elif strategy not in ("append", "insert_overwrite", "microbatch"):
            out.append(
                f"{where} uses incremental_strategy={strategy!r}, which dbt-spark does not "
                "have. Use 'insert_overwrite' with partition_by (each partition replaced whole) "
                "or 'append'."
            )
        elif node.partitions is not None and strategy != "microbatch":
            wanted = [c.lower() for c in node.partitions.columns]
            given = config.get("partition_by") or []
            have = {str(c).lower() for c in ([given] if isinstance(given, str) else given)}
            lacking = [c for c in wanted if c not in have]
            if lacking or not wanted:
                out.append(
                    f"{where} is partitioned by sqlorch but its table is not partitioned by "
                    f"{', '.join(lacking) or 'a partition column'}: on Spark every window "
                    f"write would overwrite the whole table. Add partition_by="
                    f"{(lacking or ['<column>'])!r} to its config (with "
                    "incremental_strategy='insert_overwrite'), and `column:` to its partitions."
                )
    return out
