{#- Use a model's custom schema as-is (`staging`, not `main_staging`), so tables land where
    their asset keys say; models without one go to the target's schema. In an environment
    (`SQLORCH_ENV=pr_123`, README "Environments") both, and every source, move into
    `pr_123__<schema>`: sqlorch's macros (macros/sqlorch.sql) do it. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ sqlorch_schema_name(custom_schema_name, node) }}
{%- endmacro %}

{% macro source(source_name, table_name) -%}
    {{ return(sqlorch_source(source_name, table_name)) }}
{%- endmacro %}
