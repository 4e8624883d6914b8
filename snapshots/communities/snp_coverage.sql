{#- Every change to a published coverage row, at every level: one version per change (check
    strategy on the figures), rows that disappear closed (hard_deletes = invalidate).
    audit.rpt_coverage_changes counts them per run and level. -#}
{% snapshot snp_coverage %}

{{
    config(
        unique_key='coverage_key',
        strategy='check',
        check_cols=[
            'estimated_population',
            'households',
            'computed_estimated_population',
            'computed_households',
            'is_overridden',
        ],
        hard_deletes='invalidate',
    )
}}

with

municipality_coverage as (
    select * from {{ ref('agg_municipality_coverage') }}
),

province_coverage as (
    select * from {{ ref('agg_province_coverage') }}
),

region_coverage as (
    select * from {{ ref('agg_region_coverage') }}
),

coverage as (
    select
        'municipality:' || municipality_code as coverage_key,
        'municipality' as admin_level,
        municipality_code as area_code,
        region_code,
        estimated_population,
        households,
        computed_estimated_population,
        computed_households,
        is_overridden
    from municipality_coverage
    union all
    select
        'province:' || province_code as coverage_key,
        'province' as admin_level,
        province_code as area_code,
        region_code,
        estimated_population,
        households,
        computed_estimated_population,
        computed_households,
        is_overridden
    from province_coverage
    union all
    select
        'region:' || region_code as coverage_key,
        'region' as admin_level,
        region_code as area_code,
        region_code,
        estimated_population,
        households,
        computed_estimated_population,
        computed_households,
        is_overridden
    from region_coverage
)

select * from coverage

{% endsnapshot %}
