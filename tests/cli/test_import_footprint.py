"""`import sqlorch.cli` stays light: heavy modules load inside the commands that need them.

Each check runs in a fresh interpreter, so what the test process already imported does
not count.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HEAVY = ("dbt", "duckdb", "pyarrow", "sqlglot", "pandas", "polars", "agate")


def imported_after(code: str, cwd: Path | None = None) -> set[str]:
    """Run `code` in a fresh interpreter and return the top-level modules it imported."""
    script = textwrap.dedent(code) + textwrap.dedent(
        """
        import json as _json, sys as _sys
        print("\\n" + _json.dumps(sorted({m.split(".")[0] for m in _sys.modules})))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m in HEAVY or m.startswith("dbt"))


def test_import_sqlorch_cli_loads_no_heavy_module() -> None:
    assert heavy(imported_after("import sqlorch.cli")) == []


def test_import_sqlorch_loads_no_heavy_module() -> None:
    # the public API that ingest modules import (`from sqlorch import asset`)
    assert heavy(imported_after("import sqlorch\nfrom sqlorch import asset, AssetContext")) == []


def test_importtime_of_sqlorch_cli_names_no_heavy_module() -> None:
    """The same, read from `python -X importtime` as a second opinion."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import sqlorch.cli"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    names = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            names.add(name.split(".")[0])
    assert "sqlorch" in names, "importtime output not understood"
    assert heavy(names) == []


def test_help_loads_no_heavy_module() -> None:
    modules = imported_after(
        """
        import sys
        from sqlorch.cli import cli
        try:
            cli(["--help"], prog_name="sqlorch")
        except SystemExit as exc:
            assert exc.code == 0, exc.code
        for command in ("build", "ls", "status", "runs", "logs", "lineage", "diff"):
            try:
                cli([command, "--help"], prog_name="sqlorch")
            except SystemExit as exc:
                assert exc.code == 0, (command, exc.code)
        """
    )
    assert heavy(modules) == []


@pytest.mark.parametrize("command", [["runs", "--json"], ["logs", "--json"]])
def test_state_commands_do_not_import_dbt(command: list[str], tmp_path: Path) -> None:
    """`runs` and `logs` read the state store only: no dbt, no warehouse."""
    (tmp_path / "dbt_project.yml").write_text("name: p\nversion: '1'\nconfig-version: 2\n")
    modules = imported_after(
        f"""
        from sqlorch.cli import cli
        try:
            cli({[*command, "--project-dir", str(tmp_path)]!r}, prog_name="sqlorch")
        except SystemExit as exc:
            assert exc.code in (0, 2), exc.code
        """,
        cwd=tmp_path,
    )
    assert heavy(modules) == []


def test_console_script_runs() -> None:
    script = Path(sys.executable).with_name("sqlorch")
    if not script.exists():
        pytest.skip("no `sqlorch` console script next to the interpreter")
    done = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr
    for command in ("build", "ls", "status", "runs", "logs"):
        assert command in done.stdout
