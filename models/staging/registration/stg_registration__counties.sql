with

source as (
    select * from {{ source('registration', 'counties') }}
),

renamed as (
    select
        code as county_code,
        name as county_name,
        registered_voters_2022 as registered_voters,
        source_updated_at,
        _loaded_at as loaded_at
    from source
)

select * from renamed
