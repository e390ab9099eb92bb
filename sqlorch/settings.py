"""Settings: `[tool.sqlorch]` in pyproject.toml (or sqlorch.toml), the environment, the CLI.

Precedence: command-line flags, then environment variables, then the settings file, then
defaults. A folder with only a dbt_project.yml needs no settings at all.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlorch.errors import ConfigError

DEFAULT_ASSET_SCHEMA = "raw"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a command needs to know about the user's repo, resolved once."""

    root: Path
    project_dir: Path
    profiles_dir: Path | None
    target: str | None
    ingest: tuple[str, ...]
    asset_schema: str
    state_path: Path
    threads: int
    pools: Mapping[str, int] = field(default_factory=dict)
    settings_file: Path | None = None
    # issue 18: whether `threads` was given (flag, SQLORCH_THREADS or the settings); if not,
    # dbt gets the profile's `threads`, as plain dbt does
    threads_explicit: bool = False
    # issue 6: extra modules holding @check functions; built-in checks and retry policies by
    # selector; request rates (per second) of pools
    check_modules: tuple[str, ...] = ()
    checks: Mapping[str, Any] = field(default_factory=dict)
    retries: Mapping[str, Any] = field(default_factory=dict)
    pool_rates: Mapping[str, float] = field(default_factory=dict)
    # issue 16: who executes dbt nodes, "native" (default) or "dbt": {"default": ...,
    # selector: ...} from `execution = "dbt"` or `[tool.sqlorch.execution]`
    execution: Mapping[str, str] = field(default_factory=dict)
    # where state and dbt artifacts live when not in the project (`sqlorch verify`'s copies)
    state_root: Path | None = None
    # issue 14: a postgresql:// state URL (None: the SQLite file `state_path`); has secrets
    state_url: str | None = field(default=None, repr=False)
    # issue 14: `--vars` of this command (dbt's), merged over the project's vars
    dbt_vars: Mapping[str, Any] = field(default_factory=dict)
    # issue 13: automation tables, read into typed values by sqlorch.automation.definitions
    schedules: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    sensors: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    automation: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    daemon: Mapping[str, Any] = field(default_factory=dict)
    # issue 12: False in the web UI, which never opens the warehouse file (a build may hold
    # it): what the last observation of the file remembered, else unknown
    warehouse_reads: bool = True
    # issue 17: dlt sources as assets, one line each: dataset -> "module:function"
    dlt: Mapping[str, str] = field(default_factory=dict)
    # issue 14: the environment (SQLORCH_ENV) every written relation moves into (None:
    # production); its state lives apart (`with_environment`), production's stays as it was
    environment: str | None = None
    # production's state file and URL (what `with_environment(s, None)` goes back to)
    production_state: tuple[Path, str | None] | None = field(default=None, repr=False)

    @property
    def state_dir(self) -> Path:
        """The folder sqlorch keeps its state and dbt artifacts in."""
        if self.state_root is not None:
            return self.state_root
        if self.environment:
            return self.project_dir / ".sqlorch" / "envs" / self.environment
        return self.project_dir / ".sqlorch"

    def production(self) -> Settings:
        """These settings in production (no environment): where production's state is."""
        return with_environment(self, None)

    def dbt_threads(self, profile_threads: int | None) -> int:
        """dbt's `--threads`: the profile's `threads` unless `threads` was given, as in dbt."""
        if self.threads_explicit or not profile_threads or profile_threads < 1:
            return self.threads
        return profile_threads

    @property
    def state_location(self) -> str:
        """Where the state store lives, for messages (a URL's password masked)."""
        return mask_url(self.state_url) if self.state_url else str(self.state_path)


_KNOWN = {
    "project_dir",
    "profiles_dir",
    "target",
    "ingest",
    "asset_schema",
    "state_url",
    "threads",
    "max_concurrency",
    "pools",
    "check_modules",
    "checks",
    "retries",
    "execution",
    "dlt",
    "schedules",
    "sensors",
    "automation",
    "daemon",
}


