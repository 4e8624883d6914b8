with

municipal_figures as (
    select * from {{ ref('int_communities_aggregated_to_municipalities') }}
),

areas as (
    select * from {{ ref('int_psgc_areas_located') }}
),

coverage_overrides as (
    select * from {{ ref('coverage_overrides') }}
    where admin_level = 'municipality'
),

barangays_per_municipality as (
    select
        municipality_code,
        count(*) as barangay_count
    from areas
    where admin_level = 'barangay'
    group by municipality_code
),

coverage as (
    select
        areas.area_code as municipality_code,
        areas.area_name as municipality_name,
        areas.province_code,
        areas.region_code,
        areas.is_independent_city,
        coalesce(
            coverage_overrides.estimated_population, municipal_figures.estimated_population
        ) as estimated_population,
        coalesce(coverage_overrides.households, municipal_figures.households) as households,
        municipal_figures.estimated_population as computed_estimated_population,
        municipal_figures.households as computed_households,
        coalesce(municipal_figures.live_record_count, 0) as live_record_count,
        coalesce(municipal_figures.barangays_with_records, 0) as barangays_with_records,
        barangays_per_municipality.barangay_count,
        coverage_overrides.area_code is not null as is_overridden,
        coverage_overrides.reason as override_reason
    from areas
    left join municipal_figures
        on areas.area_code = municipal_figures.municipality_code
    left join coverage_overrides
        on areas.area_code = coverage_overrides.area_code
    left join barangays_per_municipality
        on areas.area_code = barangays_per_municipality.municipality_code
    where
        areas.admin_level = 'municipality'
        and (
            municipal_figures.municipality_code is not null
            or coverage_overrides.area_code is not null
        )
)

select * from coverage
