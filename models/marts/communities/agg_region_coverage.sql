with

coverage as (
    select * from {{ ref('int_communities_coverage_by_level') }}
    where admin_level = 'region'
),

regions as (
    select
        area_code as region_code,
        area_name as region_name,
        estimated_population,
        households,
        computed_estimated_population,
        computed_households,
        live_record_count,
        areas_with_records as municipalities_with_records,
        is_overridden,
        override_reason
    from coverage
)

select * from regions
