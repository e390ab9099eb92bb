"""Translate a dbt `manifest.json` into asset and check nodes (dict access stays here)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlorch.core.graph import AssetKind, AssetNode, CheckNode, Column
from sqlorch.core.partitions.definitions import PartitionsDefinition, StaticKeys, from_config
from sqlorch.core.partitions.mappings import (
    MAPPING_SYNTAX,
    MappingKind,
    PartitionMapping,
    mapping_from_config,
)
from sqlorch.errors import PartitionError, ProjectError

_KINDS = {"model": AssetKind.MODEL, "seed": AssetKind.SEED, "snapshot": AssetKind.SNAPSHOT}
RUNNABLE_TYPES = frozenset({"model", "seed", "snapshot", "test", "unit_test"})


@dataclass(frozen=True, slots=True)
class DbtSource:
    """A dbt source: `key` is the relation it reads; it becomes an asset or merges into one."""

    unique_id: str
    key: str
    source_name: str
    name: str
    file: str | None
    fqn: tuple[str, ...]
    description: str
    tags: tuple[str, ...]
    package: str
    columns: tuple[Column, ...]
    # the column saying when a row was loaded (dbt source freshness), if declared
    loaded_at_field: str | None = None


@dataclass(frozen=True, slots=True)
class DbtProject:
    """What sqlorch keeps of a parsed dbt project."""

    name: str
    assets: tuple[AssetNode, ...]
    sources: tuple[DbtSource, ...]
    checks: tuple[CheckNode, ...]
    # unique_id -> fqn of every node `dbt build` can run (used to compress selections)
    runnable_fqns: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # unique_ids of ephemeral models (always "covered" when compressing selections)
    ephemeral: frozenset[str] = frozenset()
    hook_count: int = 0
    adapter_type: str | None = None


def _key(schema: str | None, name: str) -> str:
    return f"{schema or 'main'}.{name}".lower()


def _columns(raw: Mapping[str, Any] | None) -> tuple[Column, ...]:
    if not raw:
        return ()
    return tuple(Column(c.get("name", n), c.get("data_type") or "") for n, c in raw.items())


def read_manifest(manifest: Mapping[str, Any]) -> DbtProject:
    """Turn a manifest.json document into a `DbtProject`.

    Ephemeral models are not assets (they produce no relation): their dependencies are
    passed through to the models that use them.

    Raises:
        ProjectError: the manifest is not a dbt manifest.
    """
    try:
        nodes: Mapping[str, Any] = manifest["nodes"]
        sources_raw: Mapping[str, Any] = manifest.get("sources", {})
        unit_tests: Mapping[str, Any] = manifest.get("unit_tests", {})
        meta = manifest.get("metadata", {})
    except (KeyError, TypeError) as exc:
        raise ProjectError(f"Not a dbt manifest (missing {exc}).") from exc
    project_name = str(meta.get("project_name") or "")

    key_of: dict[str, str] = {}
    ephemeral: dict[str, tuple[str, ...]] = {}
    for uid, n in nodes.items():
        rtype = n.get("resource_type")
        if rtype not in _KINDS:
            continue
        if n.get("config", {}).get("materialized") == "ephemeral":
            ephemeral[uid] = tuple(n.get("depends_on", {}).get("nodes", ()))
            continue
        key_of[uid] = _key(n.get("schema"), n.get("alias") or n["name"])

    sources: list[DbtSource] = []
    for uid, s in sources_raw.items():
        key = _key(s.get("schema"), s.get("identifier") or s["name"])
        key_of[uid] = key
        sources.append(
            DbtSource(
                unique_id=uid,
                key=key,
                source_name=s.get("source_name", ""),
                name=s["name"],
                file=s.get("original_file_path"),
                fqn=tuple(s.get("fqn", ())),
                description=s.get("description") or "",
                tags=tuple(s.get("tags", ())),
                package=s.get("package_name", ""),
                columns=_columns(s.get("columns")),
                loaded_at_field=s.get("loaded_at_field") or None,
            )
        )

    def resolve(dep_ids: Any, seen: frozenset[str] = frozenset()) -> list[str]:
        out: list[str] = []
        for dep in dep_ids:
            if dep in key_of:
                out.append(key_of[dep])
            elif dep in ephemeral and dep not in seen:
                out.extend(resolve(ephemeral[dep], seen | {dep}))
        return out

    # what each model's data tests compile from (sqlorch.dbt.templates keeps them compiled)
    macros_raw: Mapping[str, Any] = manifest.get("macros", {}) or {}
    test_inputs: dict[str, list[str]] = {}
    for uid, n in nodes.items():
        if n.get("resource_type") != "test":
            continue
        config = n.get("config") or {}
        depends = n.get("depends_on") or {}
        text = json.dumps(
            [
                uid,
                n.get("raw_code") or "",
                (n.get("checksum") or {}).get("checksum"),
                n.get("test_metadata"),
                {k: config.get(k) for k in _TEST_CONFIG},
                [(macros_raw.get(m) or {}).get("macro_sql") for m in depends.get("macros") or ()],
            ],
            sort_keys=True,
            default=str,
        )
        for dep in depends.get("nodes") or ():
            test_inputs.setdefault(dep, []).append(text)

    def parent_names(uid: str) -> tuple[str, frozenset[str]]:
        """How a model may name its parent `uid` in `meta.sqlorch.deps`: (shown, accepted)."""
        if uid in sources_raw:
            s = sources_raw[uid]
            shown = f"{s.get('source_name')}.{s['name']}"
            names = {shown, s["name"], key_of[uid]}
        elif uid in nodes:
            p = nodes[uid]
            shown = p["name"]
            names = {shown, p.get("alias") or shown, f"{p.get('package_name')}.{shown}"}
            if uid in key_of:
                names.add(key_of[uid])
        else:
            shown, names = uid, set()
        return shown, frozenset(x.lower() for x in (*names, uid))

    assets: list[AssetNode] = []
    checks: list[CheckNode] = []
    runnable: dict[str, tuple[str, ...]] = {}
    hooks = 0
    for uid, n in nodes.items():
        rtype = n.get("resource_type")
        config = n.get("config", {}) or {}
        if rtype == "operation":
            hooks += 1
            continue
        if rtype in RUNNABLE_TYPES:
            runnable[uid] = tuple(n.get("fqn", ()))
        if rtype in _KINDS and uid in key_of:
            parent_ids = tuple(n.get("depends_on", {}).get("nodes", ()))
            deps = tuple(dict.fromkeys(resolve(parent_ids)))
            partitions, per_run, meta = _partitions(n, config)
            if partitions is not None:
                tests = test_inputs.get(uid)
                meta.update(_direct_facts(n, config, nodes, sources_raw, macros_raw, tests))

            mappings = _dep_mappings(
                n,
                key_of[uid],
                partitions,
                {p: parent_names(p) for p in dict.fromkeys(parent_ids)},
                lambda p: tuple(dict.fromkeys(resolve((p,)))),
            )
            assets.append(
                AssetNode(
                    key=key_of[uid],
                    kind=_KINDS[rtype],
                    name=n["name"],
                    deps=deps,
                    fqn=tuple(n.get("fqn", ())),
                    file=n.get("original_file_path"),
                    description=n.get("description") or "",
                    tags=tuple(n.get("tags", ())),
                    package=n.get("package_name"),
                    unique_id=uid,
                    materialized=config.get("materialized"),
                    columns=_columns(n.get("columns")),
                    code_version=(n.get("checksum") or {}).get("checksum"),
                    metadata=meta,
                    partitions=partitions,
                    partition_mappings=mappings,
                    max_partitions_per_run=per_run,
                )
            )
        elif rtype == "test":
            tested = tuple(dict.fromkeys(resolve(n.get("depends_on", {}).get("nodes", ()))))
            checks.append(
                CheckNode(
                    unique_id=uid,
                    name=n["name"],
                    asset_keys=tested,
                    fqn=tuple(n.get("fqn", ())),
                    file=n.get("original_file_path"),
                    severity=str(config.get("severity") or "error"),
                    tags=tuple(n.get("tags", ())),
                )
            )
    for uid, u in unit_tests.items():
        runnable[uid] = tuple(u.get("fqn", ()))
        tested = tuple(dict.fromkeys(resolve(u.get("depends_on", {}).get("nodes", ()))))
        checks.append(
            CheckNode(
                unique_id=uid,
                name=u["name"],
                asset_keys=tested,
                fqn=tuple(u.get("fqn", ())),
                file=u.get("original_file_path"),
                is_unit_test=True,
            )
        )
    for uid in ephemeral:
        runnable[uid] = tuple(nodes[uid].get("fqn", ()))
    return DbtProject(
        name=project_name,
        assets=tuple(assets),
        sources=tuple(sources),
        checks=tuple(checks),
        runnable_fqns=runnable,
        ephemeral=frozenset(ephemeral),
        hook_count=hooks,
        adapter_type=meta.get("adapter_type"),
    )


_MICROBATCH_GRAINS = {"hour": "hourly", "day": "daily", "month": "monthly"}


_ENV_VAR_RE = re.compile(r"""env_var\(\s*['"]([^'"]+)['"]""")


_TEST_CONFIG = (
    "severity",
    "warn_if",
    "error_if",
    "fail_calc",
    "limit",
    "where",
    "store_failures",
    "store_failures_as",
    "sql_header",
)


def _direct_facts(
    n: Mapping[str, Any],
    config: Mapping[str, Any],
    nodes: Mapping[str, Any],
    sources: Mapping[str, Any],
    macros: Mapping[str, Any],
    tests: list[str] | None = None,
) -> dict[str, Any]:
    """What sqlorch needs to write a partitioned model's windows itself (sqlorch.dbt.templates).

    `sqlorch_direct_blocker` is why dbt must run the model's materialization (empty when
    sqlorch may run dbt's compiled SQL as its own delete-then-insert of the window);
    `sqlorch_render_inputs` digests what the compiled SQL depends on beyond the model's code
    version: the relation names it renders, the code of ephemeral models it inlines, and
    its data tests (`tests`: their code, configuration and macros). `sqlorch_env_vars`
    names the environment variables its code or macros read with `env_var()`.
    """
    import hashlib

    blocker = ""
    own = (config.get("meta") or n.get("meta") or {}).get("sqlorch") or {}
    writes = own.get("window_writes", "sqlorch") if isinstance(own, Mapping) else "sqlorch"
    if writes not in ("sqlorch", "dbt"):
        file = n.get("original_file_path")
        raise ProjectError(
            f"dbt model {n.get('name')!r} ({file}): meta.sqlorch.window_writes is {writes!r}; "
            "use 'dbt' (dbt's materialization writes every partition window) or 'sqlorch' "
            "(the default: sqlorch writes windows from dbt's compiled SQL where it can).",
            file=file,
        )
    if writes == "dbt":
        blocker = "meta.sqlorch.window_writes is 'dbt'"
    elif config.get("materialized") != "incremental":
        blocker = f"materialized={config.get('materialized')!r}"
    elif n.get("language", "sql") != "sql":
        blocker = "a Python model"
    elif config.get("pre-hook") or config.get("post-hook"):
        blocker = "pre/post hooks"
    elif (config.get("contract") or {}).get("enforced"):
        blocker = "an enforced contract"
    elif config.get("grants"):
        blocker = "grants"
    elif any((config.get("persist_docs") or {}).values()):
        blocker = "persist_docs"
    elif config.get("full_refresh"):
        blocker = "full_refresh"
    parts: list[str] = [str(n.get("relation_name") or ""), *(tests or ())]
    # the code dbt renders into the model: its own, its ephemeral inputs', their macros'
    code = [str(n.get("raw_code") or "")]
    macro_ids = list((n.get("depends_on") or {}).get("macros") or ())
    stack = list((n.get("depends_on") or {}).get("nodes") or ())
    seen: set[str] = set()
    while stack:
        dep = stack.pop()
        if dep in seen:
            continue
        seen.add(dep)
        other = nodes.get(dep) or sources.get(dep) or {}
        parts.append(f"{dep}={other.get('relation_name') or ''}")
        if (other.get("config") or {}).get("materialized") == "ephemeral":
            parts.append(str((other.get("checksum") or {}).get("checksum") or ""))
            parts.append(str(other.get("raw_code") or ""))
            code.append(str(other.get("raw_code") or ""))
            macro_ids.extend((other.get("depends_on") or {}).get("macros") or ())
            stack.extend((other.get("depends_on") or {}).get("nodes") or ())
    while macro_ids:
        m = macro_ids.pop()
        if m in seen or m not in macros:
            continue
        seen.add(m)
        code.append(str(macros[m].get("macro_sql") or ""))
        macro_ids.extend((macros[m].get("depends_on") or {}).get("macros") or ())
    digest = hashlib.sha256("\n".join(sorted(parts)).encode()).hexdigest()[:20]
    relation = [n.get("database"), n.get("schema"), n.get("alias") or n.get("name")]
    return {
        "sqlorch_direct_blocker": blocker,
        "sqlorch_render_inputs": digest,
        "sqlorch_relation": relation,
        # environment variables dbt renders into the SQL (their values key the template)
        "sqlorch_env_vars": sorted({v for text in code for v in _ENV_VAR_RE.findall(text)}),
    }


def _partitions(
    n: Mapping[str, Any], config: Mapping[str, Any]
) -> tuple[PartitionsDefinition | None, int | None, dict[str, Any]]:
    """Read a model's partitions: a microbatch config, or `meta: {sqlorch: {partitions:}}`.

    Returns (definition, max partitions per invocation, the node's meta).

    Raises:
        ProjectError: the configuration does not describe valid partitions.
    """
    meta = dict(n.get("meta") or config.get("meta") or {})
    file = n.get("original_file_path")
    where = f"dbt model {n.get('name')!r} ({file})"
    raw_own = meta.get("sqlorch")
    own: Mapping[str, Any] = raw_own if isinstance(raw_own, Mapping) else {}
    per_run = own.get("max_partitions_per_run")
    if per_run is not None and (not isinstance(per_run, int) or per_run < 1):
        raise ProjectError(
            f"{where}: meta.sqlorch.max_partitions_per_run must be a whole number >= 1.",
            file=file,
        )
    try:
        if (
            config.get("incremental_strategy") == "microbatch"
            and config.get("materialized") == "incremental"
        ):
            grain = _MICROBATCH_GRAINS.get(str(config.get("batch_size", "")).lower())
            if grain is None:
                raise ProjectError(
                    f"{where} is a microbatch model with batch_size "
                    f"{config.get('batch_size')!r}; sqlorch partitions microbatch models by "
                    "hour, day or month. Use one of those batch sizes.",
                    file=file,
                )
            begin = config.get("begin")
            if not begin:
                raise ProjectError(
                    f"{where} is a microbatch model without `begin`: sqlorch cannot tell "
                    "which partitions should exist. Add `begin='2013-01-01'` (the first "
                    "event time) to its config.",
                    file=file,
                )
            start = str(begin).replace(" ", "T")[: 13 if grain == "hourly" else 10]
            if grain == "hourly":
                start += ":00"
            elif grain == "monthly":
                start = start[:7]
            raw = {"type": grain, "start": start, "column": config.get("event_time")}
            extra = own.get("partitions")
            if isinstance(extra, Mapping) and extra.get("end"):
                raw["end"] = extra["end"]
            meta["sqlorch_microbatch"] = True
            return from_config(raw, where), per_run, meta
        if own.get("partitions") is not None:
            return from_config(own["partitions"], where), per_run, meta
    except PartitionError as exc:
        raise ProjectError(exc.message, file=file) from exc
    return None, per_run, meta


def _dep_mappings(
    n: Mapping[str, Any],
    key: str,
    partitions: PartitionsDefinition | None,
    parents: Mapping[str, tuple[str, frozenset[str]]],
    keys_of: Callable[[str], tuple[str, ...]],
) -> dict[str, PartitionMapping]:
    """Read a model's partition mappings, `meta: {sqlorch: {deps: {UPSTREAM: MAPPING}}}`.

    UPSTREAM names one of the model's parents (a ref name, `source_name.table`, or the
    asset key `schema.name`); MAPPING is read by `mapping_from_config`. Returns asset key ->
    mapping (an ephemeral parent's mapping applies to the assets behind it).

    Raises:
        ProjectError: `deps` is malformed, names no parent, or the model has no partitions.
    """
    meta = n.get("meta") or (n.get("config") or {}).get("meta") or {}
    own = meta.get("sqlorch") if isinstance(meta, Mapping) else None
    raw = own.get("deps") if isinstance(own, Mapping) else None
    if raw is None:
        return {}
    file = n.get("original_file_path")
    patch = str(n.get("patch_path") or "").split("://", 1)[-1]
    where = f"dbt model {n.get('name')!r} ({file}{', ' + patch if patch else ''})"
    example = "meta: {sqlorch: {deps: {stg_events: {window: {offset: -1}}, raw.weather: all}}}"
    if not isinstance(raw, Mapping):
        raise ProjectError(
            f"{where}: meta.sqlorch.deps must map upstream names to partition mappings, like "
            f"`{example}`; got {raw!r}. Fix it in the model's config.",
            asset=key,
            file=file,
        )
    if partitions is None:
        raise ProjectError(
            f"{where} declares partition mappings in meta.sqlorch.deps but has no partitions: "
            "a mapping says which upstream partitions each of its partitions reads. Declare "
            "its partitions (meta.sqlorch.partitions, or make it a microbatch model) or remove "
            "meta.sqlorch.deps.",
            asset=key,
            file=file,
        )
    static_keys = {k for d in partitions.dimensions if isinstance(d, StaticKeys) for k in d.keys}
    accepted = ", ".join(sorted(shown for shown, _ in parents.values())) or "none"
    out: dict[str, PartitionMapping] = {}
    named: dict[str, str] = {}
    for name_raw, value in raw.items():
        name = str(name_raw)
        try:
            mapping = mapping_from_config(value)
        except PartitionError as exc:
            raise ProjectError(
                f"{where}: meta.sqlorch.deps[{name!r}] is malformed: {exc.message} Fix it in "
                "the model's config.",
                asset=key,
                file=file,
            ) from exc
        if mapping.kind is MappingKind.WINDOW and partitions.time is None:
            raise ProjectError(
                f"{where}: meta.sqlorch.deps[{name!r}] is a `window` mapping, but the model's "
                "partitions have no time dimension to offset. Use `same` or `all`, or give "
                "the model time partitions.",
                asset=key,
                file=file,
            )
        unknown = sorted(set(mapping.keys) - static_keys)
        if unknown:
            have = ", ".join(sorted(static_keys)) or "none"
            raise ProjectError(
                f"{where}: meta.sqlorch.deps[{name!r}] renames partition keys "
                f"{', '.join(unknown)}, which are not static partition keys of the model "
                f"(it has: {have}). `same: {{keys: {{DOWNSTREAM_KEY: UPSTREAM_KEY}}}}` maps "
                "the model's partition keys to the upstream's.",
                asset=key,
                file=file,
            )
        wanted = name.lower()
        hits = [uid for uid, (_shown, names) in parents.items() if wanted in names]
        if len(hits) != 1:
            problem = (
                f"names several of its parents ({', '.join(parents[h][0] for h in hits)}); "
                "use the asset key `schema.name` or `source_name.table`"
                if hits
                else "is not one of its parents (its refs and sources): it reads "
                f"{accepted}. Use a ref name, `source_name.table` or the asset key "
                "`schema.name` of one of those, or add the ref/source to the model"
            )
            raise ProjectError(
                f"{where}: meta.sqlorch.deps names {name!r}, which {problem}. Mappings "
                f"are {MAPPING_SYNTAX}.",
                asset=key,
                file=file,
            )
        for up in keys_of(hits[0]):
            if up in out and out[up] != mapping:
                raise ProjectError(
                    f"{where}: meta.sqlorch.deps gives {up!r} two different mappings (as "
                    f"{named[up]!r} and {name!r}). Keep one.",
                    asset=key,
                    file=file,
                )
            out[up] = mapping
            named[up] = name
    return out


def compress_selection(
    chosen: set[str], runnable_fqns: Mapping[str, tuple[str, ...]], always: frozenset[str]
) -> list[str]:
    """Return `fqn:` selectors that select exactly `chosen` among the runnable nodes.

    A subtree of the fqn hierarchy whose every node is chosen (or in `always`) becomes one
    selector, so a whole-project build is `fqn:project` rather than a thousand selectors.
    """
    tree: dict[str, Any] = {}
    for uid, fqn in runnable_fqns.items():
        node = tree
        for part in fqn:
            node = node.setdefault(part, {})
        node.setdefault("\0ids", []).append(uid)

    def covered(node: dict[str, Any]) -> tuple[bool, bool]:
        """(every node under is chosen-or-always, any node under is chosen)"""
        full, anyc = True, False
        for k, v in node.items():
            if k == "\0ids":
                for uid in v:
                    c = uid in chosen
                    anyc |= c
                    full &= c or uid in always
            else:
                f, a = covered(v)
                full &= f
                anyc |= a
        return full, anyc

    out: list[str] = []

    def emit(node: dict[str, Any], path: tuple[str, ...]) -> None:
        full, anyc = covered(node)
        if not anyc:
            return
        if full and path:
            out.append("fqn:" + ".".join(path))
            return
        for k, v in sorted(node.items()):
            if k == "\0ids":
                # nodes whose fqn ends here but the subtree is not fully chosen
                out.extend("fqn:" + ".".join(path) for uid in v if uid in chosen)
            else:
                emit(v, (*path, k))

    emit(tree, ())
    return list(dict.fromkeys(out))
