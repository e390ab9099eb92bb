"""`sqlorch ui` is an extra: the CLI loads no web framework, and the UI loads no dbt or DuckDB."""

from __future__ import annotations

import subprocess
import sys

WEB = ("starlette", "uvicorn", "igraph", "anyio", "multipart", "jinja2", "httpx")
HEAVY = ("dbt", "duckdb", "pyarrow", "sqlglot", "pandas", "agate")


def imported_by(code: str) -> set[str]:
    """Run `code` in a fresh interpreter; return the top-level modules it imported."""
    done = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print(' '.join(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return {m.split(".")[0] for m in done.stdout.split()}


def test_import_sqlorch_cli_loads_no_web_framework() -> None:
    modules = imported_by("import sqlorch.cli\nfrom sqlorch.cli import COMMANDS\nCOMMANDS['ui']")
    assert sorted(m for m in modules if m in WEB) == []


def test_the_web_app_loads_neither_dbt_nor_duckdb() -> None:
    modules = imported_by("import sqlorch.web.server, sqlorch.cli.ui")
    assert "starlette" in modules
    assert sorted(m for m in modules if m in HEAVY or m.startswith("dbt")) == []
