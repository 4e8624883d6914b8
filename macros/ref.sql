{#- dbt's ref, except in a candidate build (the var candidate, flows/publish.py): a model this build
    did not rebuild has no candidate, so its ref is the published relation (`marts.dim_users` for
    `marts__candidate.dim_users`), as dbt's --defer would resolve it. Decided when the node runs (the
    candidate of a parent built earlier in the same build exists by then); while parsing, dbt's ref. -#}
{% macro ref() %}
    {%- set relation = builtins.ref(*varargs, **kwargs) -%}
    {%- set schema = relation.schema if relation is not none else none -%}
    {%- if execute and var('candidate', false) and schema is string and schema.endswith('__candidate')
        and not relation.is_cte -%}
        {%- if adapter.get_relation(relation.database, schema, relation.identifier) is none -%}
            {%- set relation = relation.incorporate(path={'schema': schema.removesuffix('__candidate')}) -%}
        {%- endif -%}
    {%- endif -%}
    {{ return(relation) }}
{% endmacro %}
