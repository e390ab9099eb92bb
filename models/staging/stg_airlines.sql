select
    carrier as carrier_code,
    name as airline_name
from {{ source('raw', 'airlines') }}
