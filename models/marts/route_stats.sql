select
    route,
    origin,
    dest,
    max(distance_mi) as distance_mi,
    count(distinct carrier_code) as carriers,
    count(*) as flights,
    count(*) filter (where is_cancelled) as cancelled_flights,
    count(arr_delay_min) as completed_flights,
    count(*) filter (where is_arrival_delayed) as delayed_arrivals,
    {{ rounded('avg(dep_delay_min)', 2) }} as avg_dep_delay,
    {{ rounded('avg(arr_delay_min)', 2) }} as avg_arr_delay,
    {{ rounded('avg(air_time_min)', 1) }} as avg_air_time_min,
    {{ ratio(
        'count(*) filter (where is_arrival_delayed)', 'nullif(count(arr_delay_min), 0)', 4
    ) }} as arrival_delay_rate
from {{ ref('fct_flights') }}
group by route, origin, dest
