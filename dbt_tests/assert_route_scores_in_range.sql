-- Delay scores computed in Python (ingest/scoring.py) are between 0 and 100.
select route, delay_score
from {{ ref('mart_route_scorecard') }}
where delay_score < 0 or delay_score > 100
