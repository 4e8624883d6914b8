{#- Schemas are used as written (staging, marts, audit, ...), the same on every target.
    With the var scratch_schema set (a dry run: `elt coverage --dry-run`), every model is built into
    that one schema instead, so nothing published is touched; seeds and snapshots stay where they are. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- set scratch = var('scratch_schema', none) -%}
    {%- if scratch and node is not none and node.resource_type == 'model' -%}
        {{ scratch | trim }}
    {%- elif custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
