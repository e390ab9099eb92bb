select
    origin || '-' || {{ format_time('time_hour', '%Y%m%d%H') }} as weather_id,
    origin,
    time_hour as observed_hour_utc,
    make_date(year, month, day) as local_date,
    hour as local_hour,
    temp as temp_f,
    dewp as dewpoint_f,
    humid as humidity_pct,
    wind_dir as wind_dir_deg,
    wind_speed as wind_speed_mph,
    wind_gust as wind_gust_mph,
    precip as precip_in,
    pressure as pressure_mb,
    visib as visibility_mi
from {{ source('raw', 'weather') }}
