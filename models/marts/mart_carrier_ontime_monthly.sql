{#- Monthly on-time performance per carrier: monthly partitions over the daily delay facts.
    sqlorch passes each month's window as vars start_date/end_date (a month reads every day
    of it); plain dbt runs rebuild from the last loaded month. -#}
{{
    config(
        materialized='incremental',
        unique_key='flight_month',
        incremental_strategy=('insert_overwrite' if target.type == 'spark' else 'delete+insert'),
        partition_by=(['flight_month'] if target.type == 'spark' else none),
        file_format=('parquet' if target.type == 'spark' else none),
        meta={'sqlorch': {'partitions': {'type': 'monthly', 'start': '2013-01', 'end': '2014-01',
                           'timezone': 'America/New_York', 'column': 'flight_month'}}},
    )
}}

with daily as (
    select
        carrier_code,
        date_trunc('month', flight_date)::date as flight_month,
        flights,
        cancelled_flights,
        arrived_flights,
        delayed_arrivals,
        departed_flights,
        total_dep_delay_min,
        total_arr_delay_min
    from {{ ref('fct_delays') }}
    where
    {%- if var('start_date', none) is not none %}
        flight_date >= date '{{ var("start_date") }}'
        and flight_date < date '{{ var("end_date", "9999-12-31") }}'
    {%- elif is_incremental() %}
        flight_date >= (select max(flight_month) from {{ this }})
    {%- else %}
        true
    {%- endif %}
),

monthly as (
    select
        carrier_code,
        flight_month,
        sum(flights) as flights,
        sum(cancelled_flights) as cancelled_flights,
        sum(arrived_flights) as arrived_flights,
        sum(arrived_flights) - sum(delayed_arrivals) as on_time_arrivals,
        sum(total_dep_delay_min) / nullif(sum(departed_flights), 0) as avg_dep_delay,
        sum(total_arr_delay_min) / nullif(sum(arrived_flights), 0) as avg_arr_delay
    from daily
    group by carrier_code, flight_month
)

select
    monthly.carrier_code || '-' || {{ format_time('monthly.flight_month', '%Y-%m') }} as carrier_month_id,
    monthly.carrier_code,
    airlines.airline_name,
    monthly.flight_month,
    monthly.flights,
    monthly.cancelled_flights,
    monthly.arrived_flights,
    monthly.on_time_arrivals,
    round(monthly.on_time_arrivals / nullif(monthly.arrived_flights, 0), 4) as on_time_rate,
    round(monthly.cancelled_flights / monthly.flights, 4) as cancellation_rate,
    round(monthly.avg_dep_delay, 2) as avg_dep_delay,
    round(monthly.avg_arr_delay, 2) as avg_arr_delay
from monthly
inner join {{ ref('stg_airlines') }} as airlines
    on monthly.carrier_code = airlines.carrier_code
