with

source as (
    select * from {{ source('registration', 'constituencies') }}
),

renamed as (
    select
        code as constituency_code,
        parent_code as county_code,
        name as constituency_name,
        registered_voters_2022 as registered_voters,
        source_updated_at,
        _loaded_at as loaded_at
    from source
)

select * from renamed
