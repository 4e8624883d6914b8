-- A view of the intermediate table that holds the level (built once, tested there).
{{ config(materialized='view') }}

with

wards as (
    select * from {{ ref('int_registration_wards_rolled_up') }}
),

final as (
    select
        ward_code,
        ward_name,
        constituency_code,
        county_code,
        registered_voters,
        reference_registered_voters,
        rolled_up_registered_voters,
        lowest_level_registered_voters,
        polling_station_count,
        is_in_source,
        is_in_reference
    from wards
)

select * from final
