"""Column lineage of one SQL query with sqlglot (pure: SQL and schemas in, edges out).

`analyze` parses a model's compiled SQL in the target's dialect, qualifies it against the
columns of the relations it reads, and returns, for every output column, the upstream
columns it is derived from and how (a copy, an expression, an aggregation, a window), plus
the columns the query filters, joins or groups on, and every relation it reads.

Relations are named by asset key (`schema.name`, lower-cased; a database/catalog prefix is
dropped, as asset keys have none). sqlglot is imported inside the functions.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlorch.lineage.model import (
    ColumnLineage,
    Edge,
    ModelLineage,
    Transform,
)

if TYPE_CHECKING:
    from sqlglot import exp

log = logging.getLogger(__name__)

#: strength of a derivation along a path: the strongest step names the edge
_RANK = {
    Transform.COPY: 0,
    Transform.EXPRESSION: 1,
    Transform.WINDOW: 2,
    Transform.AGGREGATION: 3,
}


@dataclass(slots=True)
class _Collector:
    edges: dict[tuple[str, str], Transform] = field(default_factory=dict)
    unresolved: list[str] = field(default_factory=list)
    steps: dict[int, Any] = field(default_factory=dict)

    def add(self, table: str, column: str, kind: Transform) -> None:
        key = (table, column)
        old = self.edges.get(key)
        if old is None or _RANK.get(kind, 0) > _RANK.get(old, 0):
            self.edges[key] = kind


def referenced_tables(sql: str, dialect: str | None) -> list[str]:
    """Return the keys of every relation `sql` reads (CTE names excluded), in order.

    Raises:
        sqlglot.errors.ParseError: the SQL does not parse.
    """
    import sqlglot

    tree = sqlglot.parse_one(sql, dialect=dialect)
    return _tables(tree)


def _tables(tree: exp.Expr) -> list[str]:
    from sqlglot import exp

    ctes = {
        cte.alias_or_name.lower()
        for cte in tree.find_all(exp.CTE)
        if cte.alias_or_name  # a CTE name shadows a table of the same name
    }
    out: dict[str, None] = {}
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            continue  # a table function: read_parquet('...'), range(10), unnest(...)
        if is_file_reference(table):
            continue  # FROM 'data/trips.csv': a file (dbt-duckdb's external sources), no table
        name = table.name.lower()
        if not table.db and name in ctes:
            continue
        out.setdefault(table_key(table), None)
    return list(out)


_FILE_SUFFIXES = (".csv", ".tsv", ".parquet", ".json", ".ndjson", ".jsonl", ".gz", ".zst", ".xlsx")


def is_file_reference(table: exp.Table) -> bool:
    """Whether a table reference names a file, as DuckDB reads `FROM 'path/x.csv'`."""
    ident = table.this
    if not ident.args.get("quoted") or table.db:
        return False
    name = str(ident.this)
    return (
        "/" in name
        or "\\" in name
        or "*" in name
        or "://" in name
        or name.lower().endswith(_FILE_SUFFIXES)
    )


def _drop_catalogs(tree: exp.Expr) -> None:
    """Drop the database part of table names: asset keys are `schema.name`."""
    from sqlglot import exp

    for table in tree.find_all(exp.Table):
        if table.args.get("catalog") is not None and isinstance(table.this, exp.Identifier):
            table.set("catalog", None)


def table_key(table: exp.Table) -> str:
    """Return the asset key of a table reference (`schema.name`, lower-cased); a file read
    in place (`FROM 'data/x.csv'`) keeps its path, quoted."""
    if is_file_reference(table):
        return f"'{table.name}'"
    return f"{(table.db or 'main')}.{table.name}".lower()


def analyze(
    sql: str,
    dialect: str | None,
    schemas: Mapping[str, Sequence[tuple[str, str]]],
    self_key: str | None = None,
) -> ModelLineage:
    """Return the column lineage of the query `sql`; never raises for SQL it cannot read.

    Args:
        sql: the compiled SQL (one SELECT, possibly with CTEs).
        dialect: sqlglot dialect of the target (`duckdb`, `postgres`, ...).
        schemas: asset key -> [(column, type)] of the relations the query may read; a
            relation missing here still gets lineage for explicitly named columns, but a
            `SELECT *` over it cannot be expanded.
        self_key: the key of the model itself (an incremental model reads its own table).
    """
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    try:
        tree = sqlglot.parse_one(sql, dialect=dialect)
    except SqlglotError as exc:
        return ModelLineage(error=f"sqlglot cannot parse the compiled SQL: {_first_line(exc)}")
    if tree is None:
        return ModelLineage(error="the compiled SQL is empty")
    tables = _tables(tree)
    _drop_catalogs(tree)
    if not isinstance(tree, exp.Query):
        return ModelLineage(
            tables=tuple(tables), error=f"not a query ({type(tree).__name__.upper()})"
        )
    try:
        return _analyze(sql, tree, dialect, schemas, tables, self_key)
    except (SqlglotError, ValueError, KeyError, IndexError, RecursionError) as exc:
        log.debug("lineage failed", exc_info=True)
        return ModelLineage(
            tables=tuple(tables), error=f"sqlglot cannot trace this query: {_first_line(exc)}"
        )


def _analyze(
    sql: str,
    tree: exp.Query,
    dialect: str | None,
    schemas: Mapping[str, Sequence[tuple[str, str]]],
    tables: list[str],
    self_key: str | None,
) -> ModelLineage:
    from sqlglot.errors import SqlglotError
    from sqlglot.optimizer.scope import build_scope

    qualified, schema, unknown = _qualify(sql, tree, dialect, schemas, tables)
    scope = build_scope(qualified)
    if scope is None:
        raise SqlglotError("no SELECT scope")
    selectable = scope.expression
    notes: list[str] = []
    stars = [s for s in getattr(selectable, "selects", []) if _is_star(s)]
    if stars:
        notes.append(
            "SELECT * over "
            + (", ".join(sorted(k for k in unknown if k != self_key)) or "a relation")
            + " whose columns are unknown: its columns are not listed"
        )
    pending = _collect(_trace_columns(qualified, schema, dialect, scope))
    keys, clauses = _key_columns(scope, dialect, schema)
    key_edges = tuple(Edge(t, c, k) for t, c, k in sorted(keys) if t != self_key)
    # fingerprints last: generating SQL without copying may rewrite the tree in place
    text = _generator(dialect)
    return ModelLineage(
        columns=tuple(_column(name, got, text) for name, got in pending),
        keys=key_edges,
        tables=tuple(tables),
        unknown_tables=tuple(k for k in unknown if k != self_key),
        notes=tuple(notes),
        keys_fingerprint=_digest(f"{kind}:{text(clause)}" for kind, clause in clauses),
        incomplete=bool(stars),
    )


def _qualify(
    sql: str,
    tree: exp.Query,
    dialect: str | None,
    schemas: Mapping[str, Sequence[tuple[str, str]]],
    tables: list[str],
) -> tuple[exp.Expr, Any, list[str]]:
    """Qualify `tree` against the known columns; return it, the schema, the unknown tables."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError
    from sqlglot.optimizer.qualify import qualify
    from sqlglot.schema import MappingSchema

    mapping: dict[str, dict[str, dict[str, str]]] = {}
    unknown: list[str] = []
    for key in tables:
        cols = schemas.get(key)
        if not cols:
            unknown.append(key)
            continue
        schema_name, name = key.rsplit(".", 1)
        mapping.setdefault(schema_name, {})[name] = {
            c: t if _is_type(t) else "unknown" for c, t in cols
        }
    schema = MappingSchema(dict[str, object](mapping), dialect=dialect, normalize=True)
    qualified: exp.Expr
    try:
        qualified = qualify(
            tree,
            dialect=dialect,
            schema=schema,
            validate_qualify_columns=False,
            identify=False,
            quote_identifiers=False,
        )
    except SqlglotError:
        # a column sqlglot cannot place (a correlated subquery over a relation of unknown
        # columns, as an incremental model's `select max(x) from {{ this }}`): give each
        # relation of unknown columns every column name the query uses; the innermost scope
        # then wins, as in SQL
        fresh = sqlglot.parse_one(sql, dialect=dialect)  # qualify may have half-changed it
        _drop_catalogs(fresh)
        names = {c.name: "unknown" for c in fresh.find_all(exp.Column) if c.name}
        for key in unknown:
            schema_name, name = key.rsplit(".", 1)
            mapping.setdefault(schema_name, {})[name] = dict(names)
        schema = MappingSchema(dict[str, object](mapping), dialect=dialect, normalize=True)
        qualified = qualify(
            fresh,
            dialect=dialect,
            schema=schema,
            validate_qualify_columns=False,
            identify=False,
            quote_identifiers=False,
        )
    return qualified, schema, unknown


