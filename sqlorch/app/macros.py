"""sqlorch's dbt macros in the user's project (`sqlorch macros`)."""

from __future__ import annotations

from pathlib import Path

from sqlorch.settings import Settings


def macros_text() -> str:
    """Return the macros file as sqlorch ships it."""
    from sqlorch.dbt.package import macros_text as shipped

    return shipped()


def write_macros(settings: Settings) -> tuple[Path, bool]:
    """Write macros/sqlorch.sql into the project; return (path, whether it changed).

    Raises:
        ConfigError: the file cannot be written.
    """
    from sqlorch.dbt.package import install_macros

    return install_macros(settings.project_dir)
