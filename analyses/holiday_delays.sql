-- How do delays on federal holidays compare with other days? (`dbt compile` renders this;
-- run the compiled SQL against the warehouse to see the answer.)
select
    is_holiday,
    count(*) as flights,
    round(avg(dep_delay_min), 2) as avg_dep_delay,
    round(avg(is_arrival_delayed::int), 4) as arrival_delay_rate
from {{ ref('fct_flights') }}
group by is_holiday
order by is_holiday
