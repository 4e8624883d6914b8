with

stg_sales__users as (
    select * from {{ ref('stg_sales__users') }}
),

users as (
    select
        username,
        email,
        role,
        has_initial_password,
        loaded_at
    from stg_sales__users
)

select * from users
