"""What sqlorch reads of a dbt model beyond dbt's own meaning: partitions, mappings, window facts.

A model says it in `meta: {sqlorch: {...}}` (in its config or .yml) or, for partitions, by being
a microbatch model. Each reader takes the manifest node's dict (dict access stays in this
package, STYLE.md) and returns typed values; malformed input is a `ProjectError` naming the
model and its file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from sqlorch.core.partitions.definitions import PartitionsDefinition, StaticKeys, from_config
from sqlorch.core.partitions.mappings import (
    MAPPING_SYNTAX,
    MappingKind,
    PartitionMapping,
    mapping_from_config,
)
from sqlorch.errors import PartitionError, ProjectError

_MICROBATCH_GRAINS = {"hour": "hourly", "day": "daily", "month": "monthly"}
_ENV_VAR_RE = re.compile(r"""env_var\(\s*['"]([^'"]+)['"]""")
_DEPS_EXAMPLE = "meta: {sqlorch: {deps: {stg_events: {window: {offset: -1}}, raw.weather: all}}}"

#: A data test's config that decides its outcome or how it runs (see sqlorch.dbt.templates).
TEST_CONFIG = (
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


def _own(n: Mapping[str, Any], config: Mapping[str, Any]) -> Mapping[str, Any]:
    """Return the node's `meta.sqlorch` mapping (empty when absent or not a mapping)."""
    meta = n.get("meta") or config.get("meta") or {}
    own = meta.get("sqlorch") if isinstance(meta, Mapping) else None
    return own if isinstance(own, Mapping) else {}


def direct_facts(
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

    parts, code = _rendered_inputs(n, nodes, sources, macros)
    digest = hashlib.sha256("\n".join(sorted([*parts, *(tests or ())])).encode()).hexdigest()
    relation = [n.get("database"), n.get("schema"), n.get("alias") or n.get("name")]
    return {
        "sqlorch_direct_blocker": _direct_blocker(n, config),
        "sqlorch_render_inputs": digest[:20],
        "sqlorch_relation": relation,
        # environment variables dbt renders into the SQL (their values key the template)
        "sqlorch_env_vars": sorted({v for text in code for v in _ENV_VAR_RE.findall(text)}),
    }


def _direct_blocker(n: Mapping[str, Any], config: Mapping[str, Any]) -> str:
    """Return why dbt must write this model's windows ("" when sqlorch may)."""
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
        return "meta.sqlorch.window_writes is 'dbt'"
    if config.get("materialized") != "incremental":
        return f"materialized={config.get('materialized')!r}"
    if n.get("language", "sql") != "sql":
        return "a Python model"
    if config.get("pre-hook") or config.get("post-hook"):
        return "pre/post hooks"
    if (config.get("contract") or {}).get("enforced"):
        return "an enforced contract"
    if config.get("grants"):
        return "grants"
    if any((config.get("persist_docs") or {}).values()):
        return "persist_docs"
    if config.get("full_refresh"):
        return "full_refresh"
    return ""


def _rendered_inputs(
    n: Mapping[str, Any],
    nodes: Mapping[str, Any],
    sources: Mapping[str, Any],
    macros: Mapping[str, Any],
) -> tuple[list[str], list[str]]:
    """Return (what the compiled SQL renders, the code dbt renders into it).

    The first: the model's relation, every relation it reads, and the code of the ephemeral
    models it inlines; the second: its own code, its ephemeral inputs' and their macros'.
    """
    parts: list[str] = [str(n.get("relation_name") or "")]
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
    return parts, code


#: (what a node's compiled SQL renders, the code dbt renders into it); see `direct_facts`
rendered_inputs = _rendered_inputs


def partitions_of(
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
    own = _own(n, config)
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
            meta["sqlorch_microbatch"] = True
            return from_config(_microbatch_config(config, own, where, file), where), per_run, meta
        if own.get("partitions") is not None:
            return from_config(own["partitions"], where), per_run, meta
    except PartitionError as exc:
        raise ProjectError(exc.message, file=file) from exc
    return None, per_run, meta


def _microbatch_config(
    config: Mapping[str, Any], own: Mapping[str, Any], where: str, file: str | None
) -> dict[str, Any]:
    """Translate a microbatch model's batch_size/begin/event_time into a partitions config."""
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
    return raw


def dep_mappings(
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
    raw = _own(n, n.get("config") or {}).get("deps")
    if raw is None:
        return {}
    file = n.get("original_file_path")
    patch = str(n.get("patch_path") or "").split("://", 1)[-1]
    where = f"dbt model {n.get('name')!r} ({file}{', ' + patch if patch else ''})"

    def error(message: str) -> ProjectError:
        return ProjectError(f"{where}{message}", asset=key, file=file)

    if not isinstance(raw, Mapping):
        raise error(
            ": meta.sqlorch.deps must map upstream names to partition mappings, like "
            f"`{_DEPS_EXAMPLE}`; got {raw!r}. Fix it in the model's config."
        )
    if partitions is None:
        raise error(
            " declares partition mappings in meta.sqlorch.deps but has no partitions: "
            "a mapping says which upstream partitions each of its partitions reads. Declare "
            "its partitions (meta.sqlorch.partitions, or make it a microbatch model) or remove "
            "meta.sqlorch.deps."
        )
    out: dict[str, PartitionMapping] = {}
    named: dict[str, str] = {}
    for name_raw, value in raw.items():
        name = str(name_raw)
        mapping = _mapping(name, value, partitions, error)
        for up in keys_of(_parent_named(name, parents, error)):
            if up in out and out[up] != mapping:
                raise error(
                    f": meta.sqlorch.deps gives {up!r} two different mappings (as "
                    f"{named[up]!r} and {name!r}). Keep one."
                )
            out[up] = mapping
            named[up] = name
    return out


def _mapping(
    name: str,
    value: Any,
    partitions: PartitionsDefinition,
    error: Callable[[str], ProjectError],
) -> PartitionMapping:
    """Read one `deps` entry's mapping and check it can mean what it says for this model."""
    try:
        mapping = mapping_from_config(value)
    except PartitionError as exc:
        raise error(
            f": meta.sqlorch.deps[{name!r}] is malformed: {exc.message} Fix it in "
            "the model's config."
        ) from exc
    if mapping.kind is MappingKind.WINDOW and partitions.time is None:
        raise error(
            f": meta.sqlorch.deps[{name!r}] is a `window` mapping, but the model's "
            "partitions have no time dimension to offset. Use `same` or `all`, or give "
            "the model time partitions."
        )
    static_keys = {k for d in partitions.dimensions if isinstance(d, StaticKeys) for k in d.keys}
    unknown = sorted(set(mapping.keys) - static_keys)
    if unknown:
        have = ", ".join(sorted(static_keys)) or "none"
        raise error(
            f": meta.sqlorch.deps[{name!r}] renames partition keys "
            f"{', '.join(unknown)}, which are not static partition keys of the model "
            f"(it has: {have}). `same: {{keys: {{DOWNSTREAM_KEY: UPSTREAM_KEY}}}}` maps "
            "the model's partition keys to the upstream's."
        )
    return mapping


def _parent_named(
    name: str,
    parents: Mapping[str, tuple[str, frozenset[str]]],
    error: Callable[[str], ProjectError],
) -> str:
    """Return the unique_id of the one parent `name` names."""
    wanted = name.lower()
    hits = [uid for uid, (_shown, names) in parents.items() if wanted in names]
    if len(hits) == 1:
        return hits[0]
    accepted = ", ".join(sorted(shown for shown, _ in parents.values())) or "none"
    problem = (
        f"names several of its parents ({', '.join(parents[h][0] for h in hits)}); "
        "use the asset key `schema.name` or `source_name.table`"
        if hits
        else "is not one of its parents (its refs and sources): it reads "
        f"{accepted}. Use a ref name, `source_name.table` or the asset key "
        "`schema.name` of one of those, or add the ref/source to the model"
    )
    raise error(
        f": meta.sqlorch.deps names {name!r}, which {problem}. Mappings are {MAPPING_SYNTAX}."
    )
