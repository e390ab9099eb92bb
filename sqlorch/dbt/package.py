"""The dbt macros sqlorch provides, written into a project by `sqlorch macros`.

A partitioned model reads its window from the vars sqlorch passes; `sqlorch_window(column)`
renders the filter. The file is copied into the project's first macro path (rather than
referenced from site-packages) so the project still parses on any machine and in CI.
"""

from __future__ import annotations

from pathlib import Path

from sqlorch.errors import ConfigError

_SOURCE = Path(__file__).with_name("macros") / "sqlorch.sql"
_MARK = "Written by `sqlorch macros`"


def macros_text() -> str:
    """The macros file as sqlorch ships it."""
    return _SOURCE.read_text()


def macro_dir(project_dir: Path) -> Path:
    """The project's first macro path (dbt_project.yml `macro-paths`, default `macros`).

    Raises:
        ConfigError: dbt_project.yml cannot be read.
    """
    import yaml

    path = project_dir / "dbt_project.yml"
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"Could not read {path}: {exc}. Fix the file and run again.") from exc
    paths = (doc.get("macro-paths") if isinstance(doc, dict) else None) or ["macros"]
    return project_dir / str(paths[0])


def install_macros(project_dir: Path) -> tuple[Path, bool]:
    """Write macros/sqlorch.sql; return (path, whether it changed).

    Raises:
        ConfigError: a sqlorch.sql that sqlorch did not write is in the way.
    """
    path = macro_dir(project_dir) / "sqlorch.sql"
    text = macros_text()
    if path.exists():
        old = path.read_text()
        if old == text:
            return path, False
        if _MARK not in old:
            raise ConfigError(
                f"{path} exists and was not written by sqlorch; nothing was changed. Move it "
                "away (or rename it), or copy the macros from `sqlorch macros --print` into "
                "a file of your own."
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path, True
