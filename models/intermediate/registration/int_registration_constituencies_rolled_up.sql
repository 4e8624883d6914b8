-- A table: the next level up, its dim_ mart and its tests all read it.
{{ config(materialized='table') }}

with

reference_wards as (
    select * from {{ ref('kenya_iebc_2022_wards') }}
),

source_constituencies as (
    select * from {{ ref('stg_registration__constituencies') }}
),

wards as (
    select * from {{ ref('int_registration_wards_rolled_up') }}
),

reference_constituencies as (
    select
        constituency_code,
        min(constituency_name) as constituency_name,
        min(county_code) as county_code,
        sum(registered_voters_2022) as reference_registered_voters
    from reference_wards
    group by constituency_code
),

wards_per_constituency as (
    select
        constituency_code,
        count(*) as ward_count,
        sum(polling_station_count) as polling_station_count,
        sum(lowest_level_registered_voters) as rolled_up_registered_voters
    from wards
    where constituency_code is not null
    group by constituency_code
),

constituency_codes as (
    select constituency_code from reference_constituencies
    union
    select constituency_code from source_constituencies
    union
    select constituency_code from wards_per_constituency
),

constituencies as (
    select
        constituency_codes.constituency_code,
        coalesce(
            reference_constituencies.constituency_name, source_constituencies.constituency_name
        ) as constituency_name,
        coalesce(
            reference_constituencies.county_code, source_constituencies.county_code
        ) as county_code,
        source_constituencies.registered_voters,
        reference_constituencies.reference_registered_voters,
        wards_per_constituency.rolled_up_registered_voters,
        coalesce(
            wards_per_constituency.rolled_up_registered_voters,
            source_constituencies.registered_voters
        ) as lowest_level_registered_voters,
        coalesce(wards_per_constituency.ward_count, 0) as ward_count,
        coalesce(wards_per_constituency.polling_station_count, 0) as polling_station_count,
        source_constituencies.constituency_code is not null as is_in_source,
        reference_constituencies.constituency_code is not null as is_in_reference
    from constituency_codes
    left join reference_constituencies
        on constituency_codes.constituency_code = reference_constituencies.constituency_code
    left join source_constituencies
        on constituency_codes.constituency_code = source_constituencies.constituency_code
    left join wards_per_constituency
        on constituency_codes.constituency_code = wards_per_constituency.constituency_code
)

select * from constituencies
