"""Selection: the cases live in selection_cases.txt, one line each."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from sqlorch.core.graph import AssetGraph, AssetKind, AssetNode
from sqlorch.core.selection import resolve_selection, select
from sqlorch.errors import SelectionError

CASES = Path(__file__).with_name("selection_cases.txt")

PY, MODEL, SEED, SNAP, SRC = (
    AssetKind.PYTHON,
    AssetKind.MODEL,
    AssetKind.SEED,
    AssetKind.SNAPSHOT,
    AssetKind.SOURCE,
)


def _node(
    key: str,
    kind: AssetKind,
    file: str,
    fqn: str,
    deps: str = "",
    tags: str = "",
    sources: str = "",
    materialized: str | None = None,
    package: str | None = "nycflights",
) -> AssetNode:
    source_names = tuple(sources.split())
    return AssetNode(
        key=key,
        kind=kind,
        name=key.rsplit(".", 1)[1],
        deps=tuple(deps.split()),
        fqn=tuple(fqn.split()),
        file=file,
        tags=tuple(tags.split()),
        package=package,
        source_names=source_names,
        source_ids=tuple(f"source.nycflights.{s}" for s in source_names),
        materialized=materialized,
    )


def nycflights_graph() -> AssetGraph:
    """Return the example project's shape: ingest -> staging -> marts -> Python -> mart."""
    stg = "models/staging"
    return AssetGraph(
        [
            # Python ingestion assets (fqn: module path + function, no package, as the project
            # loader builds them); the dbt sources raw.* map onto them.
            _node(
                "raw.flights",
                PY,
                "ingest/nycflights.py",
                "ingest nycflights flights",
                tags="nightly ingest",
                sources="raw.flights",
                package=None,
            ),
            _node(
                "raw.weather",
                PY,
                "ingest/nycflights.py",
                "ingest nycflights weather",
                tags="nightly_weather ingest",
                sources="raw.weather",
                package=None,
            ),
            _node(
                "raw.airlines",
                PY,
                "ingest/dims.py",
                "ingest dims airlines",
                tags="ingest",
                sources="raw.airlines",
                package=None,
            ),
            # A dbt source nothing produces: observed only.
            _node(
                "raw.planes",
                SRC,
                f"{stg}/sources.yml",
                "nycflights raw planes",
                sources="raw.planes",
            ),
            _node(
                "main.carrier_names",
                SEED,
                "seeds/carrier_names.csv",
                "nycflights carrier_names",
                materialized="seed",
            ),
            _node(
                "main.stg_flights",
                MODEL,
                f"{stg}/stg_flights.sql",
                "nycflights staging stg_flights",
                "raw.flights",
                tags="staging PII",
                materialized="view",
            ),
            _node(
                "main.stg_weather",
                MODEL,
                f"{stg}/stg_weather.sql",
                "nycflights staging stg_weather",
                "raw.weather",
                tags="staging",
                materialized="view",
            ),
            _node(
                "main.stg_airlines",
                MODEL,
                f"{stg}/stg_airlines.sql",
                "nycflights staging stg_airlines",
                "raw.airlines main.carrier_names",
                tags="staging",
                materialized="view",
            ),
            _node(
                "main.stg_planes",
                MODEL,
                f"{stg}/stg_planes.sql",
                "nycflights staging stg_planes",
                "raw.planes",
                tags="staging",
                materialized="view",
            ),
            _node(
                "marts.fct_delays",
                MODEL,
                "models/marts/fct_delays.sql",
                "nycflights marts fct_delays",
                "main.stg_flights main.stg_weather",
                tags="nightly finance",
                materialized="incremental",
            ),
            _node(
                "marts.route_stats",
                MODEL,
                "models/marts/route_stats.sql",
                "nycflights marts route_stats",
                "marts.fct_delays main.stg_airlines main.stg_planes",
                materialized="table",
            ),
            # A Python asset downstream of a mart; a dbt source maps onto it too.
            _node(
                "analytics.delay_forecast",
                PY,
                "ingest/forecast.py",
                "ingest forecast delay_forecast",
                "marts.fct_delays",
                tags="ml",
                sources="analytics.delay_forecast",
                package=None,
            ),
            _node(
                "marts.forecast_report",
                MODEL,
                "models/marts/reporting/forecast_report.sql",
                "nycflights marts reporting forecast_report",
                "analytics.delay_forecast",
                tags="finance",
                materialized="table",
            ),
            _node(
                "snapshots.airlines_snapshot",
                SNAP,
                "snapshots/airlines_snapshot.sql",
                "nycflights airlines_snapshot airlines_snapshot",
                "raw.airlines",
                materialized="snapshot",
            ),
            # A model from an installed dbt package.
            _node(
                "main.dates",
                MODEL,
                "models/dates.sql",
                "dbt_date dates",
                package="dbt_date",
                materialized="table",
            ),
        ]
    )


