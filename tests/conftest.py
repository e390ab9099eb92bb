"""Fixtures shared by the integration and CLI tests: project copies, tiny dbt projects, the CLI.

Every project a test builds lives in its own temp folder with its own DuckDB file and
`.sqlorch/` state. The example project (NYC flights, at the top of the repo) is the
end-to-end fixture; `make_dbt_project` writes purpose-built tiny dbt projects for edge cases.

The CLI runs in process through click's `CliRunner` (fast: dbt is imported once per test
session) or, for exit-code and traceback checks, as a real subprocess; both pass
`--project-dir` and run in the project's folder (relative DuckDB paths in profiles.yml resolve
against the working directory). Every DuckDB path in a test profile is absolute: dbt-duckdb
keeps one database environment per process and would reuse the first project's file for a
second project whose profile says the same relative path (see test_tiny_projects.py).

Test modules import the plain helpers below with `from conftest import ...` (pytest puts
this folder on sys.path; the module is the one pytest loaded).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]

#: What makes up the example project (besides the [tool.sqlorch] settings).
EXAMPLE_PARTS = (
    "dbt_project.yml",
    "models",
    "seeds",
    "snapshots",
    "macros",
    "dbt_tests",
    "analyses",
    "ingest",
    "profiles",
)
#: The example's DuckDB file, relative to the project folder (profiles/profiles.yml).
EXAMPLE_DB = "nycflights13.duckdb"

#: Environment variables that would point a test run at someone else's state or profiles.
_LEAKY_ENV = (
    "SQLORCH_STATE_URL",
    "SQLORCH_TARGET",
    "SQLORCH_THREADS",
    "SQLORCH_ENV",
    "DBT_PROFILES_DIR",
    "DBT_PROJECT_DIR",
    "DBT_TARGET_PATH",
    "DBT_LOG_PATH",
)

TRACEBACK = "Traceback (most recent call last)"


# --------------------------------------------------------------------------- CLI runners


@dataclass(frozen=True)
class CliResult:
    """What one CLI invocation did: exit code and what it printed."""

    args: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str
    exception: BaseException | None = None

    @property
    def output(self) -> str:
        """stdout and stderr together."""
        return self.stdout + self.stderr

    @property
    def flat(self) -> str:
        """The output with all whitespace runs collapsed (messages may wrap)."""
        return " ".join(self.output.split())

    def json(self) -> Any:
        """stdout parsed as one JSON document."""
        return json.loads(self.stdout)

    def json_lines(self) -> list[Any]:
        """stdout parsed as JSON lines."""
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    def describe(self) -> str:
        """A summary for assertion messages."""
        exc = f"\nexception: {self.exception!r}" if self.exception else ""
        return (
            f"sqlorch {' '.join(self.args)} -> exit {self.exit_code}{exc}\n"
            f"--- stdout ---\n{self.stdout[-6000:]}\n--- stderr ---\n{self.stderr[-6000:]}"
        )


def clean_environ(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a CLI or dbt run: no leaking sqlorch/dbt settings, no colours."""
    env = {k: v for k, v in os.environ.items() if k not in _LEAKY_ENV}
    env.update(
        {
            "DO_NOT_TRACK": "1",
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "NO_COLOR": "1",
            "COLUMNS": "250",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    env.update(extra or {})
    return env


@contextlib.contextmanager
def _environment(env: Mapping[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _with_project_dir(args: Sequence[str], project: Path | None) -> list[str]:
    args = [str(a) for a in args]
    if project is None or "--project-dir" in args or not args:
        return args
    # options go after the subcommand (and its RUN_ID argument, which click accepts anywhere)
    return [args[0], "--project-dir", str(project), *args[1:]]


def run_cli(
    project: Path | None,
    *args: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> CliResult:
    """Run `sqlorch ARGS --project-dir PROJECT` in process, in the folder `cwd` (default PROJECT).

    Exceptions other than the CLI's own exits are kept in `exception` (an unexpected
    exception is a bug: a test asserting a clean exit sees it in `describe()`).
    """
    from click.testing import CliRunner

    from sqlorch.cli import cli

    argv = _with_project_dir(args, project)
    workdir = cwd or project or Path.cwd()
    runner = CliRunner()
    with _environment(clean_environ(env)), contextlib.chdir(workdir):
        result = runner.invoke(cli, argv, catch_exceptions=True, prog_name="sqlorch")
    exception = result.exception
    if isinstance(exception, SystemExit):
        exception = None
    return CliResult(tuple(argv), result.exit_code, result.stdout, result.stderr, exception)


def run_cli_subprocess(
    project: Path | None,
    *args: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
) -> CliResult:
    """Run `python -m sqlorch.cli ARGS --project-dir PROJECT` as a real process."""
    argv = _with_project_dir(args, project)
    proc = subprocess.run(
        [sys.executable, "-m", "sqlorch.cli", *argv],
        cwd=cwd or project,
        env=clean_environ(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return CliResult(tuple(argv), proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def sqlorch() -> Callable[..., CliResult]:
    """`sqlorch(project, "build", "-s", "x")`: run the CLI in process in the project's folder."""
    return run_cli


@pytest.fixture
def sqlorch_process() -> Callable[..., CliResult]:
    """`sqlorch_process(project, "build")`: run the CLI as a subprocess in the project's folder."""
    return run_cli_subprocess


def dbt_executable() -> str:
    """The `dbt` console script of the interpreter running the tests."""
    candidate = Path(sys.executable).with_name("dbt")
    if candidate.exists():
        return str(candidate)
    found = shutil.which("dbt")
    if found is None:
        pytest.skip("the dbt executable is not installed next to the test interpreter")
    return found


def run_dbt(project: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run plain `dbt ARGS` as a subprocess in `project` (its own target/ and logs/)."""
    return subprocess.run(
        [
            dbt_executable(),
            *args,
            "--project-dir",
            str(project),
            "--profiles-dir",
            str(project),
        ],
        cwd=project,
        env=clean_environ(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# --------------------------------------------------------------------------- the example project


def example_settings_section() -> str:
    """Return the `[tool.sqlorch]` section of the repo's pyproject.toml, verbatim."""
    text = (REPO / "pyproject.toml").read_text()
    lines = text.splitlines()
    out: list[str] = []
    inside = False
    for line in lines:
        header = re.match(r"^\s*\[\[?([^\]]+)\]\]?\s*(#.*)?$", line)
        if header:
            name = header.group(1).strip()
            inside = name == "tool.sqlorch" or name.startswith("tool.sqlorch.")
        if inside:
            out.append(line)
    if not out:
        raise RuntimeError(f"no [tool.sqlorch] section in {REPO / 'pyproject.toml'}")
    return "\n".join(out).rstrip() + "\n"


def copy_example(dest: Path) -> Path:
    """Copy the example project into `dest` (created) and return it."""
    dest.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "target", "logs", ".sqlorch")
    for part in EXAMPLE_PARTS:
        src = REPO / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=ignore)
        elif src.is_file():
            shutil.copy2(src, dest / part)
    (dest / "pyproject.toml").write_text(example_settings_section())
    _absolute_duckdb_paths(dest / "profiles" / "profiles.yml", dest)
    return dest


def _absolute_duckdb_paths(profiles: Path, base: Path) -> None:
    """Make relative DuckDB `path:`s in a copied profiles.yml absolute (inside `base`).

    dbt-duckdb keeps one database environment per process and reuses it while the profile's
    credentials compare equal: two copies that both say `path: nycflights13.duckdb` would
    share the first copy's file when built in one process (see test_in_process.py).
    """

    def absolute(match: re.Match[str]) -> str:
        value = match.group(2)
        if value == ":memory:" or Path(value).is_absolute() or "{{" in value:
            return match.group(0)
        return f'{match.group(1)}"{(base / value).as_posix()}"'

    text = profiles.read_text()
    profiles.write_text(
        re.sub(r"""^(\s*path:\s*)["']?([^"'\s#]+)["']?""", absolute, text, flags=re.M)
    )


@pytest.fixture
def example_project(tmp_path: Path) -> Path:
    """A private copy of the example project (nothing built yet)."""
    return copy_example(tmp_path / "nycflights")


@dataclass(frozen=True)
class BuiltExample:
    """The example project after one full `sqlorch build` (shared: read-only use only)."""

    path: Path
    build: CliResult

    @property
    def db(self) -> Path:
        """The DuckDB file the build wrote."""
        return self.path / EXAMPLE_DB

    def cli(self, *args: str) -> CliResult:
        """Run a (read-only) command on the built project."""
        return run_cli(self.path, *args)


@pytest.fixture(scope="session")
def built_example(tmp_path_factory: pytest.TempPathFactory) -> BuiltExample:
    """The example project, built once per test session with `sqlorch build`."""
    path = copy_example(tmp_path_factory.mktemp("built") / "nycflights")
    result = run_cli(path, "build")
    assert result.exit_code == 0, result.describe()
    return BuiltExample(path, result)


# --------------------------------------------------------------------------- DuckDB helpers


def query(db: Path, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Run `sql` on the DuckDB file `db` and return every row.

    The connection uses the default configuration: a build in this process may still have
    the file open, and DuckDB shares one database instance per file and configuration.
    """
    import duckdb

    con = duckdb.connect(str(db))
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def scalar(db: Path, sql: str, params: Sequence[Any] = ()) -> Any:
    """Run `sql` on `db` and return the first column of the first row."""
    rows = query(db, sql, params)
    return rows[0][0] if rows else None


def tables(db: Path) -> dict[str, str]:
    """Return `schema.name` -> table type ('BASE TABLE' / 'VIEW') of every user relation."""
    rows = query(
        db,
        "select table_schema, table_name, table_type from information_schema.tables "
        "where table_catalog = current_database() "
        "and table_schema not in ('information_schema', 'pg_catalog')",
    )
    return {f"{s}.{n}".lower(): t for s, n, t in rows}


# --------------------------------------------------------------------------- tiny dbt projects


@dataclass(frozen=True)
class TinyProject:
    """A tiny dbt project written by `make_dbt_project`."""

    path: Path
    db: Path
    name: str

    def write(self, files: Mapping[str, str]) -> None:
        """(Over)write files of the project (paths relative to it)."""
        _write_files(self.path, files)


def _write_files(root: Path, files: Mapping[str, str]) -> None:
    for rel, text in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text).lstrip("\n"))


DEFAULT_DBT_PROJECT = """
name: {name}
version: "1.0.0"
config-version: 2
profile: {name}
model-paths: [models]
seed-paths: [seeds]
snapshot-paths: [snapshots]
macro-paths: [macros]
test-paths: [dbt_tests]
analysis-paths: [analyses]
"""

DEFAULT_PROFILES = """
{name}:
  target: dev
  outputs:
    dev:
      type: duckdb
      path: "{db}"
      threads: 2
"""


def write_dbt_project(
    root: Path,
    files: Mapping[str, str],
    python: Mapping[str, str] | None = None,
    *,
    name: str = "tiny",
) -> TinyProject:
    """Write a tiny dbt project into the new folder `root` (see `make_dbt_project`)."""
    root.mkdir(parents=True, exist_ok=False)
    db = root / f"{name}.duckdb"
    defaults = {
        "dbt_project.yml": DEFAULT_DBT_PROJECT.format(name=name),
        "profiles.yml": DEFAULT_PROFILES.format(name=name, db=db.as_posix()),
    }
    py = dict(python or {})
    for folder in {Path(p).parts[0] for p in py if len(Path(p).parts) > 1}:
        # a regular package: a namespace package `ingest` would lose to any regular
        # `ingest` package elsewhere on sys.path (see test_tiny_projects.py)
        py.setdefault(f"{folder}/__init__.py", "")
    _write_files(root, {k: v for k, v in defaults.items() if k not in files})
    _write_files(root, files)
    _write_files(root, py)
    return TinyProject(root, db, name)


@pytest.fixture
def make_dbt_project(tmp_path: Path) -> Callable[..., TinyProject]:
    """Factory: `make_dbt_project(files, python=None, *, name="tiny", folder=None)`.

    Writes a dbt project in a new folder of `tmp_path`: `dbt_project.yml` (unless `files`
    holds one; profile = `name`), a `profiles.yml` beside it whose DuckDB file is an absolute
    path in that folder (unless `files` holds one), then `files` (path -> text, dedented) and
    `python` (path -> text, e.g. `{"ingest/assets.py": ...}`; an empty `__init__.py` is added
    to each top folder unless given). No sqlorch settings: zero configuration, as a dbt user
    adopting sqlorch would have.
    """

    def make(
        files: Mapping[str, str],
        python: Mapping[str, str] | None = None,
        *,
        name: str = "tiny",
        folder: str | None = None,
    ) -> TinyProject:
        return write_dbt_project(tmp_path / (folder or name), files, python, name=name)

    return make


# --------------------------------------------------------------------------- assertions


def assert_clean_error(result: CliResult, exit_code: int, *needles: str) -> None:
    """Assert a one-paragraph error: the exit code, each needle in the output, no traceback."""
    assert result.exception is None, result.describe()
    assert result.exit_code == exit_code, result.describe()
    assert TRACEBACK not in result.output, result.describe()
    for needle in needles:
        assert needle in result.flat, f"{needle!r} not in the output\n{result.describe()}"


# --------------------------------------------------------------------------- Spark (tests/spark)


@pytest.fixture(scope="session")
def spark_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The test session's one SparkSession (local[2], 2 GB driver; catalog in a temp dir)."""
    from spark_support import has_java, session_params

    if not has_java():
        pytest.skip(
            "no Java runtime: Spark needs Java 17 (`apt-get install openjdk-17-jre-headless`, "
            "which .ci/run does where apt-get can)"
        )
    from sqlorch.warehouse.spark import start_session

    session = start_session(session_params(tmp_path_factory.mktemp("spark")))
    yield session
    session.stop()


@pytest.fixture
def spark(spark_session: Any) -> Any:
    """The shared SparkSession with an empty catalog (every database but `default` dropped)."""
    for db in spark_session.catalog.listDatabases():
        if db.name != "default":
            spark_session.sql(f"DROP DATABASE IF EXISTS `{db.name}` CASCADE")
    return spark_session


#: Markers of tests that start a server, a JVM or a browser: they stay out of the fast lane.
_SLOW_LANE = ("postgres", "spark", "browser")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that starts a server, a JVM or a browser as `dbt` (the slow lane)."""
    for item in items:
        if any(item.get_closest_marker(name) for name in _SLOW_LANE):
            item.add_marker(pytest.mark.dbt)


# --------------------------------------------------------------------------- PostgreSQL (issue 14)

#: the login role the postgres tests connect as (with a password, like a real deployment)
PG_USER = "sqlorch_test"
PG_PASSWORD = "pg-test-canary-7f3a91"


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Any]:
    """ONE throwaway PostgreSQL cluster per test session (tests/postgres/cluster.py)."""
    from postgres.cluster import start_cluster  # tests/postgres/cluster.py

    cluster = start_cluster(port=54000 + os.getpid() % 1000)
    cluster.sql(f"CREATE ROLE {PG_USER} LOGIN CREATEDB PASSWORD '{PG_PASSWORD}'")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: Any, request: pytest.FixtureRequest) -> str:
    """A fresh, empty database of the session's cluster, as a postgresql:// URL."""
    name = "t_" + re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:40] + f"_{id(request)}"
    pg_cluster.sql(f'CREATE DATABASE "{name}" OWNER {PG_USER}')
    return str(pg_cluster.url(name, PG_USER, PG_PASSWORD))
