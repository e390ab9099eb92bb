"""Attach checks to the graph: `@check` functions found in the project and declared built-ins."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlorch.api.checks import CHECK_PARAMS, CheckDefinition
from sqlorch.core.checks import builtin_check_configs
from sqlorch.core.graph import AssetGraph, CheckKind, CheckNode
from sqlorch.errors import ConfigError, SelectionError

if TYPE_CHECKING:
    from sqlorch.load.discovery import FoundCheck


def attach_checks(
    graph: AssetGraph,
    found: Sequence[FoundCheck],
    declared: Mapping[str, Any],
    settings_file: str | None = None,
) -> tuple[AssetGraph, dict[str, CheckDefinition]]:
    """Add the `@check` functions and the declared built-in checks to `graph`.

    Built-ins come from the `checks` setting (selector -> checks; the selector's assets get
    them) and from each asset's `meta: {sqlorch: {checks: ...}}` (dbt) or
    `metadata={"sqlorch": {"checks": ...}}` (Python), which wins for the same check type.

    Returns:
        the graph with the new check nodes, and the Python checks by unique id.

    Raises:
        ConfigError: a check names an unknown or ambiguous asset, or is malformed.
    """
    nodes: dict[str, CheckNode] = {}
    python: dict[str, CheckDefinition] = {}
    for fc in found:
        uid, node = _python_check(graph, fc)
        if uid in nodes:
            raise ConfigError(
                f"Two @check functions are named {node.name!r} in {fc.module} ({fc.file}). "
                "Give one of them another `name=`.",
                file=fc.file,
                line=fc.line,
            )
        nodes[uid] = node
        python[uid] = fc.definition
    for (key, kind), (config, file) in sorted(_builtins(graph, declared, settings_file).items()):
        if kind == "freshness" and "max_age_s" not in config and not graph.assets[key].partitions:
            raise ConfigError(
                f'The freshness check of {key} ({file}) needs `max_age` (e.g. "26h"): only a '
                "partitioned asset's freshness can do without (its latest complete partition "
                "must be present)."
            )
        table = key.rsplit(".", 1)[1]
        uid = f"check.builtin.{key}.{kind}"
        nodes[uid] = CheckNode(
            unique_id=uid,
            name=f"{kind}_{table}",
            asset_keys=(key,),
            fqn=("sqlorch", kind, key),
            file=file,
            severity=str(config["severity"]),
            kind=CheckKind.BUILTIN,
            config=config,
        )
    if not nodes:
        return graph, python
    return AssetGraph(graph.assets.values(), [*graph.checks.values(), *nodes.values()]), python


def _python_check(graph: AssetGraph, fc: FoundCheck) -> tuple[str, CheckNode]:
    """Turn a found `@check` function into its check node: (unique id, node)."""
    d = fc.definition
    key = _resolve_asset(graph, d.asset, f"@check {d.name!r} ({fc.file}:{fc.line})")
    bad = [p for p in d.params if p not in CHECK_PARAMS]
    if bad:
        raise ConfigError(
            f"@check {d.name!r} ({fc.file}:{fc.line}) takes {', '.join(bad)}; a check may "
            f"take only {', '.join(sorted(CHECK_PARAMS))}.",
            asset=key,
            file=fc.file,
            line=fc.line,
        )
    uid = f"check.python.{fc.module}.{d.name}"
    return uid, CheckNode(
        unique_id=uid,
        name=d.name,
        asset_keys=(key,),
        fqn=(*fc.module.split("."), d.name),
        file=fc.file,
        line=fc.line,
        severity="error" if d.blocking else "warn",
        kind=CheckKind.PYTHON,
    )


def _builtins(
    graph: AssetGraph, declared: Mapping[str, Any], settings_file: str | None
) -> dict[tuple[str, str], tuple[dict[str, Any], str | None]]:
    """Return (asset key, check type) -> (config, file declaring it) of the built-in checks.

    The settings' selectors come first; an asset's own `meta.sqlorch.checks` wins over them.
    """
    builtins: dict[tuple[str, str], tuple[dict[str, Any], str | None]] = {}
    if declared:
        from sqlorch.core.selection import resolve_selection

        where = f"[tool.sqlorch.checks] of {settings_file or 'the settings'}"
        for selector, raw in declared.items():
            configs = builtin_check_configs(raw, f"{where} ({selector!r})")
            try:
                keys = resolve_selection(graph, [selector], []).keys
            except SelectionError as exc:
                raise ConfigError(f"{where}: {exc.message}") from exc
            if not keys:
                raise ConfigError(
                    f"The selector {selector!r} under {where} matches no asset. "
                    "`sqlorch ls -s SELECTOR` shows what a selector matches."
                )
            for key in keys:
                for config in configs:
                    builtins[(key, config["type"])] = (config, settings_file)
    for node in graph:
        meta = node.metadata.get("sqlorch") if isinstance(node.metadata, Mapping) else None
        if not isinstance(meta, Mapping) or "checks" not in meta:
            continue
        where = f"meta.sqlorch.checks of {node.key} ({node.file})"
        for config in builtin_check_configs(meta["checks"], where):
            builtins[(node.key, config["type"])] = (config, node.file)
    return builtins


def _resolve_asset(graph: AssetGraph, name: str, what: str) -> str:
    wanted = name.lower()
    if wanted in graph.assets:
        return wanted
    matches = sorted(
        n.key
        for n in graph.assets.values()
        if n.name.lower() == wanted or wanted in (s.lower() for s in n.source_names)
    )
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise ConfigError(
            f"{what} checks {name!r}, which is no asset of this project. Use an asset key "
            "(`schema.name`), a dbt node name or `source_name.table`; `sqlorch ls` lists them."
        )
    raise ConfigError(
        f"{what} checks {name!r}, which names several assets: {', '.join(matches)}. "
        "Use the full `schema.name` key."
    )
