-- A table: the next level up, its dim_ mart and its tests all read it.
{{ config(materialized='table') }}

with

reference_wards as (
    select * from {{ ref('kenya_iebc_2022_wards') }}
),

source_counties as (
    select * from {{ ref('stg_registration__counties') }}
),

constituencies as (
    select * from {{ ref('int_registration_constituencies_rolled_up') }}
),

reference_counties as (
    select
        county_code,
        min(county_name) as county_name,
        sum(registered_voters_2022) as reference_registered_voters
    from reference_wards
    group by county_code
),

constituencies_per_county as (
    select
        county_code,
        count(*) as constituency_count,
        sum(ward_count) as ward_count,
        sum(polling_station_count) as polling_station_count,
        sum(lowest_level_registered_voters) as rolled_up_registered_voters
    from constituencies
    where county_code is not null
    group by county_code
),

county_codes as (
    select county_code from reference_counties
    union
    select county_code from source_counties
    union
    select county_code from constituencies_per_county
),

counties as (
    select
        county_codes.county_code,
        coalesce(reference_counties.county_name, source_counties.county_name) as county_name,
        source_counties.registered_voters,
        reference_counties.reference_registered_voters,
        constituencies_per_county.rolled_up_registered_voters,
        coalesce(constituencies_per_county.constituency_count, 0) as constituency_count,
        coalesce(constituencies_per_county.ward_count, 0) as ward_count,
        coalesce(constituencies_per_county.polling_station_count, 0) as polling_station_count,
        source_counties.county_code is not null as is_in_source,
        reference_counties.county_code is not null as is_in_reference
    from county_codes
    left join reference_counties
        on county_codes.county_code = reference_counties.county_code
    left join source_counties
        on county_codes.county_code = source_counties.county_code
    left join constituencies_per_county
        on county_codes.county_code = constituencies_per_county.county_code
)

select * from counties
