-- What `elt coverage --dry-run` shows: every coverage row of a rebuild beside the published one,
-- created, updated, removed or unchanged on the published figures (coverage_compared_columns, the
-- snapshot's check columns). Built only in a dry run (the var scratch_schema set), into the scratch
-- schema with the rebuilt coverage marts, and dropped with it.
{{ config(materialized='table', enabled=var('scratch_schema', none) is not none) }}

{%- set levels = ['agg_municipality_coverage', 'agg_province_coverage', 'agg_region_coverage'] -%}
{%- set published = [] -%}
{%- for name in levels -%}
    {%- set relation = none -%}
    {%- if execute -%}
        {%- set node = graph.nodes.values() | selectattr('name', 'equalto', name) | first -%}
        {%- set relation = adapter.get_relation(
            database=target.database, schema=node.config.schema, identifier=node.alias
        ) -%}
    {%- endif -%}
    {#- nothing published yet at this level: every rebuilt row is created -#}
    {%- do published.append(
        relation if relation is not none
        else '(select * from ' ~ ref(name) ~ ' where 1 = 0) as nothing_published'
    ) -%}
{%- endfor %}

with

rebuilt as (
    {{ coverage_levels_unioned(ref(levels[0]), ref(levels[1]), ref(levels[2])) }}
),

published as (
    {{ coverage_levels_unioned(published[0], published[1], published[2]) }}
),

compared as (
    select
        coalesce(rebuilt.coverage_key, published.coverage_key) as coverage_key,
        coalesce(rebuilt.admin_level, published.admin_level) as admin_level,
        coalesce(rebuilt.area_code, published.area_code) as area_code,
        coalesce(rebuilt.region_code, published.region_code) as region_code,
        case
            when published.coverage_key is null then 'created'
            when rebuilt.coverage_key is null then 'removed'
            {%- for column in coverage_compared_columns() %}
                when rebuilt.{{ column }} is distinct from published.{{ column }} then 'updated'
            {%- endfor %}
            else 'unchanged'
        end as change_kind,
        published.estimated_population as published_estimated_population,
        rebuilt.estimated_population as rebuilt_estimated_population
    from rebuilt
    full outer join published
        on rebuilt.coverage_key = published.coverage_key
)

select * from compared
