{#- Routes with their Python-computed delay score (ingest/scoring.py, which reads route_stats). -#}
with routes as (
    select * from {{ ref('route_stats') }}
),

scores as (
    select * from {{ source('analytics', 'route_delay_score') }}
),

airports as (
    select * from {{ ref('stg_airports') }}
)

select
    routes.route,
    routes.origin,
    origin_airport.airport_name as origin_name,
    routes.dest,
    dest_airport.airport_name as dest_name,
    routes.distance_mi,
    routes.carriers,
    routes.flights,
    routes.avg_dep_delay,
    routes.avg_arr_delay,
    {{ minutes_to_hours('routes.avg_arr_delay') }} as avg_arr_delay_hours,
    routes.arrival_delay_rate,
    scores.delay_score,
    scores.delay_rank,
    case
        when scores.delay_score < 15 then 'A'
        when scores.delay_score < 20 then 'B'
        when scores.delay_score < 25 then 'C'
        else 'D'
    end as delay_grade
from routes
inner join scores
    on routes.origin = scores.origin
    and routes.dest = scores.dest
left join airports as origin_airport on routes.origin = origin_airport.airport_code
left join airports as dest_airport on routes.dest = dest_airport.airport_code
