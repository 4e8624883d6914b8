-- The daily rollup carries every order line: revenue and units add up to fct_sales.
with

fct_sales as (
    select * from {{ ref('fct_sales') }}
),

agg_sales_daily_by_region as (
    select * from {{ ref('agg_sales_daily_by_region') }}
),

line_totals as (
    select
        coalesce(sum(total_amount), 0) as revenue,
        coalesce(sum(quantity), 0) as units_sold
    from fct_sales
),

rollup_totals as (
    select
        coalesce(sum(revenue), 0) as revenue,
        coalesce(sum(units_sold), 0) as units_sold
    from agg_sales_daily_by_region
),

compared as (
    select
        line_totals.revenue as line_revenue,
        rollup_totals.revenue as rollup_revenue,
        line_totals.units_sold as line_units,
        rollup_totals.units_sold as rollup_units
    from line_totals
    cross join rollup_totals
)

select * from compared
where line_revenue <> rollup_revenue or line_units <> rollup_units
