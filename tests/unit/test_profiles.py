"""Reading dbt profiles the way dbt does: env_var, dbt's filters, targets."""

from __future__ import annotations

from pathlib import Path

import pytest

from sqlorch.dbt.profiles import find_profiles_dir, read_target
from sqlorch.errors import ConfigError

PROFILES = """
config:
  send_anonymous_usage_stats: false
p:
  target: "{{ env_var('P_TARGET', 'dev') }}"
  outputs:
    dev:
      type: duckdb
      path: "{{ env_var('P_DIR') }}/dev.duckdb"
      threads: "{{ env_var('P_THREADS', '3') | as_number }}"
      config_options: {allow_unsigned_extensions: true}
    prod:
      type: postgres
      host: localhost
"""


def _project(tmp_path: Path) -> Path:
    (tmp_path / "dbt_project.yml").write_text("name: p\nprofile: p\n")
    (tmp_path / "profiles.yml").write_text(PROFILES)
    return tmp_path


def test_env_var_defaults_filters_and_config_options(tmp_path: Path) -> None:
    proj = _project(tmp_path)
    target = read_target(proj, proj, None, env={"P_DIR": "/data"})
    assert (target.name, target.type, target.path, target.threads) == (
        "dev",
        "duckdb",
        "/data/dev.duckdb",
        3,
    )
    assert dict(target.config) == {"allow_unsigned_extensions": True}
    assert read_target(proj, proj, "prod", env={"P_DIR": "/x"}).type == "postgres"


@pytest.mark.parametrize(
    ("target", "env", "needle"),
    [
        ("dev", {}, "'P_DIR'"),
        ("staging", {"P_DIR": "/x"}, "no target 'staging'"),
    ],
)
def test_bad_profiles_name_what_is_wrong(
    tmp_path: Path, target: str, env: dict[str, str], needle: str
) -> None:
    proj = _project(tmp_path)
    with pytest.raises(ConfigError) as err:
        read_target(proj, proj, target, env=env)
    assert needle in str(err.value) and err.value.exit_code == 2


def test_profiles_dir_search_order(tmp_path: Path) -> None:
    assert find_profiles_dir(tmp_path / "explicit", cwd=tmp_path) == tmp_path / "explicit"
    assert find_profiles_dir(None, cwd=tmp_path) == Path.home() / ".dbt"
    (tmp_path / "profiles.yml").write_text("p: {}\n")
    assert find_profiles_dir(None, cwd=tmp_path) == tmp_path
