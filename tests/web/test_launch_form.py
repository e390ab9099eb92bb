"""The launch form becomes exactly the command line a user would type (no project needed)."""

from __future__ import annotations

import pytest

from sqlorch.app.plans import BackfillRequest, BuildRequest, RetryRequest
from sqlorch.errors import ConfigError
from sqlorch.web.pages.launch import LaunchForm


@pytest.mark.parametrize(
    ("values", "args"),
    [
        ({"command": "build"}, []),
        (
            {"command": "build", "select": "+fct_delays", "full": "1"},
            ["-s", "+fct_delays", "--full"],
        ),
        (
            {"command": "build", "select": "marts", "exclude": "mart_delay_weather"},
            ["-s", "marts", "--exclude", "mart_delay_weather"],
        ),
        (
            {
                "command": "backfill",
                "select": "raw.flights",
                "start": "2013-06-01",
                "end": "2013-06-30",
            },
            ["raw.flights", "--from", "2013-06-01", "--to", "2013-06-30"],
        ),
        (
            {
                "command": "backfill",
                "select": "fct_delays",
                "start": "2013-03-01",
                "downstream": "0",
            },
            ["fct_delays", "--from", "2013-03-01", "--no-downstream"],
        ),
        ({"command": "retry", "run_id": "20261201T1"}, ["20261201T1"]),
        ({"command": "retry"}, []),
        (
            {"command": "wipe", "asset": "raw.flights", "start": "2013-06-01", "delete_data": "1"},
            ["raw.flights", "--delete-data", "--from", "2013-06-01"],
        ),
    ],
)
def test_form_to_command_line(values: dict[str, str], args: list[str]) -> None:
    assert LaunchForm.parse(values).args() == args


def test_form_to_plan_request() -> None:
    assert LaunchForm.parse({"command": "build", "select": "a b"}).request() == BuildRequest(
        select=("a b",)
    )
    backfill = LaunchForm.parse({"command": "backfill", "select": "x", "end": "2013-01-31"})
    assert backfill.request() == BackfillRequest(select=("x",), end="2013-01-31")
    assert LaunchForm.parse({"command": "retry"}).request() == RetryRequest()
    wipe = LaunchForm.parse({"command": "wipe", "asset": "x", "start": "2013-01-01"})
    assert wipe.request() is None


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"command": "rm -rf"}, "Unknown command 'rm -rf'"),
        ({"command": "backfill", "start": "2013-01-01"}, "A backfill needs a selection"),
        ({"command": "backfill", "select": "x"}, "A backfill needs a range"),
        ({"command": "wipe", "asset": "x"}, "A wipe needs an asset and a range"),
    ],
)
def test_bad_forms_are_clear_errors(values: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        LaunchForm.parse(values)
