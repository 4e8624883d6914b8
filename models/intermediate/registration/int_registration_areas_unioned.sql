-- One row per registration area at every level: its county, the source's registered voters, the
-- reference figure and the rolled-up figure (the last two null for polling stations).
with

counties as (
    select * from {{ ref('int_registration_counties_rolled_up') }}
),

constituencies as (
    select * from {{ ref('int_registration_constituencies_rolled_up') }}
),

wards as (
    select * from {{ ref('int_registration_wards_rolled_up') }}
),

polling_stations as (
    select * from {{ ref('int_registration_polling_stations_placed') }}
),

unioned as (
    select
        'county' as admin_level,
        county_code as area_code,
        county_name as area_name,
        county_code,
        registered_voters,
        reference_registered_voters,
        rolled_up_registered_voters,
        is_in_source,
        is_in_reference
    from counties
    union all
    select
        'constituency' as admin_level,
        constituency_code as area_code,
        constituency_name as area_name,
        county_code,
        registered_voters,
        reference_registered_voters,
        rolled_up_registered_voters,
        is_in_source,
        is_in_reference
    from constituencies
    union all
    select
        'ward' as admin_level,
        ward_code as area_code,
        ward_name as area_name,
        county_code,
        registered_voters,
        reference_registered_voters,
        rolled_up_registered_voters,
        is_in_source,
        is_in_reference
    from wards
    union all
    select
        'polling_station' as admin_level,
        polling_station_code as area_code,
        polling_station_name as area_name,
        county_code,
        registered_voters,
        -- no reference figure and nothing below a polling station
        null as reference_registered_voters,
        null as rolled_up_registered_voters,
        true as is_in_source,
        false as is_in_reference
    from polling_stations
)

select * from unioned
