-- A view of the intermediate table that holds the level (built once, tested there).
{{ config(materialized='view') }}

with

counties as (
    select * from {{ ref('int_registration_counties_rolled_up') }}
),

final as (
    select
        county_code,
        county_name,
        registered_voters,
        reference_registered_voters,
        rolled_up_registered_voters,
        constituency_count,
        ward_count,
        polling_station_count,
        is_in_source,
        is_in_reference
    from counties
)

select * from final