def load_settings(
    *,
    project_dir: str | Path | None = None,
    profiles_dir: str | Path | None = None,
    target: str | None = None,
    threads: int | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve settings for a command.

    Args:
        project_dir: `--project-dir`; default: the settings' `project_dir`, else the folder
            holding the settings file, else the current directory.
        profiles_dir: `--profiles-dir`.
        target: `--target`.
        threads: `--threads`.
        cwd: the directory to start from (default: the process's).
        env: the environment (default: `os.environ`).

    Raises:
        ConfigError: the settings file is malformed or the dbt project is missing.
    """
    env = os.environ if env is None else env
    cwd = (cwd or Path.cwd()).resolve()
    start = Path(project_dir).resolve() if project_dir else cwd
    settings_file, raw = _settings_for(start)
    base = settings_file.parent if settings_file else start
    proj = _project_dir(project_dir, raw, base)
    state_path, pg_url = _state_location(raw, env, settings_file, base, proj)
    ingest = _modules(raw, "ingest", ["ingest"], settings_file)
    n_threads = _threads(threads, raw, env, settings_file)
    pools, pool_rates = _pools(raw.get("pools", {}), settings_file)
    check_modules = _modules(raw, "check_modules", [], settings_file)
    checks, retries, dlt, daemon = _plain_tables(raw, settings_file)
    execution = _execution(raw.get("execution"), settings_file)
    if env.get("SQLORCH_EXECUTION"):
        mode = env["SQLORCH_EXECUTION"]
        if mode not in ("native", "dbt"):
            raise ConfigError(f"SQLORCH_EXECUTION is {mode!r}; use 'native' or 'dbt'.")
        execution["default"] = mode
    automation_tables = {
        name: _tables(raw, name, settings_file, example)
        for name, example in (
            ("schedules", 'nightly = {cron = "30 5 * * *", select = "+marts"}'),
            ("sensors", 'orders = {path = "landing/*.csv", select = "raw.orders+"}'),
            ("automation", '"marts" = {eager = true}'),
        )
    }
    settings = Settings(
        root=base,
        project_dir=proj,
        profiles_dir=_profiles_dir(profiles_dir, raw, base, env),
        target=target or env.get("SQLORCH_TARGET") or _opt_str(raw, "target", settings_file),
        ingest=ingest,
        asset_schema=str(raw.get("asset_schema", DEFAULT_ASSET_SCHEMA)),
        state_path=state_path,
        threads=n_threads,
        pools=pools,
        settings_file=settings_file,
        threads_explicit=bool(
            threads or env.get("SQLORCH_THREADS") or "threads" in raw or "max_concurrency" in raw
        ),
        check_modules=check_modules,
        checks=checks,
        retries=retries,
        pool_rates=pool_rates,
        execution=execution,
        dlt=dlt,
        state_url=pg_url,
        schedules=automation_tables["schedules"],
        sensors=automation_tables["sensors"],
        automation=automation_tables["automation"],
        daemon=daemon,
    )
    return with_environment(settings, env.get("SQLORCH_ENV") or None, "SQLORCH_ENV")


def _state_location(
    raw: Mapping[str, Any],
    env: Mapping[str, str],
    settings_file: Path | None,
    base: Path,
    proj: Path,
) -> tuple[Path, str | None]:
    """Return the SQLite state file and the PostgreSQL state URL (None: the SQLite store)."""
    state_url = env.get("SQLORCH_STATE_URL") or raw.get("state_url")
    where = "SQLORCH_STATE_URL" if env.get("SQLORCH_STATE_URL") else f"state_url in {settings_file}"
    if state_url and is_postgres_url(str(state_url)):
        return proj / ".sqlorch" / "state.db", str(state_url)
    if state_url:
        return _state_path(str(state_url), base, where), None
    return proj / ".sqlorch" / "state.db", None


def _plain_tables(
    raw: Mapping[str, Any], settings_file: Path | None
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Return the `checks`, `retries`, `dlt` and `daemon` tables, refusing malformed ones."""
    checks = raw.get("checks", {})
    if not isinstance(checks, dict):
        raise ConfigError(_bad(settings_file, "checks", "a table of selector = {check = ...}"))
    retries = raw.get("retries", {})
    if not isinstance(retries, dict) or not all(isinstance(v, dict) for v in retries.values()):
        raise ConfigError(
            _bad(settings_file, "retries", 'a table of selector = {retries = 3, backoff = "..."}')
        )
    dlt = raw.get("dlt", {})
    if not isinstance(dlt, dict) or not all(isinstance(v, str) for v in dlt.values()):
        raise ConfigError(_bad(settings_file, "dlt", 'a table of dataset = "module:function"'))
    daemon = raw.get("daemon", {})
    if not isinstance(daemon, dict):
        raise ConfigError(_bad(settings_file, "daemon", "a table (max_concurrent_runs = 1, ...)"))
    return checks, retries, dlt, daemon


#: an environment's name: it starts schema names (`pr_123__marts`), so a plain identifier
_ENVIRONMENT_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")


def check_environment(name: str, where: str = "The environment") -> str:
    """Return `name` when it can name an environment.

    Raises:
        ConfigError: it is not lower-case letters, digits and `_` (starting with a letter, at
            most 40), or holds `__` (which separates it from the schema name).
    """
    if not _ENVIRONMENT_NAME.fullmatch(name) or "__" in name or name.endswith("_"):
        raise ConfigError(
            f"{where} {name!r} cannot name an environment: use lower-case letters, digits and "
            "single underscores, starting with a letter, at most 40 characters (e.g. pr_123). "
            "It starts the schema of every relation the environment writes (pr_123__marts)."
        )
    return name


def with_environment(
    settings: Settings, environment: str | None, where: str = "The environment"
) -> Settings:
    """`settings` for `environment` (None: production): its own state file or schema.

    SQLite state goes to `.sqlorch/envs/NAME/` (next to a custom state file: `envs/NAME/`
    beside it); a PostgreSQL state URL gets the schema `NAME__sqlorch` (or `NAME__` + the
    URL's `?schema=`). Production's state is never written by an environment's build.

    Raises:
        ConfigError: the name cannot name an environment.
    """
    path, url = settings.production_state or (settings.state_path, settings.state_url)
    if environment is None:
        return dataclasses.replace(
            settings, environment=None, state_path=path, state_url=url, production_state=None
        )
    name = check_environment(environment, where)
    default = settings.project_dir / ".sqlorch" / "state.db"
    env_path = (
        settings.project_dir / ".sqlorch" / "envs" / name / "state.db"
        if path == default
        else path.parent / "envs" / name / path.name
    )
    return dataclasses.replace(
        settings,
        environment=name,
        state_path=env_path,
        state_url=_environment_url(url, name) if url else None,
        production_state=(path, url),
    )


def _environment_url(url: str, name: str) -> str:
    """`url` with `?schema=` moved into the environment (`NAME__sqlorch`)."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), "sqlorch")
    rest = [(k, v) for k, v in query if k != "schema"]
    return urlunsplit(parts._replace(query=urlencode([*rest, ("schema", f"{name}__{schema}")])))


def _execution(raw: Any, path: Path | None) -> dict[str, str]:
    """Read `execution`: "native" | "dbt", or a table of `default` / selector = mode."""
    what = (
        '"native" or "dbt", or a table like {default = "native", "tag:legacy" = "dbt"} '
        "(native: sqlorch runs dbt's compiled SQL where it reproduces dbt exactly; dbt: dbt "
        "executes the nodes)"
    )
    if raw is None:
        return {}
    table = {"default": raw} if isinstance(raw, str) else raw
    if not isinstance(table, dict) or not all(
        isinstance(v, str) and v in ("native", "dbt") for v in table.values()
    ):
        raise ConfigError(_bad(path, "execution", what))
    return {str(k): str(v) for k, v in table.items()}


def _tables(
    raw: Mapping[str, Any], name: str, path: Path | None, example: str
) -> dict[str, dict[str, Any]]:
    """Read a table of named tables (`[tool.sqlorch.schedules.nightly]`, ...)."""
    value = raw.get(name, {})
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise ConfigError(_bad(path, name, f"a table of name = {{...}} tables, e.g. {example}"))
    return {str(k): dict(v) for k, v in value.items()}


def _settings_for(start: Path) -> tuple[Path | None, dict[str, Any]]:
    """Find the settings that apply to a command started in `start`: (file, its table)."""
    settings_file, raw = _find_settings(start)
    if (
        settings_file is not None
        and settings_file.parent != start
        and (start / "dbt_project.yml").is_file()
    ):
        # settings of an enclosing repo apply only if they point at this dbt project
        pointed = (settings_file.parent / str(raw.get("project_dir", "."))).resolve()
        if pointed != start:
            return None, {}
    return settings_file, raw


def _project_dir(project_dir: str | Path | None, raw: Mapping[str, Any], base: Path) -> Path:
    """Resolve the dbt project folder: the flag, else the settings, else the settings' folder."""
    if project_dir:
        proj = Path(project_dir).resolve()
    elif "project_dir" in raw:
        proj = (base / str(raw["project_dir"])).resolve()
    else:
        proj = base
    if not (proj / "dbt_project.yml").is_file():
        raise ConfigError(
            f"No dbt_project.yml in {proj}. Run sqlorch in a dbt project folder, pass "
            "--project-dir, or set `project_dir` under [tool.sqlorch] in pyproject.toml."
        )
    return proj


def _modules(
    raw: Mapping[str, Any], name: str, default: list[str], path: Path | None
) -> tuple[str, ...]:
    """Read a list of module folders or names (a single string is a list of one)."""
    value = raw.get(name, default)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(i, str) for i in value):
        raise ConfigError(_bad(path, name, "a list of module folders or names"))
    return tuple(value)


def _threads(
    threads: int | None, raw: Mapping[str, Any], env: Mapping[str, str], path: Path | None
) -> int:
    """Resolve the worker count: the flag, else SQLORCH_THREADS, else the settings, else 4."""
    n_threads = threads or _int(env.get("SQLORCH_THREADS"), "SQLORCH_THREADS", None)
    if n_threads is None:
        value = raw.get("threads", raw.get("max_concurrency", 4))
        if not isinstance(value, int) or value < 1:
            raise ConfigError(_bad(path, "threads", "a positive integer"))
        n_threads = value
    if n_threads < 1:
        raise ConfigError("--threads must be a positive integer.")
    return n_threads


def _pools(raw: Any, path: Path | None) -> tuple[dict[str, int], dict[str, float]]:
    """Read `pools`: `name = N` (at most N at once) or `name = {limit = N, rate = R}`.

    `rate` is requests per second, shared by every asset of the pool through
    `context.throttle()`.
    """
    what = "a table of pool name = positive int, or name = {limit = N, rate = R}"
    if not isinstance(raw, dict):
        raise ConfigError(_bad(path, "pools", what))
    limits: dict[str, int] = {}
    rates: dict[str, float] = {}
    for name, value in raw.items():
        if isinstance(value, dict):
            unknown = set(value) - {"limit", "rate"}
            limit = value.get("limit")
            rate = value.get("rate")
            if (
                unknown
                or (limit is not None and (not isinstance(limit, int) or limit < 1))
                or (rate is not None and (not isinstance(rate, int | float) or rate <= 0))
            ):
                raise ConfigError(_bad(path, f"pools.{name}", what))
            if limit is not None:
                limits[name] = limit
            if rate is not None:
                rates[name] = float(rate)
        elif isinstance(value, int) and not isinstance(value, bool) and value > 0:
            limits[name] = value
        else:
            raise ConfigError(_bad(path, f"pools.{name}", what))
    return limits, rates


def _find_settings(start: Path) -> tuple[Path | None, dict[str, Any]]:
    """Find the nearest sqlorch.toml or pyproject.toml with [tool.sqlorch], walking up."""
    for folder in (start, *start.parents):
        own = folder / "sqlorch.toml"
        if own.is_file():
            return own, _read_toml(own)
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            data = _read_toml(pyproject)
            section = data.get("tool", {}).get("sqlorch")
            if section is not None:
                if not isinstance(section, dict):
                    raise ConfigError(f"[tool.sqlorch] in {pyproject} must be a table.")
                _check_keys(section, pyproject)
                return pyproject, section
        if (folder / ".git").exists():
            break
    return None, {}


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}. Fix the file and run again.") from exc


