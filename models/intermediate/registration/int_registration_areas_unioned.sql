-- One row per registration area at every level, with its county and registered voters.
with

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

unioned as (
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

)

select * from unioned
