with

stg_sales__orders as (
    select * from {{ ref('stg_sales__orders') }}
),

order_lines as (
    select
        order_line_id,
        order_id,
        order_date,
        user_id,
        product_name,
        line_key,
        quantity,
        unit_price,
        total_amount,
        region,
        source_name,
        loaded_at
    from stg_sales__orders
)

select * from order_lines
