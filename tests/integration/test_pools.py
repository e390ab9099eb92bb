"""Pools from settings, asserted from the start and end times the state store recorded."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conftest import TinyProject, assert_clean_error, run_cli

pytestmark = pytest.mark.dbt

Make = Callable[..., TinyProject]

ASSETS = """
    import time

    import pyarrow as pa

    from sqlorch import asset


    def make(name, pool):
        def fn(context):
            waited = sum(context.throttle() for _ in range(2))
            context.add_metadata(waited=waited)
            time.sleep(0.1)
            return pa.table({"x": [1]})

        fn.__name__ = name
        return asset(pool=pool)(fn)


    api1 = make("api1", "nyc_api")
    api2 = make("api2", "nyc_api")
    api3 = make("api3", "nyc_api")
    free1 = make("free1", None)
    free2 = make("free2", None)
"""


def test_a_pool_of_one_never_runs_two_of_its_assets_at_once(make_dbt_project: Make) -> None:
    project = make_dbt_project(
        {
            "models/a.sql": "select 1 as x\n",
            "pyproject.toml": """
                [tool.sqlorch]
                threads = 4

                [tool.sqlorch.pools]
                nyc_api = { limit = 1, rate = 1000 }
            """,
        },
        {"ingest/api.py": ASSETS},
    )
    result = run_cli(project.path, "build")
    assert result.exit_code == 0, result.describe()
    events = run_cli(project.path, "logs", "--json").json_lines()
    spans: dict[str, list[str]] = {}
    for e in events:
        if e["kind"] == "asset_started":
            spans[e["asset"]] = [e["ts"]]
        elif e["kind"] == "asset_materialized" and e["asset"] in spans:
            spans[e["asset"]].append(e["ts"])
    pool = sorted(spans[k] for k in ("raw.api1", "raw.api2", "raw.api3"))
    for (_, end), (start, _) in zip(pool, pool[1:], strict=False):
        assert start >= end, pool
    # the unpooled assets ran beside the pool's: the pool does not serialize everything
    free = sorted(spans[k] for k in ("raw.free1", "raw.free2"))
    overlaps = [f for f in free for p in pool if f[0] < p[1] and p[0] < f[1]]
    assert overlaps, (pool, free)


def test_malformed_pool_setting(make_dbt_project: Make) -> None:
    project = make_dbt_project(
        {
            "models/a.sql": "select 1 as x\n",
            "pyproject.toml": """
                [tool.sqlorch.pools]
                nyc_api = { limit = 0 }
            """,
        }
    )
    assert_clean_error(run_cli(project.path, "ls"), 2, "pools.nyc_api", "pyproject.toml")