def _trace_columns(
    qualified: exp.Expr, schema: Any, dialect: str | None, scope: Any
) -> dict[str, Any]:
    """Return output column -> sqlglot lineage node (or `_Failure`)."""
    from sqlglot.errors import SqlglotError
    from sqlglot.lineage import lineage

    try:
        nodes = lineage(
            None, qualified, schema, dialect=dialect, scope=scope, copy=False, trim_selects=False
        )
        return dict(nodes)
    except (SqlglotError, ValueError, KeyError, IndexError) as exc:
        # one bad column must not hide the others: trace them one by one
        log.debug("lineage of all columns failed; column by column", exc_info=True)
        per_column: dict[str, Any] = {}
        for sel in getattr(scope.expression, "selects", []):
            name = sel.alias_or_name
            if not name or _is_star(sel):
                continue
            try:
                per_column[name] = lineage(
                    name,
                    qualified,
                    schema,
                    dialect=dialect,
                    scope=scope,
                    copy=False,
                    trim_selects=False,
                )
            except (SqlglotError, ValueError, KeyError, IndexError) as inner:
                per_column[name] = _Failure(_first_line(inner) or _first_line(exc))
        return per_column


def _collect(per_column: Mapping[str, Any]) -> list[tuple[str, _Collector | str]]:
    """Walk each column's lineage to its upstream columns (or keep its failure message)."""
    pending: list[tuple[str, _Collector | str]] = []
    for name, node in per_column.items():
        if _is_star_name(name):
            continue
        if isinstance(node, _Failure):
            pending.append((name, node.message))
            continue
        found = _Collector()
        _walk(node, Transform.COPY, found, set(), collect=True)
        pending.append((name, found))
    return pending


