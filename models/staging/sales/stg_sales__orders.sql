with

source as (
    select * from {{ source('sales', 'orders') }}
),

renamed as (
    select
        {{ dbt.hash(dbt.concat(["order_id", "'|'", "line_key"])) }} as order_line_id,
        order_id,
        order_date,
        user_id,
        product_name,
        line_key,
        cast(quantity as integer) as quantity,
        cast(unit_price as {{ dbt.type_numeric() }}) as unit_price,
        cast(total_amount as {{ dbt.type_numeric() }}) as total_amount,
        region,
        _source_name as source_name,
        _source_file as source_locator,
        _source_line as source_line,
        _loaded_at as loaded_at
    from source
)

select * from renamed
