with

source as (
    select * from {{ source('registration', 'polling_stations') }}
),

renamed as (
    select
        code as polling_station_code,
        parent_code as ward_code,
        name as polling_station_name,
        registered_voters_2022 as registered_voters,
        source_updated_at,
        _loaded_at as loaded_at
    from source
)

select * from renamed
