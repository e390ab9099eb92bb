"""`sqlorch history`, `logs` filters and the GitHub Actions output, on a tiny project."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import TinyProject, assert_clean_error, run_cli

from sqlorch.app.history import sparkline

pytestmark = pytest.mark.dbt

Make = Callable[..., TinyProject]

FILES = {
    "models/sources.yml": """
        version: 2
        sources:
          - name: raw
            schema: raw
            tables:
              - name: numbers
    """,
    "models/doubled.sql": (
        "{{ config(materialized='table') }}\n"
        "select n * 2 as d from {{ source('raw', 'numbers') }}\n"
    ),
    "models/after.sql": "{{ config(materialized='table') }}\nselect * from {{ ref('doubled') }}\n",
    "models/schema.yml": """
        version: 2
        models:
          - name: doubled
            columns:
              - name: d
                data_tests:
                  - accepted_values:
                      arguments:
                        values: [2, 4, 6, 8, 10, 12, 14, 16, 18, 20]
"""
    + "\n",
}
PYTHON = {
    "ingest/numbers.py": """
        from pathlib import Path

        import pyarrow as pa

        from sqlorch import asset

        HERE = Path(__file__).resolve().parent.parent


        @asset
        def numbers():
            n = int((HERE / "n.txt").read_text())
            return pa.table({"n": list(range(1, n + 1))})
    """
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> TinyProject:
    """Built three times: 5, 10 and 11 numbers (the last fails the accepted_values test)."""
    from conftest import write_dbt_project

    p = write_dbt_project(tmp_path_factory.mktemp("hist") / "tiny", FILES, PYTHON)
    for n, code in ((5, 0), (10, 0), (11, 1)):
        (p.path / "n.txt").write_text(str(n))
        result = run_cli(p.path, "build", "--full")  # the data changed, not the code
        assert result.exit_code == code, result.describe()
    return p


def test_history_json(project: TinyProject) -> None:
    doc = run_cli(project.path, "history", "main.doubled", "--json").json()
    assert doc["key"] == "main.doubled"
    assert [m["rows"] for m in doc["materializations"]] == [11, 10, 5]  # newest first
    assert doc["materializations"][0]["columns"] == [{"name": "d", "type": "BIGINT"}]
    checks = [[c["status"] for c in m["checks"]] for m in doc["materializations"]]
    assert checks == [["fail"], ["pass"], ["pass"]]
    assert doc["checks"][0]["check"].startswith("accepted_values_doubled_d")
    assert doc["failures"] == []
    after = run_cli(project.path, "history", "after", "--json").json()  # by name
    assert [m["rows"] for m in after["materializations"]] == [10, 5]
    assert [f["status"] for f in after["failures"]] == ["skipped"]
    assert "accepted_values" in after["failures"][0]["error"]


def test_history_text_has_sparklines_and_checks(project: TinyProject) -> None:
    result = run_cli(project.path, "history", "doubled")
    assert result.exit_code == 0, result.describe()
    assert "main.doubled: 3 materializations" in result.output
    rows_line = next(line for line in result.output.splitlines() if line.startswith("rows"))
    assert sparkline([5, 10, 11]) in rows_line and "11 rows" in rows_line
    assert any(line.startswith("duration") for line in result.output.splitlines())
    assert "accepted_values_doubled_d" in result.output and "fail" in result.output


def test_history_of_an_unknown_asset(project: TinyProject) -> None:
    assert_clean_error(run_cli(project.path, "history", "nope"), 2, "No history for 'nope'")


def test_sparkline() -> None:
    assert sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == "▁▂▃▄▅▆▇█"
    assert sparkline([None, 3, 3]) == " ▅▅"
    assert sparkline([]) == ""


def test_logs_filter_by_asset_and_level(project: TinyProject) -> None:
    everything = run_cli(project.path, "logs", "--json").json_lines()
    assert {e["asset"] for e in everything} >= {"raw.numbers", "main.doubled", "main.after"}
    only = run_cli(project.path, "logs", "--asset", "doubled", "--json").json_lines()
    assert only and {e["asset"] for e in only} == {"main.doubled"}
    warnings = run_cli(project.path, "logs", "--level", "warning", "--json").json_lines()
    assert warnings and all(e["level"] in ("warning", "error") for e in warnings)
    assert {e["kind"] for e in warnings} >= {"check_failed", "asset_skipped"}
    text = run_cli(project.path, "logs", "--asset", "main.after", "--level", "warning")
    assert text.exit_code == 0 and "asset_skipped" in text.output
    assert "raw.numbers" not in text.output


def test_github_actions_annotations_and_summary(project: TinyProject, tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("# before\n")
    (project.path / "n.txt").write_text("11")
    env: dict[str, Any] = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)}
    result = run_cli(project.path, "build", env=env)
    assert result.exit_code == 1, result.describe()
    errors = [line for line in result.stdout.splitlines() if line.startswith("::error ")]
    assert len(errors) == 1, result.describe()
    assert errors[0].startswith("::error file=models/schema.yml,title=check accepted_values")
    assert "::accepted_values_doubled_d" in errors[0]
    text = summary.read_text()
    assert text.startswith("# before\n")  # appended
    assert "## sqlorch run" in text and "failed" in text
    assert "| `main.after` | model | skipped |" in text
    assert "| `main.doubled` | model | success | 11 rows |" in text
    assert "### Failed checks" in text and "accepted_values_doubled_d" in text
    # outside GitHub Actions: no annotations
    plain = run_cli(project.path, "build")
    assert "::error" not in plain.stdout
