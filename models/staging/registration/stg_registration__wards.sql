with

source as (
    select * from {{ source('registration', 'wards') }}
),

renamed as (
    select
        code as ward_code,
        parent_code as constituency_code,
        name as ward_name,
        registered_voters_2022 as registered_voters,
        source_updated_at,
        _loaded_at as loaded_at
    from source
)

select * from renamed
