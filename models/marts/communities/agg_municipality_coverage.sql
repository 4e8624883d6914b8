with

coverage as (
    select * from {{ ref('int_communities_coverage_by_level') }}
    where admin_level = 'municipality'
),

municipalities as (
    select
        area_code as municipality_code,
        area_name as municipality_name,
        province_code,
        region_code,
        is_independent_city,
        estimated_population,
        households,
        computed_estimated_population,
        computed_households,
        live_record_count,
        areas_with_records as barangays_with_records,
        barangay_count,
        is_overridden,
        override_reason
    from coverage
)

select * from municipalities
