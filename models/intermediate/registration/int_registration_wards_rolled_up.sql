-- A table: the next level up, its dim_ mart and its tests all read it.
{{ config(materialized='table') }}

with

reference_wards as (
    select * from {{ ref('kenya_iebc_2022_wards') }}
),

source_wards as (
    select * from {{ ref('stg_registration__wards') }}
),

source_constituencies as (
    select * from {{ ref('stg_registration__constituencies') }}
),

polling_stations as (
    select * from {{ ref('int_registration_polling_stations_placed') }}
),

stations_per_ward as (
    select
        ward_code,
        count(*) as polling_station_count,
        sum(registered_voters) as rolled_up_registered_voters
    from polling_stations
    group by ward_code
),

ward_codes as (
    select ward_code from reference_wards
    union
    select ward_code from source_wards
    union
    select ward_code from stations_per_ward
),

wards as (
    select
        ward_codes.ward_code,
        coalesce(reference_wards.ward_name, source_wards.ward_name) as ward_name,
        coalesce(
            reference_wards.constituency_code, source_wards.constituency_code
        ) as constituency_code,
        coalesce(reference_wards.county_code, source_constituencies.county_code) as county_code,
        source_wards.registered_voters,
        reference_wards.registered_voters_2022 as reference_registered_voters,
        stations_per_ward.rolled_up_registered_voters,
        coalesce(
            stations_per_ward.rolled_up_registered_voters, source_wards.registered_voters
        ) as lowest_level_registered_voters,
        coalesce(stations_per_ward.polling_station_count, 0) as polling_station_count,
        source_wards.ward_code is not null as is_in_source,
        reference_wards.ward_code is not null as is_in_reference
    from ward_codes
    left join reference_wards
        on ward_codes.ward_code = reference_wards.ward_code
    left join source_wards
        on ward_codes.ward_code = source_wards.ward_code
    left join source_constituencies
        on source_wards.constituency_code = source_constituencies.constituency_code
    left join stations_per_ward
        on ward_codes.ward_code = stations_per_ward.ward_code
)

select * from wards
