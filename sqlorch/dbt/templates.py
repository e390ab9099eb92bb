"""Window templates of partitioned dbt models: dbt compiles once, sqlorch writes each window.

A partitioned dbt model's SQL differs from one window to the next only in the window's
bounds: the vars `start_date`/`end_date` of a model that opted in through
`meta.sqlorch.partitions`, or the batch bounds dbt renders into a microbatch model's
event-time filters. sqlorch therefore has dbt compile the model twice, for two sentinel
windows, and keeps the compiled SQL with the sentinel bounds cut out: a *template*. The
template is accepted only if filling it with the second window's bounds gives, character for
character, what dbt compiled for the second window; any other use of the window (date
arithmetic in Jinja, `model.batch.id`, ...) fails that test and the model keeps running
through dbt.

With a template, writing a window needs neither dbt's start-up nor its temp table: sqlorch
runs the filled-in SQL as its own delete-then-insert of exactly the window, in one database
transaction (`replace_window_sql` of the DuckDB and PostgreSQL warehouses). The model's own
data tests are compiled with it and run as dbt runs them. Templates are cached in
`.sqlorch/dbt/templates.json`, keyed by the model's code version (its SQL, macros, vars,
config and target), the relations and ephemeral models it renders, its tests, and the
environment variables it reads; a failed attempt is cached too, so a model that cannot use a
template is not compiled again until it changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlorch.dbt.datatests import DataTest

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from sqlorch.core.graph import AssetNode
    from sqlorch.core.partitions.definitions import PartitionsDefinition
    from sqlorch.dbt.runner import DbtInvoker

FORMAT = 2

# two sentinel windows, far from any real data, that must survive dbt's rendering verbatim
_DATES = (("2987-03-11", "2987-03-12"), ("2986-07-23", "2986-07-24"))
_HOURS = (
    ("2987-03-11 05:00:00", "2987-03-11 06:00:00"),
    ("2986-07-23 17:00:00", "2986-07-23 18:00:00"),
)
_BATCHES = (
    (datetime(2987, 3, 11, tzinfo=UTC), datetime(2987, 3, 12, tzinfo=UTC)),
    (datetime(2986, 7, 23, tzinfo=UTC), datetime(2986, 7, 24, tzinfo=UTC)),
)


@dataclass(frozen=True, slots=True)
class Template:
    """A model's compiled SQL with its window bounds as named holes."""

    key: str
    inputs: str
    # literal text and hole names alternate: text, name, text, name, ..., text
    parts: tuple[str, ...]
    microbatch: bool
    # the model's own data tests that sqlorch can run from their compiled SQL
    tests: tuple[DataTest, ...] = ()

    def render(self, values: Mapping[str, str]) -> str:
        """The SQL for one window (`values`: hole name -> bound as dbt would render it)."""
        out = []
        for i, part in enumerate(self.parts):
            out.append(values[part] if i % 2 else part)
        return "".join(out)


def blocker(node: AssetNode, same_file: bool, hook_count: int) -> str:
    """Why sqlorch must leave `node`'s windows to dbt's materialization ("" if it need not).

    `same_file`: the dbt target is the database sqlorch writes to (the DuckDB file, or the
    PostgreSQL database of the same target).
    """
    definition = node.partitions
    if definition is None or definition.time is None or definition.others:
        return "not partitioned by time alone"
    if definition.axis_dim is not definition.time:
        return "not partitioned by time alone"
    if not definition.columns:
        return "no partition column"
    if not same_file:
        return "the dbt target is not the database sqlorch writes to"
    if hook_count:
        return "project hooks"
    reason = node.metadata.get("sqlorch_direct_blocker")
    if reason is None or "sqlorch_relation" not in node.metadata:
        return "no compile facts"
    return str(reason)


def inputs_of(node: AssetNode) -> str:
    """The digest a template of `node` is valid for.

    Beyond the model's code version and render inputs: the values of the environment
    variables its SQL or macros read (`env_var()`), which dbt renders into the SQL.
    """
    env = {k: os.environ.get(k) for k in node.metadata.get("sqlorch_env_vars") or ()}
    text = (
        f"{FORMAT}|{node.code_version}|{node.metadata.get('sqlorch_render_inputs', '')}|"
        f"{json.dumps(env, sort_keys=True)}"
    )
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def hourly(definition: PartitionsDefinition) -> bool:
    """Whether the model's window vars are timestamps (hourly) rather than dates."""
    time = definition.time
    return time is not None and time.grain.value == "hourly"


