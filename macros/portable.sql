{#- SQL that differs between the example's warehouses (DuckDB: dev; PostgreSQL: -t postgres).
    Each macro renders DuckDB's SQL by default and PostgreSQL's through dbt's adapter.dispatch,
    so the models read the same on both and DuckDB's compiled SQL is unchanged. -#}

{% macro rounded(expr, digits) -%}
    {#- round() to `digits` decimals (PostgreSQL rounds numerics only). -#}
    {{ return(adapter.dispatch('rounded')(expr, digits)) }}
{%- endmacro %}

{% macro default__rounded(expr, digits) -%}
    round({{ expr }}, {{ digits }})
{%- endmacro %}

{% macro postgres__rounded(expr, digits) -%}
    round(({{ expr }})::numeric, {{ digits }})
{%- endmacro %}

{% macro ratio(numerator, denominator, digits) -%}
    {#- numerator / denominator as a decimal fraction (PostgreSQL divides integers whole). -#}
    {{ return(adapter.dispatch('ratio')(numerator, denominator, digits)) }}
{%- endmacro %}

{% macro default__ratio(numerator, denominator, digits) -%}
    round({{ numerator }} / {{ denominator }}, {{ digits }})
{%- endmacro %}

{% macro postgres__ratio(numerator, denominator, digits) -%}
    round(({{ numerator }})::numeric / {{ denominator }}, {{ digits }})
{%- endmacro %}

{% macro format_time(expr, format) -%}
    {#- A date or timestamp as text, `format` in strftime's codes (%Y %m %d %H only). -#}
    {{ return(adapter.dispatch('format_time')(expr, format)) }}
{%- endmacro %}

{% macro default__format_time(expr, format) -%}
    strftime({{ expr }}, '{{ format }}')
{%- endmacro %}

{% macro postgres__format_time(expr, format) -%}
    to_char({{ expr }}, '{{ format | replace("%Y", "YYYY") | replace("%m", "MM") | replace("%d", "DD") | replace("%H", "HH24") }}')
{%- endmacro %}

{% macro spark__format_time(expr, format) -%}
    {#- Spark (-t spark): Java date patterns. -#}
    date_format({{ expr }}, '{{ format | replace("%Y", "yyyy") | replace("%m", "MM") | replace("%d", "dd") | replace("%H", "HH") }}')
{%- endmacro %}
