-- A view of the intermediate model that places each station (tested here).
{{ config(materialized='view') }}

with

polling_stations as (
    select * from {{ ref('int_registration_polling_stations_placed') }}
),

final as (
    select
        polling_station_code,
        polling_station_name,
        ward_code,
        constituency_code,
        county_code,
        registered_voters,
        source_updated_at,
        loaded_at
    from polling_stations
)

select * from final
