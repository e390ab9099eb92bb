{#- Departure delays by the weather at the origin in the scheduled departure hour. -#}
with flights as (
    select * from {{ ref('fct_flights') }}
),

weather as (
    select * from {{ ref('stg_weather') }}
),

flights_with_weather as (
    select
        flights.origin,
        flights.dep_delay_min,
        flights.is_cancelled,
        flights.is_departure_delayed,
        weather.precip_in,
        weather.visibility_mi,
        weather.wind_speed_mph,
        weather.temp_f,
        case
            when weather.weather_id is null then 'no observation'
            when weather.visibility_mi < 3 then 'low visibility'
            when weather.precip_in > 0 then 'precipitation'
            when weather.wind_speed_mph >= 20 or weather.wind_gust_mph >= 30 then 'strong wind'
            when weather.temp_f <= 32 then 'freezing'
            else 'fair'
        end as weather_condition
    from flights
    left join weather
        on flights.origin = weather.origin
        and flights.scheduled_departure_hour_utc = weather.observed_hour_utc
)

select
    origin || '-' || weather_condition as origin_condition_id,
    origin,
    weather_condition,
    count(*) as flights,
    {{ ratio('count(*) filter (where is_cancelled)', 'count(*)', 4) }} as cancellation_rate,
    {{ ratio('count(*) filter (where is_departure_delayed)', 'count(*)', 4) }} as departure_delay_rate,
    {{ rounded('avg(dep_delay_min)', 2) }} as avg_dep_delay,
    {{ rounded('avg(precip_in)', 3) }} as avg_precip_in,
    {{ rounded('avg(visibility_mi)', 2) }} as avg_visibility_mi,
    {{ rounded('avg(wind_speed_mph)', 1) }} as avg_wind_speed_mph,
    {{ rounded('avg(temp_f)', 1) }} as avg_temp_f
from flights_with_weather
group by origin, weather_condition
