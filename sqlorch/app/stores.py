"""The state-store use cases: bring a store to the current schema, copy SQLite into PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlorch.errors import ConfigError
from sqlorch.settings import Settings, is_postgres_url, mask_url
from sqlorch.state.migrations import MIGRATIONS


@dataclass(frozen=True, slots=True)
class MigrateResult:
    """Where the store is and its schema version after migrating."""

    location: str
    version: int


def migrate_store(settings: Settings) -> MigrateResult:
    """Create or upgrade the settings' state store to this sqlorch's schema version.

    Raises:
        StateError: the store cannot be opened, is newer, or is not sqlorch's.
    """
    from sqlorch.state.store import open_store

    open_store(settings).close()  # opening read-write applies the missing migrations
    return MigrateResult(settings.state_location, len(MIGRATIONS))


def copy_store(settings: Settings, source: str, dest: str) -> dict[str, int]:
    """Copy a SQLite store (`sqlite`: the project's file, or a path) into a PostgreSQL URL.

    Returns rows copied per table.

    Raises:
        ConfigError: the direction is not SQLite -> PostgreSQL.
        StateError: either store cannot be opened, or the target holds runs already.
    """
    from sqlorch.state.copy import copy_sqlite_to_postgres

    if is_postgres_url(source) or not is_postgres_url(dest):
        raise ConfigError(
            f"`sqlorch state copy` copies a SQLite store into PostgreSQL: --from sqlite (or a "
            f"path to a state.db) --to postgresql://... (got --from {mask_url(source)!r} --to "
            f"{mask_url(dest)!r})."
        )
    if source == "sqlite":
        path = settings.project_dir / ".sqlorch" / "state.db"
    else:
        path = Path(source.removeprefix("sqlite:///"))
        path = path if path.is_absolute() else (settings.project_dir / path).resolve()
    return copy_sqlite_to_postgres(path, dest).rows
