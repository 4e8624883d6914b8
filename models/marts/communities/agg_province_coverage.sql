with

coverage as (
    select * from {{ ref('int_communities_coverage_by_level') }}
    where admin_level = 'province'
),

provinces as (
    select
        area_code as province_code,
        area_name as province_name,
        region_code,
        estimated_population,
        households,
        computed_estimated_population,
        computed_households,
        independent_city_estimated_population,
        live_record_count,
        areas_with_records as municipalities_with_records,
        is_overridden,
        override_reason
    from coverage
)

select * from provinces