def window_values(node: AssetNode, start: datetime, end: datetime) -> dict[str, str]:
    """The hole values for the window [start, end), formatted as dbt renders them."""
    if node.metadata.get("sqlorch_microbatch") is True:
        return {
            "event_time_start": str(start.astimezone(UTC)),
            "event_time_end": str(end.astimezone(UTC)),
        }
    assert node.partitions is not None
    fmt = "%Y-%m-%d %H:%M:%S" if hourly(node.partitions) else "%Y-%m-%d"
    return {"start_date": start.strftime(fmt), "end_date": end.strftime(fmt)}


class TemplateCache:
    """templates.json: model key -> a template, or why it has none, for one inputs digest."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._doc: dict[str, Any] | None = None

    def _load(self) -> dict[str, Any]:
        if self._doc is None:
            try:
                doc = json.loads(self.path.read_text())
                self._doc = doc if isinstance(doc, dict) else {}
            except (OSError, ValueError):
                self._doc = {}
        return self._doc

    def get(self, node: AssetNode) -> Template | str | None:
        """The cached template (or the reason there is none); None when not cached."""
        entry = self._load().get(node.key)
        if not isinstance(entry, dict) or entry.get("inputs") != inputs_of(node):
            return None
        if entry.get("reason"):
            return str(entry["reason"])
        return Template(
            key=node.key,
            inputs=entry["inputs"],
            parts=tuple(entry["parts"]),
            microbatch=bool(entry.get("microbatch")),
            tests=tuple(DataTest(**t) for t in entry.get("tests") or ()),
        )

    def put(self, node: AssetNode, value: Template | str) -> None:
        """Remember `value` for `node` (call `save()` to write the file)."""
        doc = self._load()
        if isinstance(value, Template):
            doc[node.key] = {
                "inputs": value.inputs,
                "parts": list(value.parts),
                "microbatch": value.microbatch,
                "tests": [
                    {
                        "unique_id": t.unique_id,
                        "sql": t.sql,
                        "fail_calc": t.fail_calc,
                        "warn_if": t.warn_if,
                        "error_if": t.error_if,
                        "severity": t.severity,
                        "limit": t.limit,
                    }
                    for t in value.tests
                ],
            }
        else:
            doc[node.key] = {"inputs": inputs_of(node), "reason": value}

    def save(self) -> None:
        """Write the cache atomically."""
        doc = self._load()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=1, sort_keys=True))
        tmp.replace(self.path)


def cut(sql: str, values: Mapping[str, str]) -> tuple[str, ...] | None:
    """Cut the sentinel `values` out of `sql`: text, hole, text, ... (None if none occurs)."""
    if not values:
        return None
    by_text = {v: k for k, v in values.items()}
    pattern = re.compile("|".join(re.escape(v) for v in sorted(by_text, key=len, reverse=True)))
    parts: list[str] = []
    pos = 0
    for m in pattern.finditer(sql):
        parts.append(sql[pos : m.start()])
        parts.append(by_text[m.group(0)])
        pos = m.end()
    if not parts:
        return None
    parts.append(sql[pos:])
    return tuple(parts)


def compile_templates(
    invoker: DbtInvoker,
    nodes: Sequence[AssetNode],
    selectors_of: Mapping[str, list[str]],
    run_dir: Path,
    tests_of: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Template | str]:
    """Have dbt compile each model for two sentinel windows; return key -> template or reason.

    `selectors_of` maps a model key to the dbt selectors of that model and its tests
    (`tests_of`: model key -> the unique_ids of the data tests on that model alone). Models
    whose vars are timestamps (hourly) and dates compile in separate invocations (the vars
    are global).

    Raises:
        ProjectError: dbt could not compile the models at all.
    """
    out: dict[str, Template | str] = {}
    groups: dict[bool, list[AssetNode]] = {}
    for node in nodes:
        assert node.partitions is not None
        groups.setdefault(hourly(node.partitions), []).append(node)
    for is_hourly, group in groups.items():
        sentinels = _HOURS if is_hourly else _DATES
        compiled: list[dict[str, str]] = []
        for i in (0, 1):
            start, end = sentinels[i]
            batches = {
                n.unique_id or "": _BATCHES[i]
                for n in group
                if n.metadata.get("sqlorch_microbatch") is True
            }
            selectors = [s for n in group for s in selectors_of[n.key]]
            compiled.append(
                invoker.compile(
                    selectors,
                    run_dir=run_dir / f"templates-{int(is_hourly)}-{i}",
                    extra_args=["--vars", json.dumps({"start_date": start, "end_date": end})],
                    batches=batches,
                    purpose="partitioned models for their window templates",
                )
            )
        overridden = _test_sql_overridden(invoker)
        for node in group:
            made = _template(node, compiled[0], compiled[1], sentinels)
            if isinstance(made, Template) and not overridden:
                tests = [
                    t
                    for uid in (tests_of or {}).get(node.key, ())
                    if (t := _test_template(invoker, uid, compiled[0], compiled[1])) is not None
                ]
                made = Template(made.key, made.inputs, made.parts, made.microbatch, tuple(tests))
            out[node.key] = made
    return out


_TEST_MACROS = frozenset({"get_test_sql", "default__get_test_sql", "duckdb__get_test_sql"})
_TEST_MACROS |= {"get_limit_subquery_sql", "default__get_limit_subquery_sql"}
_TEST_MACROS |= {"duckdb__get_limit_subquery_sql"}


def _test_sql_overridden(invoker: DbtInvoker) -> bool:
    """Whether the project or a package redefines how dbt wraps a test's SQL."""
    macros = getattr(invoker.manifest, "macros", None) or {}
    return any(
        getattr(m, "name", "") in _TEST_MACROS
        and getattr(m, "package_name", "") not in ("dbt", "dbt_duckdb", "dbt_postgres")
        for m in macros.values()
    )


