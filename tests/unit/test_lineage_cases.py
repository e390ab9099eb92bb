"""Data-driven column lineage cases: tests/unit/lineage_cases.txt (format in its header)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sqlorch.lineage.analyze import analyze

CASES_FILE = Path(__file__).with_name("lineage_cases.txt")


@dataclass
class Case:
    name: str
    sql: str = ""
    dialect: str = "duckdb"
    self_key: str | None = None
    edges: dict[str, set[tuple[str, str]] | None] = field(default_factory=dict)
    keys: set[tuple[str, str]] | None = None
    columns: list[str] | None = None
    tables: list[str] | None = None
    incomplete: bool = False
    error: bool = False


def _edges(text: str) -> set[tuple[str, str]]:
    out = set()
    for part in text.split(","):
        part = part.strip()
        if part:
            ref, kind = part.rsplit(" ", 1)
            out.add((ref.strip(), kind.strip()))
    return out


def _split_top(text: str) -> list[str]:
    """Split on commas outside parentheses (`struct(a int, b int)` stays whole)."""
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    return [*parts, current]


def _names(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def load_cases() -> tuple[dict[str, list[tuple[str, str]]], list[Case]]:
    schemas: dict[str, list[tuple[str, str]]] = {}
    cases: list[Case] = []
    case: Case | None = None
    mode = ""
    for raw in CASES_FILE.read_text().splitlines():
        line = raw.rstrip()
        if line.startswith("#") or (not line.strip() and mode != "sql"):
            continue
        if line.startswith("schema:"):
            key, cols = line[len("schema:") :].split(":", 1)
            schemas[key.strip()] = [
                (c.strip().split(" ", 1)[0].strip('"'), c.strip().split(" ", 1)[1])
                for c in _split_top(cols)
            ]
            continue
        if line.startswith("=== "):
            case = Case(name=line[4:].strip())
            cases.append(case)
            mode = ""
            continue
        assert case is not None, f"{line!r} before the first case"
        if line == "sql:":
            mode = "sql"
        elif line == "expect:":
            mode = "expect"
        elif mode == "sql":
            case.sql += line + "\n"
        elif line.startswith("dialect:"):
            case.dialect = line.split(":", 1)[1].strip()
        elif line.startswith("self:"):
            case.self_key = line.split(":", 1)[1].strip()
        elif line.startswith("columns:"):
            case.columns = _names(line.split(":", 1)[1])
        elif line.startswith("tables:"):
            case.tables = _names(line.split(":", 1)[1])
        elif line.strip() == "incomplete":
            case.incomplete = True
        elif line.strip() == "error":
            case.error = True
        elif "<-" in line:
            name, rhs = (p.strip() for p in line.split("<-", 1))
            if name == "keys":
                case.keys = _edges(rhs)
            elif rhs == "?":
                case.edges[name] = None
            elif rhs == "(none)":
                case.edges[name] = set()
            else:
                case.edges[name] = _edges(rhs)
        else:
            raise AssertionError(f"case {case.name!r}: cannot read {line!r}")
    return schemas, cases


SCHEMAS, CASES = load_cases()


def test_the_cases_file_has_every_construct() -> None:
    names = " ".join(c.name for c in CASES)
    for construct in (
        "star",
        "exclude",
        "replace",
        "ctes",
        "subquery",
        "union",
        "window",
        "qualify",
        "quoted",
        "struct",
        "aggregation",
    ):
        assert construct in names, construct


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_lineage_case(case: Case) -> None:
    result = analyze(case.sql, case.dialect, SCHEMAS, self_key=case.self_key)
    if case.error:
        assert result.error, result
        return
    assert result.error is None, result.error
    got = {c.name: c for c in result.columns}
    for name, expected in case.edges.items():
        assert name in got, f"no output column {name!r}: {list(got)}"
        col = got[name]
        if expected is None:
            assert col.error, f"{name}: expected 'unknown', got {col.upstream}"
            continue
        assert col.error is None, f"{name}: {col.error}"
        assert {(e.ref, e.transform.value) for e in col.upstream} == expected, name
    if case.keys is not None:
        assert {(e.ref, e.transform.value) for e in result.keys} == case.keys
    if case.columns is not None:
        assert result.column_names == case.columns
    if case.tables is not None:
        assert list(result.tables) == case.tables
    assert result.incomplete is case.incomplete


def test_one_bad_column_does_not_hide_the_others() -> None:
    result = analyze(
        "select o.order_id, mystery from raw.orders o, legacy.codes", "duckdb", SCHEMAS
    )
    by_name = {c.name: c for c in result.columns}
    assert [e.ref for e in by_name["order_id"].upstream] == ["raw.orders.order_id"]
    assert by_name["mystery"].error and "mystery" in by_name["mystery"].error


def test_fingerprint_changes_with_the_derivation_only() -> None:
    def fp(sql: str) -> dict[str, str]:
        return {c.name: c.fingerprint for c in analyze(sql, "duckdb", SCHEMAS).columns}

    a = fp("select order_id, amount * 2 as x from raw.orders")
    b = fp("SELECT order_id,\n    amount*2 AS x\nFROM raw.orders  -- reformatted")
    c = fp("select order_id, amount * 3 as x from raw.orders")
    assert a == b
    assert a["order_id"] == c["order_id"] and a["x"] != c["x"]


def test_json_round_trip() -> None:
    from sqlorch.lineage.model import ModelLineage

    result = analyze(
        "select customer_id, sum(amount) as s from raw.orders where status = 'x' group by 1",
        "duckdb",
        SCHEMAS,
    )
    assert ModelLineage.from_json(result.to_json()) == result
