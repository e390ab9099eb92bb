"""The error hierarchy: every failure sqlorch reports is a `SqlorchError`."""

from __future__ import annotations

from typing import Any


class SqlorchError(Exception):
    """Root of every error sqlorch raises on purpose.

    The message is a complete paragraph for a person: what happened, where (asset, file:line)
    and what to do. `exit_code` is what the CLI exits with (2 usage/configuration, 1 run time).
    """

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        asset: str | None = None,
        file: str | None = None,
        line: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.asset = asset
        self.file = file
        self.line = line

    def __str__(self) -> str:
        return self.message


class ConfigError(SqlorchError):
    """Settings, profiles or project layout are wrong; nothing ran."""

    exit_code = 2


class SelectionError(SqlorchError):
    """A `--select` / `--exclude` expression is malformed or matches nothing."""

    exit_code = 2


class GraphError(SqlorchError):
    """The asset graph is inconsistent: a cycle, a duplicate key, an unknown dependency."""

    exit_code = 2


class PartitionError(SqlorchError):
    """A partition definition, key or range is invalid (nothing ran)."""

    exit_code = 2


class ProjectError(SqlorchError):
    """The dbt project or an ingest module could not be loaded (compile error, missing ref)."""

    exit_code = 2


class AssetError(SqlorchError):
    """A Python asset failed while running or returned something sqlorch cannot write."""

    exit_code = 1


class AuditError(AssetError):
    """A blocking check failed on an asset's new data; the write was rolled back, nothing changed.

    `outcomes` holds the checks' results, (check unique id, outcome) pairs, to record.
    """

    def __init__(self, message: str, *, asset: str | None = None, outcomes: Any = ()) -> None:
        super().__init__(message, asset=asset)
        self.outcomes = list(outcomes)


class WarehouseError(SqlorchError):
    """The warehouse refused a write or a query."""

    exit_code = 1


class StateError(SqlorchError):
    """The state store is unreadable or of a newer schema than this sqlorch knows."""

    exit_code = 2


class LeaseHeldError(StateError):
    """Another build holds an asset this one would write (`holder` names it)."""

    def __init__(self, message: str, *, asset: str, holder: str) -> None:
        super().__init__(message, asset=asset)
        self.holder = holder