def _key_columns(
    scope: Any, dialect: str | None, schema: Any
) -> tuple[dict[tuple[str, str, Transform], None], list[tuple[str, exp.Expr]]]:
    """Return the upstream columns of every filter, join and grouping, and those clauses."""
    from sqlglot import exp
    from sqlglot.errors import SqlglotError
    from sqlglot.lineage import to_node
    from sqlglot.optimizer.scope import Scope

    keys: dict[tuple[str, str, Transform], None] = {}
    clauses: list[tuple[str, exp.Expr]] = []
    cache: dict[tuple[Any, ...], Any] = {}
    for sub in scope.traverse():
        if not isinstance(sub.expression, exp.Select):
            continue
        select = sub.expression
        for clause, kind in _key_clauses(select):
            clauses.append((kind.value, clause))
            for col in clause.find_all(exp.Column):
                if _inside_subquery(col, clause):
                    continue
                source = sub.sources.get(col.table)
                if isinstance(source, exp.Table):
                    keys[(table_key(source), col.name.lower(), kind)] = None
                elif isinstance(source, Scope):
                    try:
                        traced = to_node(
                            col.name,
                            source,
                            dialect,
                            schema,
                            scope_name=col.table,
                            trim_selects=False,
                            _cache=cache,
                        )
                    except (SqlglotError, ValueError, KeyError, IndexError):
                        continue
                    leaves = _Collector()
                    _walk(traced, Transform.COPY, leaves, set())
                    for t, c in leaves.edges:
                        keys[(t, c, kind)] = None
    return keys, clauses


