"""The import rule of DESIGN.md §3, as import-linter contracts in pyproject.toml.

`test_contracts_are_kept` runs the contracts on the package; the other tests break them on
purpose in a copy of the package and check that the contracts say so. Adding a case is
adding a row to `BREAKS`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import sqlorch

PACKAGE = Path(sqlorch.__file__).parent
ROOT = PACKAGE.parent
LINT = "from importlinter.cli import lint_imports_command; lint_imports_command()"


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """Run `lint-imports` on the package and pyproject.toml under `root`."""
    return subprocess.run(
        [sys.executable, "-c", LINT, "--no-cache", "--no-logo", str(root / "pyproject.toml")],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_contracts_are_kept() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_nothing_inside_the_package_imports_the_facade() -> None:
    """`from sqlorch import ...` inside sqlorch would hide an upward import from the layers."""
    import grimp

    graph = grimp.build_graph("sqlorch")
    assert graph.find_modules_that_directly_import("sqlorch") == set()


def cycles(graph: Any) -> list[tuple[str, ...]]:
    """Return one chain per direct import that leads back to its importer (a circle)."""
    found = []
    for module in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            back = graph.find_shortest_chain(importer=imported, imported=module)
            if back:
                found.append((module, *back))
    return found


def test_no_circle_between_any_two_modules() -> None:
    """Also a package and its own modules (the contracts compare siblings only)."""
    import grimp

    assert cycles(grimp.build_graph("sqlorch")) == []


def test_a_circle_through_a_package_is_found() -> None:
    import grimp

    graph = grimp.ImportGraph()
    graph.add_import(importer="pkg.room", imported="pkg.room.part", line_number=1, line_contents="")
    graph.add_import(importer="pkg.room.part", imported="pkg.room", line_number=1, line_contents="")
    assert ("pkg.room", "pkg.room.part", "pkg.room") in cycles(graph)


@dataclass(frozen=True, slots=True)
class Break:
    """Imports added to a copy of the package, and what the contracts must report."""

    id: str
    additions: tuple[tuple[str, str], ...]  # (file under sqlorch/, code appended to it)
    expected: tuple[str, ...]  # fragments of lint-imports' report


def in_function(target: str, name: str = "_broken") -> str:
    """Return code that imports `target` inside a function."""
    return f"\n\ndef {name}() -> None:\n    import {target}  # noqa\n"


def under_type_checking(target: str) -> str:
    """Return code that imports `target` under TYPE_CHECKING."""
    return f"\nimport typing\n\nif typing.TYPE_CHECKING:\n    import {target}  # noqa\n"


BREAKS = [
    Break(
        "core imports cli inside a function",
        (("core/graph.py", in_function("sqlorch.cli")),),
        ("sqlorch.core is not allowed to import sqlorch.cli", "sqlorch.core.graph -> sqlorch.cli"),
    ),
    Break(
        "events imports state under TYPE_CHECKING",
        (("events.py", under_type_checking("sqlorch.state.ledger")),),
        ("sqlorch.events is not allowed to import sqlorch.state",),
    ),
    Break(
        "lineage imports its sibling load",
        (("lineage/trace.py", in_function("sqlorch.load.project")),),
        ("sqlorch.lineage is not allowed to import sqlorch.load",),
    ),
    Break(
        "dbt imports its sibling warehouse",
        (("dbt/profiles.py", in_function("sqlorch.warehouse.duckdb")),),
        ("sqlorch.dbt is not allowed to import sqlorch.warehouse",),
    ),
    Break(
        "app imports cli",
        (("app/history.py", in_function("sqlorch.cli.render")),),
        ("sqlorch.app is not allowed to import sqlorch.cli",),
    ),
    Break(
        "a circle between two modules of one room",
        (
            ("state/migrations.py", in_function("sqlorch.state.ledger")),
            ("state/ledger.py", in_function("sqlorch.state.migrations")),
        ),
        ("No cycles are allowed in sqlorch.state",),
    ),
]


def copy_package(tmp_path: Path) -> Path:
    """Copy sqlorch/ and pyproject.toml into `tmp_path`; return the copy's root."""
    shutil.copytree(PACKAGE, tmp_path / "sqlorch", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_an_untouched_copy_keeps_the_contracts(tmp_path: Path) -> None:
    result = lint_imports(copy_package(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("case", BREAKS, ids=[b.id for b in BREAKS])
def test_a_broken_rule_fails_the_contracts(tmp_path: Path, case: Break) -> None:
    root = copy_package(tmp_path)
    for module, code in case.additions:
        path = root / "sqlorch" / module
        assert path.exists(), path
        path.write_text(path.read_text() + code)
    result = lint_imports(root)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "BROKEN" in result.stdout
    for fragment in case.expected:
        assert fragment in result.stdout, result.stdout
