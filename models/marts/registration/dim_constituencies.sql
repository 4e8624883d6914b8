-- A view of the intermediate table that holds the level (built once, tested there).
{{ config(materialized='view') }}

with

constituencies as (
    select * from {{ ref('int_registration_constituencies_rolled_up') }}
),

final as (
    select
        constituency_code,
        constituency_name,
        county_code,
        registered_voters,
        reference_registered_voters,
        rolled_up_registered_voters,
        lowest_level_registered_voters,
        ward_count,
        polling_station_count,
        is_in_source,
        is_in_reference
    from constituencies
)

select * from final
