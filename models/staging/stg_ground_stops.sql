-- Ground stops with their reasons flattened, read from the tables dlt loaded.
select
    s.stop_id,
    s.airport as origin,
    cast(s.issued_at as timestamp) as issued_at,
    s.duration_min,
    string_agg(r.code, ',' order by r.code) as reason_codes
from {{ source('ops', 'ground_stops') }} as s
left join {{ source('ops', 'ground_stops__reasons') }} as r on r._dlt_parent_id = s._dlt_id
group by 1, 2, 3, 4
