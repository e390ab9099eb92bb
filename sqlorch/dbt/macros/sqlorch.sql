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

{#- dbt-spark's `session` method formats seed values into the SQL text without escaping them
    (a value with an apostrophe, "New Year's Day", breaks the INSERT): escape them here. Only
    Spark targets use this macro. -#}
{% macro spark__load_csv_rows(model, agate_table) %}
    {%- set column_override = model['config'].get('column_types', {}) -%}
    {%- set statements = [] -%}
    {%- for chunk in agate_table.rows | batch(get_batch_size()) -%}
        {%- set bindings = [] -%}
        {%- for row in chunk -%}
            {%- for value in row -%}
                {%- if value is string -%}
                    {%- do bindings.append(value | replace('\\', '\\\\') | replace("'", "\\'")) -%}
                {%- else -%}
                    {%- do bindings.append(value) -%}
                {%- endif -%}
            {%- endfor -%}
        {%- endfor -%}
        {%- set sql -%}
            insert into {{ this.render() }} values
            {% for row in chunk -%}
                ({%- for col_name in agate_table.column_names -%}
                    {%- set inferred_type = adapter.convert_type(agate_table, loop.index0) -%}
                    {%- set type = column_override.get(col_name, inferred_type) -%}
                    cast({{ get_binding_char() }} as {{ type }})
                    {%- if not loop.last %},{% endif -%}
                {%- endfor -%})
                {%- if not loop.last %},{% endif %}
            {%- endfor %}
        {%- endset -%}
        {%- do adapter.add_query(sql, bindings=bindings, abridge_sql_log=True) -%}
        {%- if loop.index0 == 0 -%}
            {%- do statements.append(sql) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(statements[0]) }}
{% endmacro %}

{#- Environments (`SQLORCH_ENV=pr_123 sqlorch build ...`): every relation of the build moves
    into the environment's schemas, `pr_123__<schema>`, production's are never written. sqlorch
    writes its own assets there; dbt's go there when the project's `generate_schema_name`
    and `source` macros call these two (copy them into macros/, README "Environments"):

        {% macro generate_schema_name(custom_schema_name, node) -%}
            {{ sqlorch_schema_name(custom_schema_name, node) }}
        {%- endmacro %}
        {% macro source(source_name, table_name) -%}
            {{ return(sqlorch_source(source_name, table_name)) }}
        {%- endmacro %}

    With no environment they change nothing: a model's custom schema is used as-is (its asset
    key is `schema.name`), else the target's schema. -#}

{% macro sqlorch_schema_name(custom_schema_name, node) -%}
    {%- set schema = target.schema if custom_schema_name is none else custom_schema_name | trim -%}
    {%- set environment = env_var('SQLORCH_ENV', '') -%}
    {{ environment ~ '__' ~ schema if environment else schema }}
{%- endmacro %}

{% macro sqlorch_source(source_name, table_name) -%}
    {#- A source is read from the environment's schema too: sqlorch puts there what the build
        writes (a Python asset) and, with --defer, a view of production's table for what it
        does not. -#}
    {%- set relation = builtins.source(source_name, table_name) -%}
    {%- set environment = env_var('SQLORCH_ENV', '') -%}
    {%- if environment -%}
        {{ return(relation.incorporate(path={"schema": environment ~ '__' ~ relation.schema})) }}
    {%- else -%}
        {{ return(relation) }}
    {%- endif -%}
{%- endmacro %}
