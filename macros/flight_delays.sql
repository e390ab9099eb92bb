{#- Helpers for delay columns, which are whole minutes (negative = early). -#}

{% macro is_delayed(column, threshold_minutes=15) -%}
    {#- True when `column` is more than the threshold late, false when not, null when unknown
        (a cancelled or diverted flight has no arrival delay). The FAA counts a flight as
        on time when it arrives less than 15 minutes late. -#}
    ({{ column }} > {{ threshold_minutes }})
{%- endmacro %}

{% macro minutes_to_hours(column, digits=2) -%}
    {{ rounded(column ~ ' / 60.0', digits) }}
{%- endmacro %}

{% macro hhmm_to_time(column) -%}
    {#- A clock time stored as an integer HHMM (517 = 05:17; 2400 = midnight) as a TIME. -#}
    {{ return(adapter.dispatch('hhmm_to_time')(column)) }}
{%- endmacro %}

{% macro default__hhmm_to_time(column) -%}
    case
        when {{ column }} is not null
            then make_time(({{ column }} // 100) % 24, {{ column }} % 100, 0)
    end
{%- endmacro %}

{% macro postgres__hhmm_to_time(column) -%}
    case
        when {{ column }} is not null
            then make_time(({{ column }})::int / 100 % 24, ({{ column }})::int % 100, 0)
    end
{%- endmacro %}

{% macro spark__hhmm_to_time(column) -%}
    {#- Spark tables have no TIME type: the clock time as 'HH:MM:SS' text. -#}
    case
        when {{ column }} is not null
            then format_string('%02d:%02d:00', ({{ column }} div 100) % 24, {{ column }} % 100)
    end
{%- endmacro %}
