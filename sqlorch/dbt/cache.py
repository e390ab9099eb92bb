"""The manifest cache: reuse the last parsed dbt project when none of its inputs changed.

Importing dbt costs about a second and even a partial parse of a large project a few more;
a no-op `sqlorch build` must cost neither. The cache keeps sqlorch's compact `DbtProject`
(code versions included) next to a fingerprint of everything dbt reads to parse:

- every file under the project's model, macro, seed, snapshot, test, analysis and docs
  paths and its installed packages, plus dbt_project.yml, packages.yml, dependencies.yml,
  package-lock.yml, selectors.yml and profiles.yml;
- the target name, dbt's version, the project vars, the `DBT_*` environment variables
  that can change a parse (not logging, colours, usage statistics and such run-time flags),
  and every variable the project reads with `env_var('NAME')` (found in its files).

A file is compared by size and modification time first; when those differ its content
hash decides, so touching a file (or a fresh checkout) does not force a parse. The cache
file never holds credentials: profiles are hashed, not stored.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlorch.dbt.manifest import DbtProject

log = logging.getLogger(__name__)

# 2: native-execution facts in node metadata (issue 16); 3: env_var() values (issue 18);
# 4: incremental facts (issue 16)
FORMAT = 4
_ROOT_FILES = (
    "dbt_project.yml",
    "packages.yml",
    "dependencies.yml",
    "package-lock.yml",
    "selectors.yml",
)
_PATH_KEYS = {
    "model-paths": ["models"],
    "macro-paths": ["macros"],
    "seed-paths": ["seeds"],
    "snapshot-paths": ["snapshots"],
    "test-paths": ["tests"],
    "analysis-paths": ["analyses"],
    "docs-paths": [],
}
_SKIP_DIRS = {"__pycache__", "node_modules"}
# dbt flags that change how a command runs or talks, never what a parse produces
_RUN_TIME_FLAGS = frozenset(
    {
        "DBT_SEND_ANONYMOUS_USAGE_STATS",
        "DBT_USE_COLORS",
        "DBT_USE_COLORS_FILE",
        "DBT_LOG_FORMAT",
        "DBT_LOG_FORMAT_FILE",
        "DBT_LOG_LEVEL",
        "DBT_LOG_LEVEL_FILE",
        "DBT_LOG_PATH",
        "DBT_LOG_FILE_MAX_BYTES",
        "DBT_LOG_CACHE_EVENTS",
        "DBT_QUIET",
        "DBT_DEBUG",
        "DBT_PRINT",
        "DBT_PRINTER_WIDTH",
        "DBT_VERSION_CHECK",
        "DBT_FAIL_FAST",
        "DBT_INTROSPECT",
        "DBT_CACHE_SELECTED_ONLY",
        "DBT_PARTIAL_PARSE",
        "DBT_PARTIAL_PARSE_FILE_DIFF",
        "DBT_STATIC_PARSER",
        "DBT_WRITE_JSON",
        "DBT_INVOCATION_ENV",
        "DBT_TARGET_PATH",
        "DBT_THREADS",
        "DBT_FULL_REFRESH",
        "DBT_INDIRECT_SELECTION",
        "DBT_STORE_FAILURES",
        "DBT_EMPTY",
        "DBT_DEFER",
        "DBT_FAVOR_STATE",
        "DBT_STATE",
        "DBT_DEFER_STATE",
        "DBT_RECORDER_MODE",
        "DBT_SHOW_RESOURCE_REPORT",
        "DBT_UPLOAD_TO_ARTIFACTS_INGEST_API",
    }
)
# `env_var('NAME')` / `env_var("NAME", default)` in a project file
_ENV_VAR = re.compile(rb"""env_var\(\s*['"]([^'"]+)['"]""")

Stat = tuple[int, int]  # size, mtime_ns


@dataclass(slots=True)
class _Entry:
    format: int
    context: str
    dirs: list[str]
    files: dict[str, tuple[Stat, str]]  # relative path -> (stat, sha256)
    project: DbtProject
    extra: dict[str, Any] = field(default_factory=dict)
    # the variables the project's files read with env_var(), and their values at the parse
    env: dict[str, str | None] = field(default_factory=dict)


def input_dirs(project_dir: Path, project_file: Mapping[str, Any]) -> list[str]:
    """Return the project-relative folders dbt reads (from dbt_project.yml, with defaults)."""
    dirs: list[str] = []
    for key, default in _PATH_KEYS.items():
        value = project_file.get(key, default)
        if isinstance(value, str):
            value = [value]
        dirs.extend(str(v) for v in value or ())
    dirs.append(str(project_file.get("packages-install-path", "dbt_packages")))
    return sorted(dict.fromkeys(dirs))


def _walk(root: Path, rel: str) -> Iterator[tuple[str, os.stat_result]]:
    """Every file under `root/rel`, following symlinks but never into a folder twice.

    `dbt deps` links a `local:` package into dbt_packages/; `local: ../` links a folder
    that holds dbt_packages/ itself: a loop that a plain walk follows until the path is too
    long. Each real folder is entered once (by device and inode), as dbt reads it.
    """
    base = root / rel
    stack = [base]
    seen: set[tuple[int, int]] = set()
    while stack:
        folder = stack.pop()
        try:
            st = folder.stat()
            entries = list(os.scandir(folder))
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        for e in entries:
            if e.name.startswith(".") or e.name in _SKIP_DIRS:
                continue
            try:
                if e.is_dir(follow_symlinks=True):
                    stack.append(Path(e.path))
                elif e.is_file(follow_symlinks=True):
                    yield os.path.relpath(e.path, root), e.stat()
            except OSError:  # a dangling or looping link: dbt skips it too
                continue


def scan(project_dir: Path, dirs: list[str], extra_files: list[Path]) -> dict[str, Stat]:
    """Return relative path -> (size, mtime_ns) of every input file."""
    out: dict[str, Stat] = {}
    for name in _ROOT_FILES:
        try:
            st = (project_dir / name).stat()
        except OSError:
            continue
        out[name] = (st.st_size, st.st_mtime_ns)
    for path in extra_files:
        try:
            st = path.stat()
        except OSError:
            continue
        out[str(path)] = (st.st_size, st.st_mtime_ns)
    for rel in dirs:
        for found, st in _walk(project_dir, rel):
            out[found] = (st.st_size, st.st_mtime_ns)
    return out


def _sha(project_dir: Path, rel: str) -> str:
    return _read(project_dir, rel)[0]


def _read(project_dir: Path, rel: str) -> tuple[str, set[str]]:
    """A file's sha256 and the environment variables it reads with env_var()."""
    try:
        data = (project_dir / rel).read_bytes()
    except OSError:
        return "", set()
    names = {m.decode(errors="replace") for m in _ENV_VAR.findall(data)}
    return hashlib.sha256(data).hexdigest(), names


def _env_values(names: Iterable[str]) -> dict[str, str | None]:
    """The current values of environment variables (hashed, never stored)."""
    return {
        n: hashlib.sha256(v.encode()).hexdigest() if (v := os.environ.get(n)) is not None else None
        for n in sorted(names)
    }


class ManifestCache:
    """One cache file for one dbt project and target."""

    def __init__(self, path: Path, project_dir: Path) -> None:
        self.path = path
        self.project_dir = project_dir

    def load(self, context: str, extra_files: list[Path]) -> DbtProject | None:
        """Return the cached project if no input changed since it was stored, else None."""
        try:
            with self.path.open("rb") as fh:
                entry = pickle.load(fh)
        except FileNotFoundError:
            return None
        except Exception:  # noqa: BLE001 - a corrupt or old cache is only a cache miss
            log.debug("manifest cache unreadable", exc_info=True)
            return None
        if not isinstance(entry, _Entry) or entry.format != FORMAT or entry.context != context:
            return None
        if _env_values(list(entry.env)) != entry.env:
            log.debug("manifest cache: an environment variable read with env_var() changed")
            return None
        now = scan(self.project_dir, entry.dirs, extra_files)
        if set(now) != set(entry.files):
            return None
        touched = {p: st for p, st in now.items() if entry.files[p][0] != st}
        if not touched:
            return entry.project
        for rel, st in touched.items():
            digest = _sha(self.project_dir, rel)
            if digest != entry.files[rel][1]:
                log.debug("manifest cache: %s changed", rel)
                return None
            entry.files[rel] = (st, digest)
        self._write(entry)  # same content, new times: next time the stat check suffices
        return entry.project

    def store(
        self,
        context: str,
        dirs: list[str],
        files: dict[str, Stat],
        project: DbtProject,
    ) -> None:
        """Remember `project` as the parse of the inputs whose stats are `files`.

        `files` must be the scan taken BEFORE the parse: a file edited during the parse then
        shows up as changed next time instead of being wrongly taken as parsed.
        """
        digests: dict[str, tuple[Stat, str]] = {}
        names: set[str] = set()
        for rel, st in files.items():
            digest, read = _read(self.project_dir, rel)
            digests[rel] = (st, digest)
            names |= read
        entry = _Entry(
            format=FORMAT,
            context=context,
            dirs=dirs,
            files=digests,
            project=project,
            env=_env_values(names),
        )
        self._write(entry)

    def _write(self, entry: _Entry) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        try:
            with tmp.open("wb") as fh:
                pickle.dump(entry, fh, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, self.path)
        except OSError:
            log.debug("could not write the manifest cache", exc_info=True)
            tmp.unlink(missing_ok=True)


def context_key(parts: Mapping[str, Any]) -> str:
    """Hash what is not a file but changes the parse (target, env, sqlorch's own code).

    Every module of the sqlorch package counts by path, size and modification time: an
    upgraded sqlorch, an edited checkout or a moved module never reads a cache written by
    other code. (Listing the modules that matter by hand went stale
    silently when a module moved.)
    """
    env = {k: v for k, v in os.environ.items() if k.startswith("DBT_") and k not in _RUN_TIME_FLAGS}
    return _digest({**{str(k): str(v) for k, v in parts.items()}, "env": repr(env)}, _code_stamp())


def _code_stamp() -> str:
    """Describe sqlorch's own code: (path, size, mtime) of every module of the package."""
    package = Path(__file__).resolve().parent.parent
    code = []
    for path in sorted(package.rglob("*.py")):
        st = path.stat()
        code.append((path.relative_to(package).as_posix(), st.st_size, st.st_mtime_ns))
    return repr(code)


def _digest(parts: Mapping[str, str], code: str) -> str:
    doc = {**parts, "code": code}
    return hashlib.sha256(repr(sorted(doc.items())).encode()).hexdigest()
