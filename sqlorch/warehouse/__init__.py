"""Warehouses sqlorch writes Python assets' output to."""

from sqlorch.warehouse.base import Warehouse, WriteMode

__all__ = ["Warehouse", "WriteMode"]
