"""`?` placeholders outside quotes: translated for psycopg, or filled with literals."""

from __future__ import annotations

import datetime as dt

from sqlorch.core.placeholders import fill_placeholders, qmark_to_pyformat
from sqlorch.warehouse.postgres import inline_params


def test_psycopg_placeholders_leave_quoted_question_marks_and_escape_percent() -> None:
    sql = """SELECT '?', "a?b" FROM t WHERE x = ? AND y LIKE 'x%' AND z = ?"""
    assert qmark_to_pyformat(sql) == (
        """SELECT '?', "a?b" FROM t WHERE x = %s AND y LIKE 'x%%' AND z = %s"""
    )


def test_fill_placeholders_fills_in_order_and_keeps_percent_by_default() -> None:
    numbers = iter(("1", "2"))
    assert fill_placeholders("a = ? AND b LIKE '?%' AND c = ?", lambda: next(numbers)) == (
        "a = 1 AND b LIKE '?%' AND c = 2"
    )


def test_inline_params_writes_sql_literals() -> None:
    sql = inline_params(
        "d >= ? AND d < ? AND name = ? AND '?' <> ?",
        [dt.date(2013, 3, 1), dt.date(2013, 3, 2), "o'hare", None],
    )
    assert "'?' <>" in sql and sql.count("?") == 1
    assert "2013-03-01" in sql and "2013-03-02" in sql
    assert "'o''hare'" in sql and sql.endswith("NULL")