def _check_keys(section: Mapping[str, Any], path: Path) -> None:
    unknown = sorted(set(section) - _KNOWN)
    if unknown:
        raise ConfigError(
            f"Unknown setting(s) {', '.join(unknown)} under [tool.sqlorch] in {path}. "
            f"Known settings: {', '.join(sorted(_KNOWN))}."
        )


def _profiles_dir(
    flag: str | Path | None, raw: Mapping[str, Any], base: Path, env: Mapping[str, str]
) -> Path | None:
    """Find profiles.yml the way dbt does, with the settings file between env and defaults."""
    if flag:
        return Path(flag).resolve()
    if env.get("DBT_PROFILES_DIR"):
        return Path(env["DBT_PROFILES_DIR"]).resolve()
    if raw.get("profiles_dir"):
        return (base / str(raw["profiles_dir"])).resolve()
    return None


def is_postgres_url(url: str) -> bool:
    """Whether a state URL names a PostgreSQL database."""
    return url.startswith(("postgresql://", "postgres://"))


def mask_url(url: str) -> str:
    """`url` with its password (and any `password=` parameter) replaced by `****`."""
    scheme, sep, rest = url.partition("://")
    masked = url
    if sep and "@" in rest:
        # the user info ends at the LAST `@` (a password may hold `@`, `/`, `?`, `#` unquoted)
        userinfo, _, host = rest.rpartition("@")
        if ":" in userinfo:
            masked = f"{scheme}://{userinfo.split(':', 1)[0]}:****@{host}"
    return re.sub(r"(?i)(password=)[^&\s]*", r"\1****", masked)