@dataclass(frozen=True)
class Case:
    line: int
    text: str
    select: list[str] | None
    exclude: list[str] | None
    expected: str
    unmatched: str | None

    def __str__(self) -> str:
        return f"L{self.line}: {self.text}"


def _load_cases() -> list[Case]:
    cases = []
    for number, line in enumerate(CASES.read_text().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        text, expected, *rest = (part.strip() for part in line.split(" | "))
        selects: list[str] = []
        excludes: list[str] = []
        words = iter(shlex.split(text))
        for word in words:
            if word == "--exclude":
                excludes.append(next(words))
            elif word == "-s":
                selects.append(next(words))
            else:
                selects.append(word)
        unmatched = rest[0] if rest else None
        cases.append(Case(number, text, selects or None, excludes or None, expected, unmatched))
    return cases


GRAPH = nycflights_graph()


@pytest.mark.parametrize("case", _load_cases(), ids=str)
def test_selection_case(case: Case) -> None:
    if case.expected.startswith("ERROR:"):
        with pytest.raises(SelectionError) as info:
            select(GRAPH, case.select, case.exclude)
        assert case.expected.removeprefix("ERROR:").strip() in str(info.value)
        assert "\n" not in str(info.value) and info.value.exit_code == 2
        return
    result = resolve_selection(GRAPH, case.select, case.exclude)
    assert ", ".join(sorted(result.keys)) == case.expected
    assert select(GRAPH, case.select, case.exclude) == set(result.keys)
    if case.unmatched is not None:
        reported = [*result.unmatched, *(f"--exclude {x}" for x in result.unmatched_exclude)]
        assert "; ".join(reported) == case.unmatched.removeprefix("unmatched:").strip()
    else:
        assert not result.unmatched and not result.unmatched_exclude


@pytest.mark.parametrize("key", sorted(GRAPH.assets))
@pytest.mark.parametrize("depth", [None, 0, 1, 2])
def test_operators_agree_with_graph_walks(key: str, depth: int | None) -> None:
    prefix = "" if depth is None else str(depth)
    assert select(GRAPH, [f"{prefix}+{key}"]) == {key} | GRAPH.ancestors(key, depth)
    assert select(GRAPH, [f"{key}+{prefix}"]) == {key} | GRAPH.descendants(key, depth)
    below = {key} | GRAPH.descendants(key)
    expected = below.union(*(GRAPH.ancestors(k) for k in below))
    assert select(GRAPH, [f"@{key}"]) == expected


def test_selection_on_a_large_graph() -> None:
    """Selections over a 1000-node graph give the graph walk's answer (speed: benchmarks/)."""
    nodes = [
        AssetNode(
            key=f"s{i % 7}.m{i}",
            kind=AssetKind.MODEL,
            name=f"m{i}",
            deps=tuple(f"s{j % 7}.m{j}" for j in (i - 1, i - 13) if j >= 0),
            fqn=("proj", f"dir{i % 10}", f"sub{i % 3}", f"m{i}"),
            file=f"models/dir{i % 10}/sub{i % 3}/m{i}.sql",
            tags=(f"t{i % 5}",),
        )
        for i in range(1000)
    ]
    graph = AssetGraph(nodes)
    assert select(graph, ["m500"]) == {"s3.m500"}
    assert select(graph, ["+m500"]) == {"s3.m500"} | graph.ancestors("s3.m500")
    assert select(graph, ["tag:t3"]) == {n.key for n in nodes if n.tags == ("t3",)}
    assert select(graph, ["dir4.sub1"]) == {n.key for n in nodes if n.fqn[1:3] == ("dir4", "sub1")}
    assert select(graph, ["path:models/dir2"]) == {n.key for n in nodes if n.fqn[1] == "dir2"}
    assert select(graph, ["m5*"]) == {n.key for n in nodes if n.name.startswith("m5")}
