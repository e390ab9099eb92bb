"""Generate a synthetic, deterministic dbt project for sqlorch's benchmarks.

    python benchmarks/generate.py OUT_DIR --models N --rows R --days D [--seed S]

writes into OUT_DIR:

- `dbt_project.yml` (project `bench`), `profiles.yml` (profile `bench`, DuckDB at the ABSOLUTE
  path OUT_DIR/bench.duckdb, threads 4, schema main), and `sqlorch.toml` (no Python assets,
  threads 4), which keeps sqlorch from using the settings of a repo the project sits in;
- `models/sources.yml`: source `raw` with table `events`;
- exactly N models in ~10 layers under `models/layer_XX/`. Layer 1 are staging models that
  filter and cast `source('raw', 'events')`; every later model refs 1-3 earlier models (the
  first always from the layer just before, so the graph is ~10 deep) and aggregates, joins,
  unions or runs a window over them. About 85% are tables, the rest views;
- `bench.duckdb` holding only `raw.events`: exactly R rows spread over D days from 2024-01-01,
  generated in DuckDB SQL from `range()` and `hash()`;
- `bench_meta.json`: the parameters, so `run_build.py` can tell whether a project is reusable.

The output depends only on the arguments (and, for the data, on the DuckDB version whose
`hash()` it uses). Staging models keep 3-25% of the raw rows (30k-250k of 1M); later models
aggregate to a user bucket x day x event type grain (at most 45k rows), so 1000 models over
1M rows build in about a minute with dbt on 2 cores, most of it dbt's own per-model cost.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

GENERATOR_VERSION = 3
LAYERS = 10
META_FILE = "bench_meta.json"
DB_FILE = "bench.duckdb"
EVENT_TYPES = ("view", "click", "add_to_cart", "purchase", "refund")
KEY_COLUMNS = ("user_id", "event_date", "event_type")


@dataclass(frozen=True, slots=True)
class Model:
    """One generated model: its name, layer, materialization and SQL."""

    name: str
    layer: int
    materialized: str
    sql: str


def layer_sizes(models: int) -> list[int]:
    """Split `models` over at most LAYERS layers as evenly as possible."""
    layers = max(1, min(LAYERS, models))
    base, extra = divmod(models, layers)
    return [base + (1 if i < extra else 0) for i in range(layers)]


def staging_sql(rng: random.Random) -> str:
    """Return a staging model: filter and cast the raw events."""
    kind = rng.choice(("user_mod", "event_type", "amount", "hours"))
    if kind == "user_mod":
        m = rng.randint(5, 20)
        where = f"user_id % {m} = {rng.randrange(m)}"
    elif kind == "event_type":
        where = f"event_type = '{rng.choice(EVENT_TYPES[1:])}'"
    elif kind == "amount":
        where = f"amount >= {rng.randint(800, 970)}"
    else:
        start = rng.randint(0, 20)
        where = f"hour(event_time) between {start} and {start + rng.randint(0, 3)}"
    factor = rng.choice(("1.0", "0.9", "1.1", "1.21", "100.0"))
    return (
        "select\n"
        "    cast(event_id as bigint) as event_id,\n"
        "    cast(user_id as integer) as user_id,\n"
        "    lower(event_type) as event_type,\n"
        f"    cast(amount * {factor} as double) as amount,\n"
        "    event_time,\n"
        "    cast(event_time as date) as event_date\n"
        "from {{ source('raw', 'events') }}\n"
        f"where {where}\n"
    )


def rollup_cte(alias: str, parent: str, parent_is_staging: bool, buckets: int) -> str:
    """Return a CTE rolling `parent` up to the (user bucket, day, event type) grain."""
    n = "count(*)" if parent_is_staging else "sum(n)"
    return (
        f"{alias} as (\n"
        "    select\n"
        f"        user_id % {buckets} as user_id,\n"
        "        event_date,\n"
        "        event_type,\n"
        "        sum(amount) as amount,\n"
        f"        cast({n} as bigint) as n\n"
        f"    from {{{{ ref('{parent}') }}}}\n"
        "    group by 1, 2, 3\n"
        ")"
    )


def downstream_sql(rng: random.Random, parents: list[tuple[str, bool]]) -> str:
    """Return a model over `parents` (name, is_staging) with columns user_id..n."""
    buckets = rng.choice((10, 20, 50, 100))
    ctes = ",\n".join(
        rollup_cte(f"p{i}", name, staging, buckets) for i, (name, staging) in enumerate(parents)
    )
    head = f"with {ctes}\n"
    if len(parents) == 1:
        if rng.random() < 0.6:
            threshold = rng.randint(0, 3)
            return (
                head + "select user_id, event_date, event_type, amount, n\n"
                f"from p0\nwhere n > {threshold}\n"
            )
        width = rng.randint(2, 13)
        return (
            head + "select\n"
            "    user_id,\n"
            "    event_date,\n"
            "    event_type,\n"
            "    sum(amount) over (\n"
            "        partition by user_id, event_type order by event_date\n"
            f"        rows between {width} preceding and current row\n"
            "    ) as amount,\n"
            "    n\n"
            "from p0\n"
        )
    if rng.random() < 0.55:
        others = range(1, len(parents))
        on = {i: " and ".join(f"p{i}.{c} = p0.{c}" for c in KEY_COLUMNS) for i in others}
        amount = " + ".join(["p0.amount", *(f"coalesce(p{i}.amount, 0)" for i in others)])
        count = " + ".join(["p0.n", *(f"coalesce(p{i}.n, 0)" for i in others)])
        joins = "".join(f"left join p{i}\n    on {on[i]}\n" for i in others)
        return (
            head + "select\n"
            "    p0.user_id,\n"
            "    p0.event_date,\n"
            "    p0.event_type,\n"
            f"    {amount} as amount,\n"
            f"    {count} as n\n"
            f"from p0\n{joins}"
        )
    union = "\n    union all\n".join(
        f"    select user_id, event_date, event_type, amount, n from p{i}"
        for i in range(len(parents))
    )
    return (
        head + "select user_id, event_date, event_type, sum(amount) as amount, "
        "cast(sum(n) as bigint) as n\n"
        f"from (\n{union}\n) as u\n"
        "group by 1, 2, 3\n"
    )


def generate_models(models: int, seed: int) -> list[Model]:
    """Return exactly `models` models in layers, deterministic from `seed`."""
    rng = random.Random(seed)
    out: list[Model] = []
    by_layer: list[list[Model]] = []
    index = 0
    for layer, size in enumerate(layer_sizes(models), start=1):
        current: list[Model] = []
        for _ in range(size):
            index += 1
            if layer == 1:
                name = f"stg_events_{index:04d}"
                materialized = "view" if rng.random() < 0.1 else "table"
                sql = staging_sql(rng)
            else:
                name = f"l{layer:02d}_model_{index:04d}"
                materialized = "view" if rng.random() < 0.2 else "table"
                first = rng.choice(by_layer[-1])
                picked = [first]
                earlier = [m for ms in by_layer for m in ms if m is not first]
                wanted = rng.choice((1, 1, 2, 2, 3))
                picked += rng.sample(earlier, min(wanted - 1, len(earlier)))
                sql = downstream_sql(rng, [(m.name, m.layer == 1) for m in picked])
            current.append(Model(name, layer, materialized, sql))
        by_layer.append(current)
        out.extend(current)
    return out


def raw_events_sql(rows: int, days: int, seed: int) -> str:
    """Return the SQL that creates `raw.events` with exactly `rows` rows over `days` days."""
    users = max(1, min(100_000, rows // 10))
    span_us = days * 86_400 * 1_000_000
    return f"""
