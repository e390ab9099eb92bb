"""Python checks of the example project: what dbt's generic tests cannot say in one line."""

from __future__ import annotations

from typing import Any

from sqlorch import CheckResult, check

NYC_AIRPORTS = ("EWR", "JFK", "LGA")


@check(asset="raw.flights", blocking=True)
def flights_depart_from_nyc(rows: Any) -> CheckResult:
    """Every flight departs from one of the three NYC airports, and each has flights.

    `raw.flights` is partitioned by day: the check sees the rows of each partition run.
    """
    counts = rows.group_by("origin").aggregate([("origin", "count")]).to_pylist()
    by_origin = {c["origin"]: c["origin_count"] for c in counts}
    others = sorted(str(o) for o in by_origin if o not in NYC_AIRPORTS)
    missing = [a for a in NYC_AIRPORTS if a not in by_origin]
    problems = []
    if others:
        problems.append(f"flights from {', '.join(others)}")
    if missing:
        problems.append(f"no flights from {', '.join(missing)}")
    return CheckResult(not problems, "; ".join(problems), {"flights_by_origin": by_origin})


@check(asset="analytics.route_delay_score", blocking=False)
def worst_route_is_ranked_first(rows: Any) -> CheckResult:
    """Rank 1 holds the highest score (a warning only: the ranking is informational)."""
    scores = rows.sort_by("delay_rank").column("delay_score").to_pylist()
    top = scores[0] if scores else None
    return CheckResult(bool(scores) and top == max(scores), "", {"top_score": top})
