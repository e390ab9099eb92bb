"""The history use case, called directly on a state store (no CLI, no dbt)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sqlorch.app.history import asset_history, resolve_asset, sparkline
from sqlorch.errors import ConfigError
from sqlorch.state.rows import attempt_row, check_result_row, materialization_row
from sqlorch.state.sqlite import SqliteStateStore


@pytest.fixture
def store(tmp_path: Path) -> SqliteStateStore:
    """Two runs of raw.orders (the second failed), one of main.orders, one of mart.orders."""
    store = SqliteStateStore(tmp_path / "state.db")
    store.write_batch(
        [],
        [
            attempt_row("r1", "raw.orders", "success", None, "2026-01-01T00:00:02Z"),
            attempt_row("r2", "raw.orders", "failed", None, "2026-01-02T00:00:02Z", "boom"),
        ],
        [
            materialization_row(
                "raw.orders", "r1", "2026-01-01T00:00:02Z", 10, 0.5, "v1", columns=[("id", "INT")]
            ),
            materialization_row("main.orders", "r1", "2026-01-01T00:00:03Z", 5, 0.25, "v1"),
            materialization_row("mart.orders", "r1", "2026-01-01T00:00:04Z", 5, 0.25, "v1"),
        ],
        [
            check_result_row(
                "r1",
                "c1",
                "not_empty",
                "python",
                "raw.orders",
                "pass",
                True,
                "2026-01-01T00:00:03Z",
            )
        ],
    )
    return store


def test_sparkline_scales_between_min_and_max() -> None:
    assert sparkline([1, 8]) == "▁█"
    assert sparkline([None, 3, 3]) == " ▅▅"
    assert sparkline([None]) == " "


def test_resolve_asset_by_key_or_unique_table_name(store: SqliteStateStore) -> None:
    assert resolve_asset(store, "RAW.orders") == "raw.orders"
    store.write_batch([], [], [materialization_row("raw.once", "r1", "t", 1, 0.1, "v1")])
    assert resolve_asset(store, "once") == "raw.once"


@pytest.mark.parametrize(
    ("name", "fragments"),
    [
        ("nothing", ("No history for 'nothing'", "state.db", "sqlorch status")),
        ("orders", ("several assets", "main.orders, mart.orders, raw.orders", "full key")),
    ],
)
def test_resolve_asset_errors_name_what_to_do(
    store: SqliteStateStore, name: str, fragments: tuple[str, ...]
) -> None:
    with pytest.raises(ConfigError) as err:
        resolve_asset(store, name)
    for fragment in fragments:
        assert fragment in str(err.value)


def test_asset_history_groups_checks_by_run_and_lists_failures(store: SqliteStateStore) -> None:
    doc = asset_history(store, "raw.orders")
    assert doc["key"] == "raw.orders"
    (mat,) = doc["materializations"]
    assert (mat["run_id"], mat["rows"], mat["code_version"]) == ("r1", 10, "v1")
    assert mat["columns"] == [{"name": "id", "type": "INT"}]
    assert [(c["check"], c["status"]) for c in mat["checks"]] == [("not_empty", "pass")]
    assert doc["checks"] == mat["checks"]
    assert doc["failures"] == [
        {"run_id": "r2", "at": "2026-01-02T00:00:02Z", "status": "failed", "error": "boom"}
    ]
