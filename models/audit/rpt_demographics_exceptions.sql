-- Areas the demographic allocation could not serve: no registered voters (zero or missing), or a
-- county without demographic figures. One row per level and area code.
with

demographics as (
    select * from {{ ref('kenya_county_demographics') }}
),

counties as (
    select * from {{ ref('dim_counties') }}
),

constituencies as (
    select * from {{ ref('dim_constituencies') }}
),

wards as (
    select * from {{ ref('dim_wards') }}
),

polling_stations as (
    select * from {{ ref('dim_polling_stations') }}
),

areas as (
    select
        'county' as admin_level,
        county_code as area_code,
        county_name as area_name,
        county_code,
        registered_voters
    from counties
    union all
    select
        'constituency' as admin_level,
        constituency_code as area_code,
        constituency_name as area_name,
        county_code,
        registered_voters
    from constituencies
    union all
    select
        'ward' as admin_level,
        ward_code as area_code,
        ward_name as area_name,
        county_code,
        registered_voters
    from wards
    union all
    select
        'polling_station' as admin_level,
        polling_station_code as area_code,
        polling_station_name as area_name,
        county_code,
        registered_voters
    from polling_stations
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
