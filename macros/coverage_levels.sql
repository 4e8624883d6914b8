{#- The published coverage figures: what the snapshot snp_coverage versions and what a dry run
    (`elt coverage --dry-run`, the model rpt_coverage_preview) compares. -#}
{% macro coverage_compared_columns() -%}
    {{ return([
        'estimated_population',
        'households',
        'computed_estimated_population',
        'computed_households',
        'is_overridden',
    ]) }}
{%- endmacro %}


{#- The three coverage levels in long form, one row per level and area, keyed `<level>:<code>`,
    from the three relations given (the coverage marts, published or built into a scratch schema). -#}
{% macro coverage_levels_unioned(municipalities, provinces, regions) -%}
    {%- set levels = [
        ('municipality', municipalities, 'municipality_code'),
        ('province', provinces, 'province_code'),
        ('region', regions, 'region_code'),
    ] -%}
    {%- for level, relation, code in levels %}
    select
        '{{ level }}:' || {{ code }} as coverage_key,
        '{{ level }}' as admin_level,
        {{ code }} as area_code,
        region_code,
        {{ coverage_compared_columns() | join(',\n        ') }}
    from {{ relation }}
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
{%- endmacro %}
