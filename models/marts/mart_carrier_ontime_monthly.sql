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
    monthly.carrier_code || '-' || strftime(monthly.flight_month, '%Y-%m') as carrier_month_id,
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
