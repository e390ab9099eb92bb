"""sqlorch: an asset-based orchestrator for dbt and SQL analytics repos.

The public names: `asset` (declare a Python asset), `AssetContext` (what an asset receives),
`MaterializeResult` (data plus metadata), `check` / `CheckResult` / `CheckContext` (Python
checks of assets), `dlt_assets` (a dlt source's tables as assets), partitions (`hourly`,
`daily`, `weekly`, `monthly`, `static`, `multi`) and partition mappings (`window`,
`all_partitions`, `same`), and the error root `SqlorchError`.
checks of assets), partitions (`hourly`, `daily`, `weekly`, `monthly`, `static`, `multi`)
and partition mappings (`window`, `all_partitions`, `same`), automation (`eager`,
`on_cron`, `on_missing`, `max_lag`, `sensor`, `RunRequest`, `SensorResult`), and the error root
`SqlorchError`.
"""

from sqlorch.api.asset import (
    AssetContext,
    AssetDefinition,
    MaterializeResult,
    PartitionContext,
    asset,
)
from sqlorch.api.automation import (
    RunRequest,
    SensorContext,
    SensorResult,
    eager,
    max_lag,
    on_cron,
    on_missing,
    sensor,
)
from sqlorch.api.checks import CheckContext, CheckResult, check
from sqlorch.api.dlt import DltAssets, dlt_assets
from sqlorch.core.partitions.definitions import daily, hourly, monthly, multi, static, weekly
from sqlorch.core.partitions.mappings import all_partitions, same, window
from sqlorch.errors import PartitionError, SqlorchError

__all__ = [
    "AssetContext",
    "AssetDefinition",
    "CheckContext",
    "CheckResult",
    "DltAssets",
    "MaterializeResult",
    "PartitionContext",
    "PartitionError",
    "RunRequest",
    "SensorContext",
    "SensorResult",
    "SqlorchError",
    "all_partitions",
    "asset",
    "check",
    "daily",
    "dlt_assets",
    "eager",
    "hourly",
    "max_lag",
    "monthly",
    "multi",
    "on_cron",
    "on_missing",
    "same",
    "sensor",
    "static",
    "weekly",
    "window",
]
__version__ = "0.1.0"
