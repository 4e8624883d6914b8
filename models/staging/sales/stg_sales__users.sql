with

source as (
    select * from {{ source('sales', 'users') }}
),

renamed as (
    select
        username,
        email,
        role,
        password_hash is not null as has_initial_password,
        _loaded_at as loaded_at
    from source
)

select * from renamed
