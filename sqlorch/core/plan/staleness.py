"""Staleness: which assets need materializing, and why (pure: graph + state in, reasons out).

An asset is stale when it was never materialized, its code version changed since its last
materialization, an upstream asset was materialized after it, its last attempt failed, a
blocking check of it failed, or its table is missing from the warehouse. An asset downstream
of a stale one is stale too ("upstream X is stale").

Reasons are short sentences a person can act on, each with its `ReasonKind`; the first reason
of an asset is its main one.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from sqlorch.core.codeversion import describe_changes
from sqlorch.core.graph import AssetGraph, AssetKind, AssetNode
from sqlorch.core.plan.definition import Reason, ReasonKind
from sqlorch.events import AttemptOutcome

#: the node metadata naming the group of assets one load writes together (a dlt source's)
GROUP_KEY = "load_group"


@dataclass(frozen=True, slots=True)
class AssetRecord:
    """What the state store knows of one asset, as the planner needs it."""

    materialized_at: str | None = None
    materialized_run: str | None = None
    code_version: str | None = None
    code_parts: Mapping[str, str] | None = None
    rows: int | None = None
    last_status: AttemptOutcome | None = None
    last_run_id: str | None = None
    failed_checks: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StateSnapshot:
    """The state the planner reads: per-asset records and the relations that exist.

    `tables` is the set of `schema.name` relations in the warehouse (lower-case), or None
    when it could not be read (then no asset is called missing).
    """

    assets: Mapping[str, AssetRecord] = field(default_factory=dict)
    tables: frozenset[str] | None = None

    def record(self, key: str) -> AssetRecord:
        """The record of `key` (an empty one when it has no history)."""
        return self.assets.get(key) or _EMPTY


_EMPTY = AssetRecord()


def own_reasons(node: AssetNode, graph: AssetGraph, state: StateSnapshot) -> list[Reason]:
    """Return why `node` is stale by itself (not counting upstream assets being rebuilt)."""
    if not node.is_materializable:
        return []
    rec = state.record(node.key)
    if rec.materialized_at is None:
        never = ReasonKind.NEVER_MATERIALIZED
        if rec.last_status == AttemptOutcome.FAILED:
            text = f"never materialized; last attempt failed (run {rec.last_run_id})"
            return [Reason(text, never)]
        return [Reason("never materialized", never)]
    reasons: list[Reason] = []
    if table_missing(node, state):
        reasons.append(Reason("table missing", ReasonKind.TABLE_MISSING))
    if node.code_version is not None and rec.code_version != node.code_version:
        old = rec.code_parts if rec.code_parts else None
        changes = describe_changes(old, node.code_parts, file=node.file, line=node.line)
        reasons.extend(Reason(text, ReasonKind.CODE_CHANGED) for text in changes)
    if rec.last_status == AttemptOutcome.FAILED:
        text = f"last attempt failed (run {rec.last_run_id})"
        reasons.append(Reason(text, ReasonKind.LAST_ATTEMPT_FAILED))
    for check in rec.failed_checks:
        reasons.append(Reason(f"check {check} failed", ReasonKind.CHECK_FAILED))
    for dep in node.deps:
        up = state.record(dep)
        if _newer(up, rec):
            what = (
                f"source {dep} received rows {_short(up.materialized_at)}, after this"
                if dep in graph.assets and not graph.assets[dep].is_materializable
                else f"upstream {dep} materialized {_short(up.materialized_at)} after this"
            )
            reasons.append(Reason(what, ReasonKind.UPSTREAM_NEWER))
    return reasons


def stale_reasons(
    graph: AssetGraph,
    state: StateSnapshot,
    keys: Collection[str] | None = None,
    *,
    full: bool = False,
) -> dict[str, list[Reason]]:
    """Return key -> reasons for every stale materializable asset among `keys`.

    An asset whose upstream (among `keys`) is stale is stale too: rebuilding the upstream
    changes its input. The assets one load writes together (a dlt source's tables) are stale
    together, and so is what is downstream of each. With `full`, every materializable asset
    among `keys` is returned.

    Args:
        graph: the merged asset graph.
        state: the state snapshot.
        keys: the assets to consider (default: all); upstream assets outside it are taken
            as they are.
        full: rebuild regardless of staleness (`sqlorch build --full`).
    """
    chosen = set(graph.assets if keys is None else keys)
    together: dict[str, str] = {}  # an asset -> the stale asset it is loaded with
    while True:
        out = _stale_pass(graph, state, chosen, together, full)
        more = _loaded_with_stale(graph, chosen, out, together)
        if not more:
            return out
        together.update(more)


def _stale_pass(
    graph: AssetGraph,
    state: StateSnapshot,
    chosen: set[str],
    together: Mapping[str, str],
    full: bool,
) -> dict[str, list[Reason]]:
    out: dict[str, list[Reason]] = {}
    for key in graph.topological(chosen):
        node = graph.assets[key]
        if not node.is_materializable:
            continue
        reasons = own_reasons(node, graph, state)
        rebuilt = [d for d in node.deps if d in out]
        if rebuilt and not reasons:
            reasons = [upstream_stale(rebuilt[0])]
        if key in together and not reasons:
            reasons = [loaded_together(together[key])]
        if full and not reasons:
            rec = state.record(key)
            text = f"--full (last built {_short(rec.materialized_at)})"
            reasons = [Reason(text, ReasonKind.FULL)]
        if reasons:
            out[key] = reasons
    return out


def _loaded_with_stale(
    graph: AssetGraph, chosen: set[str], stale: Mapping[str, list[Reason]], known: Mapping[str, str]
) -> dict[str, str]:
    """The chosen assets not yet stale that one load writes with a stale one."""
    out: dict[str, str] = {}
    for members in load_groups(graph).values():
        first = next((k for k in members if k in stale), None)
        if first is None:
            continue
        for key in members:
            if key in chosen and key not in stale and key not in known:
                out[key] = first
    return out


def load_groups(graph: AssetGraph) -> dict[str, list[str]]:
    """Group name -> its member keys (sorted), for assets one load writes together."""
    groups: dict[str, list[str]] = {}
    for key in sorted(graph.assets):
        node = graph.assets[key]
        group = node.metadata.get(GROUP_KEY) if node.metadata else None
        if isinstance(group, str):
            groups.setdefault(group, []).append(key)
    return groups


def loaded_together(key: str) -> Reason:
    """The reason of an asset one load writes with `key`, which is rebuilt."""
    return Reason(f"loaded together with {key}", ReasonKind.LOADED_TOGETHER)


def upstream_stale(key: str) -> Reason:
    """The reason of an asset whose upstream `key` is rebuilt in the same plan."""
    return Reason(f"upstream {key} is stale", ReasonKind.UPSTREAM_STALE)


def modified(graph: AssetGraph, state: StateSnapshot) -> set[str]:
    """Assets that are new or whose code changed since their last materialization."""
    out = set()
    for node in graph:
        if not node.is_materializable:
            continue
        rec = state.record(node.key)
        if rec.materialized_at is None or (
            node.code_version is not None and rec.code_version != node.code_version
        ):
            out.add(node.key)
    return out


def fresher_upstream(graph: AssetGraph, state: StateSnapshot) -> set[str]:
    """Assets with an upstream asset materialized after them (`source_status:fresher`)."""
    out = set()
    for node in graph:
        rec = state.record(node.key)
        if rec.materialized_at is None:
            continue
        if any(_newer(state.record(dep), rec) for dep in node.deps):
            out.add(node.key)
    return out


def _newer(up: AssetRecord, rec: AssetRecord) -> bool:
    """Whether upstream `up` was materialized after `rec`, in another run.

    Within one run the dependency order already guarantees it was read after it was built
    (a batched record may carry a later time than its downstream's).
    """
    return (
        up.materialized_at is not None
        and rec.materialized_at is not None
        and up.materialized_run != rec.materialized_run
        and up.materialized_at > rec.materialized_at
    )


def table_missing(node: AssetNode, state: StateSnapshot) -> bool:
    """Whether `node` was materialized but its relation (or file) is not in the warehouse."""
    rec = state.record(node.key)
    return (
        state.tables is not None
        and rec.materialized_at is not None
        and node.key not in state.tables
        and _makes_table(node, rec)
    )


def _makes_table(node: AssetNode, rec: AssetRecord) -> bool:
    """Whether `node` leaves a relation named by its key (Python assets: when they did)."""
    if node.kind is AssetKind.PYTHON:
        return rec.rows is not None
    return node.materialized != "ephemeral"


def _short(ts: str | None) -> str:
    return (ts or "never")[:19].replace("T", " ")
