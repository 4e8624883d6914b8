with

fct_sales as (
    select * from {{ ref('fct_sales') }}
),

daily_by_region as (
    select
        order_date,
        region,
        count(distinct order_id) as order_count,
        count(*) as order_line_count,
        sum(quantity) as units_sold,
        sum(total_amount) as revenue
    from fct_sales
    group by order_date, region
)

select * from daily_by_region
