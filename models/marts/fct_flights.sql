{{
    config(
        materialized='incremental',
        unique_key='flight_id',
        incremental_strategy=('insert_overwrite' if target.type == 'spark' else 'delete+insert'),
        partition_by=(['flight_date'] if target.type == 'spark' else none),
        file_format=('parquet' if target.type == 'spark' else none),
        on_schema_change='fail',
        meta={'sqlorch': {'partitions': {'type': 'daily', 'start': '2013-01-01', 'end': '2014-01-01',
                           'timezone': 'America/New_York', 'column': 'flight_date'}}},
    )
}}

with flights as (
    select *
    from {{ ref('stg_flights') }}
    where {{ sqlorch_window('flight_date') }}
),

holidays as (
    select * from {{ ref('us_federal_holidays_2013') }}
),

planes as (
    select * from {{ ref('stg_planes') }}
)

select
    flights.flight_id,
    flights.flight_date,
    date_trunc('month', flights.flight_date)::date as flight_month,
    flights.carrier_code,
    flights.flight_number,
    flights.tailnum,
    flights.origin,
    flights.dest,
    flights.origin || '-' || flights.dest as route,
    flights.scheduled_departure_time,
    flights.scheduled_departure_hour_utc,
    flights.dep_delay_min,
    flights.arr_delay_min,
    {{ minutes_to_hours('flights.arr_delay_min') }} as arr_delay_hours,
    flights.air_time_min,
    flights.distance_mi,
    flights.is_cancelled,
    flights.is_diverted,
    coalesce({{ is_delayed('flights.dep_delay_min') }}, false) as is_departure_delayed,
    {{ is_delayed('flights.arr_delay_min') }} as is_arrival_delayed,
    holidays.holiday_date is not null as is_holiday,
    holidays.holiday_name,
    planes.manufacturer as aircraft_manufacturer,
    planes.year_built as aircraft_year_built,
    planes.seats as aircraft_seats
from flights
left join holidays on flights.flight_date = holidays.holiday_date
left join planes on flights.tailnum = planes.tailnum
