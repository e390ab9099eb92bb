"""Settings: file, environment and flags, and the zero-configuration default."""

from __future__ import annotations

from pathlib import Path

import pytest

from sqlorch.errors import ConfigError
from sqlorch.settings import load_settings


def _dbt_project(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "dbt_project.yml").write_text("name: p\nprofile: p\n")
    return path


def test_zero_configuration_in_a_plain_dbt_project(tmp_path: Path) -> None:
    proj = _dbt_project(tmp_path / "repo")
    s = load_settings(cwd=proj, env={})
    assert s.project_dir == proj.resolve()
    assert s.state_path == proj.resolve() / ".sqlorch" / "state.db"
    assert s.profiles_dir is None and s.target is None
    assert s.ingest == ("ingest",) and s.threads == 4


def test_pyproject_settings_then_env_then_flags(tmp_path: Path) -> None:
    proj = _dbt_project(tmp_path / "repo")
    (proj / "pyproject.toml").write_text(
        '[tool.sqlorch]\nprofiles_dir = "profiles"\ntarget = "dev"\nthreads = 3\n'
        'ingest = ["pipelines"]\nstate_url = "state/x.db"\n'
    )
    s = load_settings(cwd=proj, env={})
    assert s.profiles_dir == (proj / "profiles").resolve()
    assert (s.target, s.threads, s.ingest) == ("dev", 3, ("pipelines",))
    assert s.state_path == (proj / "state" / "x.db").resolve()
    env = {"SQLORCH_TARGET": "prod", "DBT_PROFILES_DIR": str(tmp_path), "SQLORCH_THREADS": "7"}
    s = load_settings(cwd=proj, env=env)
    assert (s.target, s.threads, s.profiles_dir) == ("prod", 7, tmp_path.resolve())
    s = load_settings(cwd=proj, env=env, target="ci", threads=2, profiles_dir=proj)
    assert (s.target, s.threads, s.profiles_dir) == ("ci", 2, proj.resolve())


def test_project_dir_setting_points_at_a_dbt_project_in_a_subfolder(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.sqlorch]\nproject_dir = "transform"\n')
    _dbt_project(tmp_path / "transform")
    s = load_settings(cwd=tmp_path, env={})
    assert s.project_dir == (tmp_path / "transform").resolve()
    assert s.root == tmp_path.resolve()


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ("[tool.sqlorch]\nthreds = 3\n", "Unknown setting(s) threds"),
        ("[tool.sqlorch]\nthreads = 0\n", "`threads`"),
        ("[tool.sqlorch]\ningest = 3\n", "`ingest`"),
        ("[tool.sqlorch\n", "not valid TOML"),
    ],
)
def test_bad_settings_are_clear_errors(tmp_path: Path, toml: str, needle: str) -> None:
    proj = _dbt_project(tmp_path / "repo")
    (proj / "pyproject.toml").write_text(toml)
    with pytest.raises(ConfigError) as err:
        load_settings(cwd=proj, env={})
    assert needle in str(err.value)
    assert err.value.exit_code == 2


def test_missing_dbt_project_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(cwd=tmp_path, env={})
    assert "No dbt_project.yml" in str(err.value) and "--project-dir" in str(err.value)


def test_settings_of_an_enclosing_repo_do_not_leak_into_a_nested_dbt_project(
    tmp_path: Path,
) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.sqlorch]\ningest = ["pipelines"]\n')
    _dbt_project(tmp_path)
    nested = _dbt_project(tmp_path / "bench" / "p1")
    s = load_settings(project_dir=nested, cwd=tmp_path, env={})
    assert s.settings_file is None and s.ingest == ("ingest",)
    assert s.project_dir == nested.resolve()
    # while the repo's own project still reads them
    assert load_settings(cwd=tmp_path, env={}).ingest == ("pipelines",)
