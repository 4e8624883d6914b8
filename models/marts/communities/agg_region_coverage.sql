with

municipal_figures as (
    select * from {{ ref('int_communities_aggregated_to_municipalities') }}
),

areas as (
    select * from {{ ref('int_psgc_areas_located') }}
),

coverage_overrides as (
    select * from {{ ref('coverage_overrides') }}
    where admin_level = 'region'
),

municipalities_per_region as (
    select
        areas.region_code,
        count(*) as municipalities_with_records,
        sum(municipal_figures.live_record_count) as live_record_count,
        sum(municipal_figures.estimated_population) as estimated_population,
        sum(municipal_figures.households) as households
    from municipal_figures
    inner join areas
        on municipal_figures.municipality_code = areas.area_code
    group by areas.region_code
),

coverage as (
    select
        areas.area_code as region_code,
        areas.area_name as region_name,
        coalesce(
            coverage_overrides.estimated_population, municipalities_per_region.estimated_population
        ) as estimated_population,
        coalesce(coverage_overrides.households, municipalities_per_region.households) as households,
        municipalities_per_region.estimated_population as computed_estimated_population,
        municipalities_per_region.households as computed_households,
        coalesce(municipalities_per_region.live_record_count, 0) as live_record_count,
        coalesce(
            municipalities_per_region.municipalities_with_records, 0
        ) as municipalities_with_records,
        coverage_overrides.area_code is not null as is_overridden,
        coverage_overrides.reason as override_reason
    from areas
    left join municipalities_per_region
        on areas.area_code = municipalities_per_region.region_code
    left join coverage_overrides
        on areas.area_code = coverage_overrides.area_code
    where
        areas.admin_level = 'region'
        and (
            municipalities_per_region.region_code is not null
            or coverage_overrides.area_code is not null
        )
)

select * from coverage
