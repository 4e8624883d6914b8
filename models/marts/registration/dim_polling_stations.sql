-- A table of the intermediate model that places each station (tested here): a view would read the
-- raw stations as they land, before the run's checks pass (flows/publish.py).
{{ config(materialized='table') }}

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
