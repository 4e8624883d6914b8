{#- Schemas are used as written (staging, marts, audit, ...), the same on every target.
    With the var candidate set (a run's build: flows/publish.py), every model and snapshot is built
    into `<schema>__candidate` instead, tested and checked there, and published by the run
    afterwards; seeds stay where they are, and so do the models marked meta live (the audit's views
    of its own attempts). With the var scratch_schema set (a dry run:
    `elt coverage --dry-run`), every model, and the seeds named in the var scratch_seeds (manual inputs
    such as coverage_overrides), is built into that one schema instead, so nothing published is
    touched; reference seeds and snapshots stay where they are. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- set scratch = var('scratch_schema', none) -%}
    {%- set in_scratch = node is not none and (
        node.resource_type == 'model'
        or (node.resource_type == 'seed' and node.name in var('scratch_seeds', []))
    ) -%}
    {%- set published = target.schema if custom_schema_name is none else custom_schema_name | trim -%}
    {%- if scratch and in_scratch -%}
        {{ scratch | trim }}
    {%- elif var('candidate', false) and node is not none and node.resource_type in ('model', 'snapshot')
        and not node.config.meta.get('live') -%}
        {{ published }}__candidate
    {%- else -%}
        {{ published }}
    {%- endif -%}
{%- endmacro %}