def _test_template(
    invoker: DbtInvoker, uid: str, first: Mapping[str, str], second: Mapping[str, str]
) -> DataTest | None:
    """A test sqlorch can run as dbt would (None: leave it to dbt).

    The test must compile to the same SQL for both sentinel windows (it does not read the
    window), and neither store its failures nor need a SQL header.
    """
    sql = first.get(uid)
    if sql is None or second.get(uid) != sql:
        return None
    node = getattr(invoker.manifest, "nodes", {}).get(uid)
    config = getattr(node, "config", None)
    if config is None or getattr(node, "resource_type", None) != "test":
        return None
    if getattr(config, "store_failures", None) or getattr(config, "sql_header", None):
        return None
    limit = getattr(config, "limit", None)
    return DataTest(
        unique_id=uid,
        sql=sql,
        fail_calc=str(getattr(config, "fail_calc", None) or "count(*)"),
        warn_if=str(getattr(config, "warn_if", None) or "!= 0"),
        error_if=str(getattr(config, "error_if", None) or "!= 0"),
        severity=str(getattr(config, "severity", None) or "ERROR").upper(),
        limit=int(limit) if limit is not None else None,
    )


def _template(
    node: AssetNode,
    first: Mapping[str, str],
    second: Mapping[str, str],
    sentinels: tuple[tuple[str, str], ...],
) -> Template | str:
    uid = node.unique_id or ""
    if uid not in first or uid not in second:
        return "dbt did not compile it"
    microbatch = node.metadata.get("sqlorch_microbatch") is True

    def values(i: int) -> dict[str, str]:
        if microbatch:
            start, end = _BATCHES[i]
            return {"event_time_start": str(start), "event_time_end": str(end)}
        return {"start_date": sentinels[i][0], "end_date": sentinels[i][1]}

    parts = cut(first[uid], values(0))
    if parts is None:
        return "its compiled SQL does not use the window"
    template = Template(node.key, inputs_of(node), parts, microbatch)
    if template.render(values(1)) != second[uid]:
        return "its compiled SQL uses the window in ways other than its bounds"
    return template
