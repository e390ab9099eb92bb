-- A flight's distance is a positive number of miles; return the flights where it is not.
select flight_id, origin, dest, distance_mi
from {{ ref('fct_flights') }}
where distance_mi <= 0