def _generator(dialect: str | None) -> Callable[[exp.Expr], str]:
    """Return a function generating SQL text of an expression, once per expression."""
    from sqlglot.dialects.dialect import Dialect

    generator = Dialect.get_or_raise(dialect)
    texts: dict[int, str] = {}

    def text(expression: exp.Expr) -> str:
        key = id(expression)
        if key not in texts:
            texts[key] = generator.generate(expression, copy=False)
        return texts[key]

    return text


def _column(name: str, got: _Collector | str, text: Callable[[exp.Expr], str]) -> ColumnLineage:
    """Return the lineage of output column `name` from what `_collect` found."""
    if isinstance(got, str):
        return ColumnLineage(name=name, error=got)
    error = None
    if got.unresolved:
        error = "cannot tell which relation " + ", ".join(sorted(set(got.unresolved)))
        error += " comes from (qualify the column or give the upstream's columns)"
    steps = sorted(text(e) for e in got.steps.values())
    return ColumnLineage(
        name=name,
        upstream=tuple(Edge(t, c, k) for (t, c), k in sorted(got.edges.items())),
        error=error,
        fingerprint=_digest([*steps, *map(str, sorted(got.edges))]),
    )


def _digest(parts: Iterable[str]) -> str:
    h = hashlib.sha1()
    for part in parts:
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class _Failure:
    message: str


def _walk(
    node: Any,
    kind: Transform,
    found: _Collector,
    seen: set[tuple[int, Transform]],
    collect: bool = False,
) -> None:
    from sqlglot import exp

    mark = (id(node), kind)
    if mark in seen:
        return
    seen.add(mark)
    expression = node.expression
    if isinstance(expression, exp.Table):
        column = node.name.rsplit(".", 1)[-1].strip('"').lower()
        found.add(table_key(expression), column, kind)
        return
    if isinstance(expression, exp.Placeholder):
        found.unresolved.append(node.name)
        return
    if collect:
        found.steps[id(expression)] = expression
    if not node.downstream:
        return
    step = _classify(expression)
    if _RANK[step] > _RANK[kind]:
        kind = step
    for child in node.downstream:
        _walk(child, kind, found, seen, collect)


def _classify(expression: exp.Expr) -> Transform:
    from sqlglot import exp

    inner = expression.this if isinstance(expression, exp.Alias) else expression
    if isinstance(inner, exp.Column | exp.Star):
        return Transform.COPY
    if isinstance(inner, exp.Subquery | exp.Select | exp.SetOperation):
        return Transform.COPY  # a scalar subquery: its own select classifies the edge
    if inner.find(exp.Window):
        return Transform.WINDOW
    if inner.find(exp.AggFunc):
        return Transform.AGGREGATION
    return Transform.EXPRESSION


def _key_clauses(select: exp.Select) -> Iterable[tuple[exp.Expr, Transform]]:
    for arg, kind in (
        ("where", Transform.FILTER),
        ("having", Transform.FILTER),
        ("qualify", Transform.FILTER),
        ("group", Transform.GROUP_KEY),
    ):
        clause = select.args.get(arg)
        if clause is not None:
            yield clause, kind
    for join in select.args.get("joins") or ():
        for arg in ("on", "using"):
            clause = join.args.get(arg)
            if clause is None:
                continue
            if isinstance(clause, list):
                for item in clause:
                    yield item, Transform.JOIN_KEY
            else:
                yield clause, Transform.JOIN_KEY


def _inside_subquery(node: exp.Expr, stop: exp.Expr) -> bool:
    from sqlglot import exp

    parent = node.parent
    while parent is not None and parent is not stop:
        if isinstance(parent, exp.Query):
            return True
        parent = parent.parent
    return False


def _is_star(select: exp.Expr) -> bool:
    from sqlglot import exp

    return isinstance(select, exp.Star) or (
        isinstance(select, exp.Column) and isinstance(select.this, exp.Star)
    )


def _is_star_name(name: str) -> bool:
    return name == "*" or name.endswith(".*")


@functools.lru_cache(maxsize=512)
def _is_type(text: str) -> bool:
    if not text:
        return False
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    try:
        exp.DataType.build(text, dialect="duckdb")
    except (SqlglotError, ValueError):
        return False
    return True


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
