with

fct_sales as (
    select * from {{ ref('fct_sales') }}
),

daily_by_region as (
    select
        order_date,
        region,
        cast(count(distinct order_id) as bigint) as order_count,
        cast(count(*) as bigint) as order_line_count,
        cast(sum(quantity) as bigint) as units_sold,
        cast(sum(total_amount) as numeric(28, 6)) as revenue
    from fct_sales
    group by order_date, region
)

select * from daily_by_region
