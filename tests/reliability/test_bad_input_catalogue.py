"""The bad-input catalogue: one row per broken input, on a project that was built before.

Each row says what is broken (files written over the built project, environment), the
command, the exit code, the words the message must contain, and that nothing already built
changed: every table and view the clean build made holds the same rows afterwards. No row
prints a Python traceback. Adding a case is adding a row to `CASES`.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import TRACEBACK, CliResult, TinyProject, query, run_cli, tables, write_dbt_project

pytestmark = pytest.mark.dbt

ASSETS = """
import pyarrow as pa

from sqlorch import CheckResult, asset, check, daily

MODE = "good"


@asset(metadata={"sqlorch": {"checks": {"row_count": {"min_rows": 1}}}})
def numbers():
    if MODE == "empty":
        return pa.table({"n": pa.array([], pa.int64())})
    if MODE == "raises":
        raise RuntimeError("the upstream API said no")
    if MODE == "wrong_type":
        return 42
    return pa.table({"n": [1, 2, 3]})


@check(asset="raw.numbers")
def small_numbers(rows):
    return CheckResult(all(v < 100 for v in rows.column("n").to_pylist()), "a number >= 100")


@asset(partitions=daily("2024-01-01", end="2024-01-04", column="day"))
def days(context):
    day = context.partition.start.date()
    if MODE == "retyped":
        return pa.table({"day": [day], "v": ["1"]})
    if MODE == "widened":
        return pa.table({"day": [day], "v": [1], "extra": [1]})
    return pa.table({"day": [day], "v": [1]})
"""

SOURCES = """
version: 2
sources:
  - name: raw
    tables: [{name: numbers}, {name: days}]
