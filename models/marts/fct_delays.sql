{#- Daily delay facts. unique_key is the day: an incremental run or a backfill window
    deletes the days it rebuilds and inserts them again, so each day is one partition. -#}
{{
    config(
        materialized='incremental',
        unique_key='flight_date',
        incremental_strategy=('insert_overwrite' if target.type == 'spark' else 'delete+insert'),
        partition_by=(['flight_date'] if target.type == 'spark' else none),
        file_format=('parquet' if target.type == 'spark' else none),
        on_schema_change='fail',
        meta={'sqlorch': {'partitions': {'type': 'daily', 'start': '2013-01-01', 'end': '2014-01-01',
                           'timezone': 'America/New_York', 'column': 'flight_date'}}},
    )
}}

select
    flight_date || '-' || origin || '-' || carrier_code as delay_id,
    flight_date,
    origin,
    carrier_code,
    bool_or(is_holiday) as is_holiday,
    count(*) as flights,
    count(*) filter (where is_cancelled) as cancelled_flights,
    count(dep_delay_min) as departed_flights,
    count(arr_delay_min) as arrived_flights,
    count(*) filter (where is_departure_delayed) as delayed_departures,
    count(*) filter (where is_arrival_delayed) as delayed_arrivals,
    coalesce(sum(dep_delay_min), 0) as total_dep_delay_min,
    coalesce(sum(arr_delay_min), 0) as total_arr_delay_min,
    {{ rounded('avg(dep_delay_min)', 2) }} as avg_dep_delay,
    {{ rounded('avg(arr_delay_min)', 2) }} as avg_arr_delay
from {{ ref('fct_flights') }}
where {{ sqlorch_window('flight_date') }}
group by flight_date, origin, carrier_code
