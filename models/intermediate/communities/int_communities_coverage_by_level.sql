-- Coverage at every level in one place (the three coverage marts select their level): the
-- figures of a municipality are its live (not soft-deleted) records', a province's and a
-- region's the sums over their municipalities (independent cities included, through their
-- province by correspondence code); a manual override replaces the published figures and keeps
-- the computed ones beside them.
with

records as (
    select * from {{ ref('stg_communities__records') }}
),

areas as (
    select * from {{ ref('int_psgc_areas_located') }}
),

live_records as (
    select * from records
    where not is_deleted
),

municipal_figures as (
    select
        areas.municipality_code,
        count(*) as live_record_count,
        count(distinct live_records.barangay_code) as barangays_with_records,
        sum(live_records.estimated_population) as estimated_population,
        sum(live_records.households) as households
    from live_records
    inner join areas
        on live_records.barangay_code = areas.area_code
    group by areas.municipality_code
),

coverage_overrides as (
    select * from {{ ref('coverage_overrides') }}
),

barangays_per_municipality as (
    select
        municipality_code,
        count(*) as barangay_count
    from areas
    where admin_level = 'barangay'
    group by municipality_code
),

placed_figures as (
    select
        municipal_figures.municipality_code,
        municipal_figures.live_record_count,
        municipal_figures.barangays_with_records,
        municipal_figures.estimated_population,
        municipal_figures.households,
        areas.province_code,
        areas.region_code,
        areas.is_independent_city
    from municipal_figures
    inner join areas
        on municipal_figures.municipality_code = areas.area_code
),

figures as (
    select
        'municipality' as admin_level,
        municipality_code as area_code,
        live_record_count,
        barangays_with_records as areas_with_records,
        estimated_population,
        households,
        cast(null as bigint) as independent_city_estimated_population
    from placed_figures
    union all
    select
        'province' as admin_level,
        province_code as area_code,
        sum(live_record_count) as live_record_count,
        count(*) as areas_with_records,
        sum(estimated_population) as estimated_population,
        sum(households) as households,
        sum(
            case when is_independent_city then estimated_population else 0 end
        ) as independent_city_estimated_population
    from placed_figures
    where province_code is not null
    group by province_code
    union all
    select
        'region' as admin_level,
        region_code as area_code,
        sum(live_record_count) as live_record_count,
        count(*) as areas_with_records,
        sum(estimated_population) as estimated_population,
        sum(households) as households,
        cast(null as bigint) as independent_city_estimated_population
    from placed_figures
    group by region_code
),

coverage as (
    select
        areas.admin_level,
        areas.area_code,
        areas.area_name,
        areas.province_code,
        areas.region_code,
        areas.is_independent_city,
        coalesce(
            coverage_overrides.estimated_population, figures.estimated_population
        ) as estimated_population,
        coalesce(coverage_overrides.households, figures.households) as households,
        figures.estimated_population as computed_estimated_population,
        figures.households as computed_households,
        coalesce(
            figures.independent_city_estimated_population, 0
        ) as independent_city_estimated_population,
        coalesce(figures.live_record_count, 0) as live_record_count,
        coalesce(figures.areas_with_records, 0) as areas_with_records,
        barangays_per_municipality.barangay_count,
        coverage_overrides.area_code is not null as is_overridden,
        coverage_overrides.reason as override_reason
    from areas
    left join figures
        on
            areas.admin_level = figures.admin_level
            and areas.area_code = figures.area_code
    left join coverage_overrides
        on
            areas.admin_level = coverage_overrides.admin_level
            and areas.area_code = coverage_overrides.area_code
    left join barangays_per_municipality
        on areas.area_code = barangays_per_municipality.municipality_code
    where
        areas.admin_level in ('municipality', 'province', 'region')
        and (figures.area_code is not null or coverage_overrides.area_code is not null)
)

select * from coverage
