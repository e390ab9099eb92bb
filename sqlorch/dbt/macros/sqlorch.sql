{#- Written by `sqlorch macros`; run it again to update this file (keep it in version control).

    sqlorch hands a partitioned model the window it must rebuild as the vars `start_date` and
    `end_date` ([start, end): dates, or timestamps for hourly partitions) and each static
    dimension's key as `partition_<column>` (a list when a run covers several keys).

        select ... from {{ ref('stg_events') }} where {{ sqlorch_window('event_date') }}

    Outside sqlorch (a plain `dbt run`, no vars) an incremental run rebuilds from the newest
    value already in the table and a full build reads everything. -#}

{% macro sqlorch_window(time_column=none, static_columns=[]) -%}
    {%- set parts = [] -%}
    {%- if time_column is not none -%}
        {%- if var('start_date', none) is not none -%}
            {%- do parts.append(time_column ~ " >= cast('" ~ var('start_date') ~ "' as timestamp)") -%}
            {%- do parts.append(time_column ~ " < cast('" ~ var('end_date') ~ "' as timestamp)") -%}
        {%- elif is_incremental() -%}
            {%- do parts.append(time_column ~ " >= (select max(" ~ time_column ~ ") from " ~ this ~ ")") -%}
        {%- endif -%}
    {%- endif -%}
    {%- for column in static_columns -%}
        {%- set key = var('partition_' ~ column, none) -%}
        {%- if key is string -%}
            {%- do parts.append(column ~ " = '" ~ key | replace("'", "''") ~ "'") -%}
        {%- elif key is not none -%}
            {%- set quoted = [] -%}
            {%- for k in key -%}
                {%- do quoted.append("'" ~ k | replace("'", "''") ~ "'") -%}
            {%- endfor -%}
            {%- do parts.append(column ~ " in (" ~ quoted | join(", ") ~ ")") -%}
        {%- endif -%}
    {%- endfor -%}
    {{- parts | join(' and ') if parts else 'true' -}}
{%- endmacro %}
