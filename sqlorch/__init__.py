"""sqlorch: an asset-based orchestrator for dbt and SQL analytics repos.

The public names: `asset` (declare a Python asset), `AssetContext` (what an asset receives),
`MaterializeResult` (data plus metadata), and the error root `SqlorchError`.
"""

from sqlorch.assets import AssetContext, AssetDefinition, MaterializeResult, asset
from sqlorch.errors import SqlorchError

__all__ = ["AssetContext", "AssetDefinition", "MaterializeResult", "SqlorchError", "asset"]
__version__ = "0.1.0"
