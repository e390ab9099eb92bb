select
    {{ format_time('flight_date', '%Y%m%d') }} || '-' || carrier
        || cast(flight as {{ dbt.type_string() }}) || '-' || origin
        as flight_id,
    flight_date,
    carrier as carrier_code,
    flight as flight_number,
    tailnum,
    origin,
    dest,
    {{ hhmm_to_time('sched_dep_time') }} as scheduled_departure_time,
    {{ hhmm_to_time('dep_time') }} as departure_time,
    {{ hhmm_to_time('sched_arr_time') }} as scheduled_arrival_time,
    {{ hhmm_to_time('arr_time') }} as arrival_time,
    time_hour as scheduled_departure_hour_utc,
    dep_delay as dep_delay_min,
    arr_delay as arr_delay_min,
    air_time as air_time_min,
    distance as distance_mi,
    dep_time is null as is_cancelled,
    dep_time is not null and arr_delay is null as is_diverted
from {{ source('raw', 'flights') }}
