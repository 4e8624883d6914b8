with

municipal_figures as (
    select * from {{ ref('int_communities_aggregated_to_municipalities') }}
),

areas as (
    select * from {{ ref('int_psgc_areas_located') }}
),

coverage_overrides as (
    select * from {{ ref('coverage_overrides') }}
    where admin_level = 'province'
),

municipalities_per_province as (
    select
        areas.province_code,
        count(*) as municipalities_with_records,
        sum(municipal_figures.live_record_count) as live_record_count,
        sum(municipal_figures.estimated_population) as estimated_population,
        sum(municipal_figures.households) as households,
        sum(
            case
                when areas.is_independent_city then municipal_figures.estimated_population
                else 0
            end
        ) as independent_city_estimated_population
    from municipal_figures
    inner join areas
        on municipal_figures.municipality_code = areas.area_code
    where areas.province_code is not null
    group by areas.province_code
),

coverage as (
    select
        areas.area_code as province_code,
        areas.area_name as province_name,
        areas.region_code,
        coalesce(
            coverage_overrides.estimated_population,
            municipalities_per_province.estimated_population
        ) as estimated_population,
        coalesce(
            coverage_overrides.households, municipalities_per_province.households
        ) as households,
        municipalities_per_province.estimated_population as computed_estimated_population,
        municipalities_per_province.households as computed_households,
        coalesce(
            municipalities_per_province.independent_city_estimated_population, 0
        ) as independent_city_estimated_population,
        coalesce(municipalities_per_province.live_record_count, 0) as live_record_count,
        coalesce(
            municipalities_per_province.municipalities_with_records, 0
        ) as municipalities_with_records,
        coverage_overrides.area_code is not null as is_overridden,
        coverage_overrides.reason as override_reason
    from areas
    left join municipalities_per_province
        on areas.area_code = municipalities_per_province.province_code
    left join coverage_overrides
        on areas.area_code = coverage_overrides.area_code
    where
        areas.admin_level = 'province'
        and (
            municipalities_per_province.province_code is not null
            or coverage_overrides.area_code is not null
        )
)

select * from coverage
