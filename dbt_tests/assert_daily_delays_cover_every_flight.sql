-- fct_delays is an incremental rollup of fct_flights: every flight is counted exactly once.
with totals as (
    select
        (select count(*) from {{ ref('fct_flights') }}) as flights,
        (select sum(flights) from {{ ref('fct_delays') }}) as counted
)

select * from totals where flights != counted
