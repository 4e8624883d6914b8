{#- Every change to a published coverage row, at every level: one version per change (check
    strategy on the published figures, coverage_compared_columns), rows that disappear closed
    (hard_deletes = invalidate). audit.rpt_coverage_changes counts them per run and level. -#}
{% snapshot snp_coverage %}

{{
    config(
        unique_key='coverage_key',
        strategy='check',
        check_cols=coverage_compared_columns(),
        hard_deletes='invalidate',
    )
}}

with

coverage as (
    {{ coverage_levels_unioned(
        ref('agg_municipality_coverage'),
        ref('agg_province_coverage'),
        ref('agg_region_coverage'),
    ) }}
)

select * from coverage

{% endsnapshot %}
