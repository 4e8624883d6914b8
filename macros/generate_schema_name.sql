{#- Schemas are used as written (staging, marts, audit, ...), the same on every target.
    With the var scratch_schema set (a dry run: `elt coverage --dry-run`), every model, and the seeds
    named in the var scratch_seeds (manual inputs such as coverage_overrides), is built into that one
    schema instead, so nothing published is touched; reference seeds and snapshots stay where they are. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- set scratch = var('scratch_schema', none) -%}
    {%- set in_scratch = node is not none and (
        node.resource_type == 'model'
        or (node.resource_type == 'seed' and node.name in var('scratch_seeds', []))
    ) -%}
    {%- if scratch and in_scratch -%}
        {{ scratch | trim }}
    {%- elif custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
