"""sqlorch: an asset-based orchestrator for dbt and SQL analytics repos.

The public names: `asset` (declare a Python asset), `AssetContext` (what an asset receives),
`MaterializeResult` (data plus metadata), `check` / `CheckResult` / `CheckContext` (Python
checks of assets), and the error root `SqlorchError`.
"""

from sqlorch.assets import AssetContext, AssetDefinition, MaterializeResult, asset
from sqlorch.checks import CheckContext, CheckResult, check
from sqlorch.errors import SqlorchError

__all__ = [
    "AssetContext",
    "AssetDefinition",
    "CheckContext",
    "CheckResult",
    "MaterializeResult",
    "SqlorchError",
    "asset",
    "check",
]
__version__ = "0.1.0"
