-- Areas the demographic allocation could not serve: no registered voters (zero or missing), or a
-- county without demographic figures. One row per level and area code.
with

demographics as (
    select * from {{ ref('kenya_county_demographics') }}
),

areas as (
    select * from {{ ref('int_registration_areas_unioned') }}
),

counties_with_figures as (
    select distinct county_code from demographics
),

exceptions as (
    select
        areas.admin_level,
        areas.area_code,
        areas.area_name,
        areas.county_code,
        areas.registered_voters,
        case
            when areas.registered_voters is null then 'missing_registered_voters'
            when areas.registered_voters = 0 then 'zero_registered_voters'
            else 'no_county_demographics'
        end as reason
    from areas
    left join counties_with_figures
        on areas.county_code = counties_with_figures.county_code
    where
        areas.registered_voters is null
        or areas.registered_voters <= 0
        or counties_with_figures.county_code is null
)

select * from exceptions
