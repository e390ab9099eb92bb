"""Column-level lineage with sqlglot: trace columns, find hidden dependencies, diff changes.

sqlglot is imported only inside the functions that parse SQL; importing this package is
cheap.
"""

from sqlorch.lineage.model import ColumnLineage, Edge, ModelLineage, Transform

__all__ = ["ColumnLineage", "Edge", "ModelLineage", "Transform"]
