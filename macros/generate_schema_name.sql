{#- Use a model's custom schema as-is (`staging`, not `main_staging`), so tables land where
    their asset keys say; models without one go to the target's schema. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
