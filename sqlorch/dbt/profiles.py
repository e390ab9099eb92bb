"""Find and read dbt profiles the way dbt does, to open the same warehouse as dbt."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlorch.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Target:
    """The resolved dbt target: which adapter and where its data lives."""

    profile: str
    name: str
    type: str
    profiles_file: Path
    path: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    threads: int | None = None
    #: the target's whole entry in profiles.yml, secrets included: never printed or cached
    options: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


def read_project_file(project_dir: Path) -> dict[str, Any]:
    """Read dbt_project.yml.

    Raises:
        ConfigError: the file is missing or not valid YAML.
    """
    import yaml

    path = project_dir / "dbt_project.yml"
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"No dbt_project.yml in {project_dir}.") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must be a YAML mapping (name:, profile:, ...).")
    return data


def find_profiles_dir(explicit: Path | None, cwd: Path | None = None) -> Path:
    """Return the folder of profiles.yml: explicit, else ./profiles.yml, else ~/.dbt."""
    if explicit is not None:
        return explicit
    here = cwd or Path.cwd()
    if (here / "profiles.yml").is_file():
        return here
    return Path.home() / ".dbt"


def read_target(
    project_dir: Path, profiles_dir: Path, target: str | None, env: Mapping[str, str] | None = None
) -> Target:
    """Resolve the dbt target this project runs against.

    Raises:
        ConfigError: profiles.yml is missing, malformed, or lacks the profile or target.
    """
    import jinja2
    import yaml

    env = os.environ if env is None else env
    project = read_project_file(project_dir)
    profile_name = str(project.get("profile") or project.get("name") or "")
    path = profiles_dir / "profiles.yml"
    if not path.is_file():
        raise ConfigError(
            f"No profiles.yml found for dbt profile {profile_name!r}: looked in {profiles_dir}. "
            "Pass --profiles-dir, set DBT_PROFILES_DIR, put profiles.yml in the current folder "
            "or in ~/.dbt/, or set `profiles_dir` under [tool.sqlorch]."
        )

    def env_var(name: str, default: str | None = None) -> str:
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError(
            f"{path} reads the environment variable {name!r} (env_var), which is not set "
            "and has no default. Set it and run again."
        )

    jinja = jinja2.Environment(undefined=jinja2.StrictUndefined)
    # dbt's native-type filters: the YAML parser below does the typing, so they pass through
    for name in ("as_bool", "as_native", "as_number", "as_text"):
        jinja.filters[name] = _identity
    try:
        rendered = jinja.from_string(path.read_text()).render(env_var=env_var)
        profiles = yaml.safe_load(rendered) or {}
    except (jinja2.TemplateError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path} could not be read: {exc}. Fix the file and run again.") from exc
    if not isinstance(profiles, dict):
        raise ConfigError(f"{path} must be a YAML mapping of profile names to profiles.")
    profile = profiles.get(profile_name)
    if not isinstance(profile, dict):
        raise ConfigError(
            f"{path} has no profile {profile_name!r} (named by `profile:` in "
            f"{project_dir / 'dbt_project.yml'}). Profiles there: "
            f"{', '.join(k for k in profiles if k != 'config') or 'none'}."
        )
    outputs = profile.get("outputs") or {}
    name = target or profile.get("target") or "default"
    out = outputs.get(name)
    if not isinstance(out, dict):
        raise ConfigError(
            f"Profile {profile_name!r} in {path} has no target {name!r}. "
            f"Its targets: {', '.join(outputs) or 'none'}. Pick one with --target."
        )
    if "type" not in out:
        raise ConfigError(f"Target {name!r} of profile {profile_name!r} in {path} has no `type`.")
    threads = out.get("threads")
    return Target(
        profile=profile_name,
        name=str(name),
        type=str(out["type"]),
        profiles_file=path,
        path=str(out["path"]) if out.get("path") is not None else None,
        config=dict(out.get("config_options") or {}),
        threads=int(str(threads)) if str(threads).strip().isdigit() else None,
        options=dict(out),
    )


_ENV_VAR = re.compile(r"""env_var\(\s*['"]([^'"]+)['"]""")


def read_target_cached(
    project_dir: Path,
    profiles_dir: Path,
    target: str | None,
    cache_file: Path,
    env: Mapping[str, str] | None = None,
) -> Target:
    """`read_target`, remembered while profiles.yml, dbt_project.yml and the environment
    variables they read are unchanged (no Jinja or YAML import on the no-op path).

    A target with `config_options`, or of another type than DuckDB (its options hold
    passwords), is never written to the cache.
    """
    env = os.environ if env is None else env
    try:
        texts = [
            (profiles_dir / "profiles.yml").read_bytes(),
            (project_dir / "dbt_project.yml").read_bytes(),
        ]
    except OSError:
        return read_target(project_dir, profiles_dir, target, env)
    names = sorted({n for t in texts for n in _ENV_VAR.findall(t.decode(errors="replace"))})
    h = hashlib.sha256()
    for part in (*texts, repr(target).encode(), str(profiles_dir.resolve()).encode()):
        h.update(hashlib.sha256(part).digest())
    h.update(repr([(n, env.get(n)) for n in names]).encode())
    key = h.hexdigest()
    try:
        doc = json.loads(cache_file.read_text())
        if doc.get("key") == key:
            t = doc["target"]
            return Target(
                profile=t["profile"],
                name=t["name"],
                type=t["type"],
                profiles_file=Path(t["profiles_file"]),
                path=t["path"],
                threads=t["threads"],
            )
    except (OSError, ValueError, KeyError, TypeError):
        pass
    found = read_target(project_dir, profiles_dir, target, env)
    if not found.config and found.type == "duckdb":
        doc = {
            "key": key,
            "target": {
                "profile": found.profile,
                "name": found.name,
                "type": found.type,
                "profiles_file": str(found.profiles_file),
                "path": found.path,
                "threads": found.threads,
            },
        }
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(doc))
            os.replace(tmp, cache_file)
        except OSError:
            pass
    return found


def _identity(value: Any) -> Any:
    return value