"""

BASE = {
    "models/sources.yml": SOURCES,
    "models/a.sql": "{{ config(materialized='table') }}\nselect * from {{ ref('colors') }}\n",
    "models/v_numbers.sql": "select n * 2 as n2 from {{ source('raw', 'numbers') }}\n",
    "models/v_days.sql": "select * from {{ source('raw', 'days') }}\n",
    "seeds/colors.csv": "id,color\n1,red\n2,green\n",
}


def mode(value: str) -> dict[str, str]:
    """The ingest module with its MODE switched to `value`."""
    return {"ingest/assets.py": ASSETS.replace('MODE = "good"', f'MODE = "{value}"')}


@dataclass(frozen=True, slots=True)
class Case:
    """One broken input: what to write, what to run, what must come out."""

    name: str
    files: Mapping[str, str]
    args: tuple[str, ...]
    exit_code: int
    words: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    #: relations a case may change (none: everything the clean build made is unchanged)
    may_change: frozenset[str] = frozenset()


CASES = [
    Case(
        "broken_sql",
        {"models/a.sql": "{{ config(materialized='table') }}\nselect from where\n"},
        ("build",),
        1,
        ("main.a", "models/a.sql"),
    ),
    Case(
        "missing_ref",
        {"models/b.sql": "select * from {{ ref('does_not_exist') }}\n"},
        ("build",),
        2,
        ("does_not_exist", "b"),
    ),
    Case(
        "cycle",
        {
            "models/c1.sql": "select * from {{ ref('c2') }}\n",
            "models/c2.sql": "select * from {{ ref('c1') }}\n",
        },
        ("build",),
        2,
        ("cycle",),
    ),
    Case(
        "raising_asset",
        mode("raises"),
        ("build", "--full", "-s", "numbers"),
        1,
        ("raw.numbers", "RuntimeError", "the upstream API said no", "ingest/assets.py"),
    ),
    Case(
        "wrong_return_type",
        mode("wrong_type"),
        ("build", "--full", "-s", "numbers"),
        1,
        ("raw.numbers", "returned a builtins.int", "cannot write"),
    ),
    Case(
        "zero_rows_never_published",
        mode("empty"),
        ("build", "--full", "-s", "numbers+"),
        1,
        ("row_count", "fewer than the minimum 1", "rolled back"),
    ),
    Case(
        "changed_column_type_never_coerced",
        mode("retyped"),
        ("backfill", "days", "--from", "2024-01-02", "--to", "2024-01-02"),
        1,
        ("v BIGINT -> VARCHAR", "nothing was written", "--full -s raw.days", "on_schema_change"),
    ),
    Case(
        "added_column_refused_by_default",
        mode("widened"),
        ("backfill", "days", "--from", "2024-01-02", "--to", "2024-01-02"),
        1,
        ("new columns extra", "append_new_columns"),
    ),
    Case(
        "malformed_seed",
        {"seeds/colors.csv": "id,color\n1,red\n2,green,oops\n"},
        ("build", "-s", "colors"),
        1,
        ("colors", "Row 2 (line 3 of seeds/colors.csv) has 3 values"),
    ),
    Case(
        "bad_profiles",
        {"profiles.yml": "tiny: [this is: not a profile\n"},
        ("build",),
        2,
        ("profiles.yml",),
    ),
    Case(
        "unset_env_var",
        {"models/e.sql": "select '{{ env_var('SQLORCH_TEST_UNSET_VAR') }}' as v\n"},
        ("build",),
        2,
        ("SQLORCH_TEST_UNSET_VAR",),
    ),
    Case("unknown_selector", {}, ("build", "-s", "no_such_asset"), 2, ("no_such_asset",)),
    Case(
        "backfill_outside_the_partitions",
        {},
        ("backfill", "days", "--from", "2030-01-01", "--to", "2030-01-02"),
        2,
        ("outside", "2024-01-01 .. 2024-01-03"),
    ),
    Case(
        "unknown_partition_key",
        {},
        ("backfill", "days", "--partition", "1999-01-01"),
        2,
        ("1999-01-01", "outside"),
    ),
    Case(
        "bad_setting",
        {"pyproject.toml": '[tool.sqlorch]\nthreads = "many"\n'},
        ("build",),
        2,
        ("threads",),
    ),
]


def content(db: Path) -> dict[str, str]:
    """Every user relation's rows, hashed (order-independent)."""
    out = {}
    for name in tables(db):
        rows = query(db, f"select * from {name} order by all")
        out[name] = hashlib.sha256(repr(rows).encode()).hexdigest()
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[TinyProject, dict[str, str]]:
    """The base project, built once; each case works on a copy."""
    root = tmp_path_factory.mktemp("catalogue") / "base"
    project = write_dbt_project(root, BASE, mode("good"))
    result = run_cli(project.path, "build")
    assert result.exit_code == 0, result.describe()
    return project, content(project.db)


def _copy(project: TinyProject, dest: Path) -> TinyProject:
    shutil.copytree(project.path, dest)
    profiles = dest / "profiles.yml"
    profiles.write_text(profiles.read_text().replace(str(project.path), str(dest)))
    return TinyProject(dest, dest / project.db.name, project.name)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, built: tuple[TinyProject, dict[str, str]], tmp_path: Path) -> None:
    base, before = built
    project = _copy(base, tmp_path / "tiny")
    project.write(case.files)
    result: CliResult = run_cli(project.path, *case.args, env=case.env)
    assert result.exception is None, result.describe()
    assert result.exit_code == case.exit_code, result.describe()
    assert TRACEBACK not in result.output, result.describe()
    for word in case.words:
        assert word.lower() in result.flat.lower(), (word, result.describe())
    after = content(project.db)
    changed = {k for k in before if after.get(k) != before[k]} - case.may_change
    assert not changed, (changed, result.describe())


def test_the_catalogue_covers_the_issue() -> None:
    names = {c.name for c in CASES}
    required = {
        "broken_sql", "missing_ref", "cycle", "raising_asset", "wrong_return_type",
        "malformed_seed", "bad_profiles", "unset_env_var", "zero_rows_never_published",
        "changed_column_type_never_coerced", "added_column_refused_by_default",
        "backfill_outside_the_partitions",
    }  # fmt: skip
    assert required <= names, required - names
    assert all(re.fullmatch(r"[a-z_]+", n) for n in names)
