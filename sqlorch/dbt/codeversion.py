"""Code versions of dbt nodes: raw code, the macros they call, config, vars, target.

dbt's own `checksum` covers only the node's file, so a changed macro or var goes unnoticed
by `state:modified` (a known blind spot). Here each node's version is built from:

- `sql`: its raw code, normalized (formatting and comments do not count); for seeds the CSV;
- `config`: its resolved config, minus keys that do not change the output (tags, docs, ...);
- `macro:<name>`: every macro it calls, transitively (a macro's own code, normalized);
- `var:<name>`: the value of every var its code or its macros read;
- `env:<name>`: likewise every environment variable read with `env_var()` (its value
  hashed; `DBT_ENV_SECRET_*` never counts);
- `target`: the adapter type, database/path and schema the node is written to;
- `graph`: for a node whose code (or a macro it calls) reads dbt's `graph` variable, the
  set of the project's node, source and exposure ids: SQL generated from the project
  changes when a model is added or removed.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

from sqlorch.core.codeversion import digest, normalize_sql

# config keys that do not change a node's output
_CONFIG_NOISE = frozenset(
    {"tags", "docs", "group", "access", "persist_docs", "meta", "description", "enabled"}
)
_VAR_CALL = re.compile(r"""\bvar\(\s*['"]([\w.\-]+)['"]""")
_ENV_CALL = re.compile(r"""\benv_var\(\s*['"]([\w.\-]+)['"]""")
_UNDEFINED = "\0undefined"
# Jinja reading dbt's `graph` context variable: graph.nodes, graph['sources'], ...
_GRAPH_USE = re.compile(r"\bgraph\s*(?:\.|\[)")
_READS_GRAPH = "\0graph"  # among the names a node reads: it reads the project's graph


def dbt_code_parts(
    manifest: Mapping[str, Any],
    *,
    project_vars: Mapping[str, Any],
    target: Mapping[str, Any],
    project_dir: Path,
    sql_digests: MutableMapping[str, str] | None = None,
) -> dict[str, dict[str, str]]:
    """Return unique_id -> code parts for every model, seed and snapshot of `manifest`.

    Args:
        manifest: the manifest.json document.
        project_vars: `vars:` of dbt_project.yml (plus any passed on the command line).
        target: what identifies where nodes are written (adapter type, database, schema).
        project_dir: the dbt project folder (seeds are hashed from their CSV files).
        sql_digests: sha256 of a node's or macro's code -> its normalized digest, from the
            last parse (normalizing is most of the work: ~0.15 s at 1000 models); replaced
            by the entries this manifest uses.
    """
    memo = _Normalized(sql_digests)
    macros: Mapping[str, Any] = manifest.get("macros", {})
    packages = {m.get("package_name") for m in macros.values()}
    root = (manifest.get("metadata") or {}).get("project_name")
    target_part = digest(dict(target))
    graph_part = digest(
        sorted(
            uid
            for section in ("nodes", "sources", "exposures", "metrics", "semantic_models")
            for uid in manifest.get(section) or {}
        )
    )
    closures = _MacroClosures(macros, root, memo)
    out: dict[str, dict[str, str]] = {}
    for uid, n in manifest.get("nodes", {}).items():
        rtype = n.get("resource_type")
        if rtype not in ("model", "seed", "snapshot"):
            continue
        raw = n.get("raw_code") or ""
        if rtype == "seed":
            sql_part = _seed_hash(n, project_dir)
        else:
            sql_part = memo.digest(raw)
        config = n.get("config") or {}
        kept = {k: v for k, v in config.items() if k not in _CONFIG_NOISE}
        sqlorch_meta = (config.get("meta") or {}).get("sqlorch")
        if sqlorch_meta:
            kept["meta.sqlorch"] = sqlorch_meta
        parts = {"sql": sql_part, "config": digest(kept), "target": target_part}
        read = _reads(raw)
        for dep in (n.get("depends_on") or {}).get("macros", ()):
            mparts, mread = closures.of(dep, frozenset())
            parts.update({f"macro:{k}": v for k, v in mparts.items()})
            read |= mread
        if _READS_GRAPH in read:
            read.discard(_READS_GRAPH)
            parts["graph"] = graph_part
        for name in sorted(r for r in read if r.startswith("\0env:")):
            read.discard(name)
            env_name = name[5:]
            # SQLORCH_ENV moves relations into an environment; it never changes their content
            if not env_name.startswith("DBT_ENV_SECRET") and env_name != "SQLORCH_ENV":
                parts[f"env:{env_name}"] = digest(repr(os.environ.get(env_name)))
        package = n.get("package_name")
        for var in sorted(read):
            parts[f"var:{var}"] = digest(_var_value(var, package, project_vars, packages))
        out[uid] = parts
    memo.keep_used()
    return out


class _Normalized:
    """`digest(normalize_sql(code))`, remembered by the code's sha256 across parses."""

    def __init__(self, known: MutableMapping[str, str] | None) -> None:
        self._out = known
        self._known = dict(known or {})
        self._used: dict[str, str] = {}

    def digest(self, code: str) -> str:
        """The normalized code's digest."""
        key = hashlib.sha256(code.encode()).hexdigest()
        got = self._used.get(key) or self._known.get(key)
        if got is None:
            got = digest(normalize_sql(code))
        self._used[key] = got
        return got

    def keep_used(self) -> None:
        """Leave in the caller's mapping exactly the entries this manifest used."""
        if self._out is not None:
            self._out.clear()
            self._out.update(self._used)


def _reads(sql: str) -> set[str]:
    """Return the vars, env vars (as `NUL + "env:NAME"`) and graph use that `sql` reads."""
    read = set(_VAR_CALL.findall(sql)) | {f"\0env:{e}" for e in _ENV_CALL.findall(sql)}
    if _GRAPH_USE.search(sql):
        read.add(_READS_GRAPH)
    return read


class _MacroClosures:
    """The code parts and reads of a macro and every macro it calls, memoized."""

    def __init__(self, macros: Mapping[str, Any], root: str | None, memo: _Normalized) -> None:
        self._macros = macros
        self._root = root
        self._memo = memo
        self._cache: dict[str, tuple[dict[str, str], frozenset[str]]] = {}

    def of(self, uid: str, seen: frozenset[str]) -> tuple[dict[str, str], frozenset[str]]:
        """Return (macro name -> hash, what it reads) of `uid` and the macros it calls."""
        if uid in self._cache:
            return self._cache[uid]
        m = self._macros.get(uid)
        if m is None:
            return {}, frozenset()
        sql = m.get("macro_sql") or ""
        name = m.get("name", uid)
        if m.get("package_name") not in (self._root, None):
            name = f"{m.get('package_name')}.{name}"
        parts = {name: self._memo.digest(sql)}
        read = _reads(sql)
        for dep in (m.get("depends_on") or {}).get("macros", ()):
            if dep not in seen:
                p, r = self.of(dep, seen | {uid})
                parts.update(p)
                read |= r
        result = (parts, frozenset(read))
        self._cache[uid] = result
        return result


def _var_value(
    name: str, package: str | None, project_vars: Mapping[str, Any], packages: set[Any]
) -> Any:
    """The value dbt resolves for var `name` in `package` (package-scoped over global)."""
    scoped = project_vars.get(package) if package else None
    if isinstance(scoped, Mapping) and name in scoped:
        return scoped[name]
    if name in project_vars and name not in packages:
        return project_vars[name]
    return _UNDEFINED


def _seed_hash(node: Mapping[str, Any], project_dir: Path) -> str:
    checksum = node.get("checksum") or {}
    if checksum.get("name") == "sha256" and checksum.get("checksum"):
        return str(checksum["checksum"])[:16]
    # dbt checksums large seeds by path only: hash the file itself
    root = Path(node.get("root_path") or project_dir)
    path = root / (node.get("original_file_path") or "")
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError:
        return digest(checksum)