def _state_path(url: str, base: Path, where: str) -> Path:
    if url.startswith("sqlite:///"):
        url = url[len("sqlite:///") :]
    elif "://" in url:
        raise ConfigError(
            f"The state URL {mask_url(url)!r} ({where}) is not supported: use a SQLite file "
            "path (or sqlite:///path), or a PostgreSQL URL "
            "(postgresql://user:password@host:port/dbname)."
        )
    path = Path(url)
    return path if path.is_absolute() else (base / path).resolve()


def _int(value: str | None, name: str, default: int | None) -> int | None:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not an integer.") from None


def _opt_str(raw: Mapping[str, Any], key: str, path: Path | None) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(_bad(path, key, "a string"))
    return value


def _bad(path: Path | None, key: str, what: str) -> str:
    return f"Setting `{key}` under [tool.sqlorch] in {path} must be {what}."


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|m|s)")


def parse_duration(value: Any, where: str) -> float:
    """Return seconds of a duration like `26h`, `90m`, `1d12h`, `45s` (or a number of seconds).

    Raises:
        ConfigError: the value is not a duration.
    """
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    text = str(value).strip().lower().replace(" ", "")
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ConfigError(
            f"{where}: {value!r} is not a duration. Write e.g. 26h, 90m, 1d12h or 45s."
        )
    unit = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    return float(sum(float(n) * unit[u] for n, u in parts))