create schema if not exists raw;
create or replace table raw.events as
select
    i::bigint as event_id,
    (hash(i, {seed}, 1) % {users})::integer as user_id,
    case
        when hash(i, {seed}, 2) % 100 < 50 then 'view'
        when hash(i, {seed}, 2) % 100 < 75 then 'click'
        when hash(i, {seed}, 2) % 100 < 87 then 'add_to_cart'
        when hash(i, {seed}, 2) % 100 < 97 then 'purchase'
        else 'refund'
    end as event_type,
    ((hash(i, {seed}, 3) % 100000) / 100.0)::double as amount,
    timestamp '2024-01-01' + to_microseconds((hash(i, {seed}, 4) % {span_us})::bigint)
        as event_time
from range({rows}) as t(i)
order by i;
"""


def write_raw(path: Path, rows: int, days: int, seed: int) -> None:
    """Create the DuckDB file `path` holding only `raw.events` (replacing any old file)."""
    import duckdb

    for stale in (path, path.with_name(path.name + ".wal")):
        stale.unlink(missing_ok=True)
    con = duckdb.connect(str(path))
    try:
        con.execute(raw_events_sql(rows, days, seed))
        con.execute("checkpoint")
    finally:
        con.close()


def project_files(out: Path, models: list[Model]) -> dict[str, str]:
    """Return the project's text files, path relative to `out` -> content."""
    db = (out / DB_FILE).resolve()
    files = {
        "dbt_project.yml": (
            "name: bench\n"
            "version: '1.0.0'\n"
            "config-version: 2\n"
            "profile: bench\n"
            "model-paths: ['models']\n"
            "target-path: target\n"
            "clean-targets: ['target']\n"
            "models:\n"
            "  bench:\n"
            "    +materialized: table\n"
        ),
        "profiles.yml": (
            "bench:\n"
            "  target: dev\n"
            "  outputs:\n"
            "    dev:\n"
            "      type: duckdb\n"
            f"      path: {json.dumps(str(db))}\n"
            "      threads: 4\n"
            "      schema: main\n"
        ),
        # sqlorch looks for settings from the project upwards; this file stops the search here,
        # so a project generated inside a repo does not pick up that repo's [tool.sqlorch]
        "sqlorch.toml": (
            "# settings for the generated benchmark project: no Python assets\n"
            "ingest = []\n"
            "threads = 4\n"
        ),
        "models/sources.yml": (
            "version: 2\n"
            "sources:\n"
            "  - name: raw\n"
            "    schema: raw\n"
            "    tables:\n"
            "      - name: events\n"
        ),
    }
    for m in models:
        config = "{{ config(materialized='view') }}\n\n" if m.materialized == "view" else ""
        files[f"models/layer_{m.layer:02d}/{m.name}.sql"] = config + m.sql
    return files


def generate(out: Path, models: int, rows: int, days: int, seed: int) -> dict[str, int]:
    """Write the project and its raw data into `out`; return its parameters.

    Raises:
        SystemExit: `out` is a non-empty directory that this generator did not create.
    """
    if models < 1 or rows < 1 or days < 1:
        raise SystemExit("--models, --rows and --days must be at least 1")
    out.mkdir(parents=True, exist_ok=True)
    if any(out.iterdir()) and not (out / META_FILE).exists():
        raise SystemExit(f"{out} is not empty and holds no {META_FILE}; pick another OUT_DIR")
    shutil.rmtree(out / "models", ignore_errors=True)
    for rel, text in project_files(out, generate_models(models, seed)).items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    write_raw(out / DB_FILE, rows, days, seed)
    meta = {
        "generator_version": GENERATOR_VERSION,
        "models": models,
        "rows": rows,
        "days": days,
        "seed": seed,
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--models", type=int, required=True)
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--days", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    meta = generate(args.out_dir, args.models, args.rows, args.days, args.seed)
    print(f"wrote {args.out_dir}: {json.dumps(meta)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
