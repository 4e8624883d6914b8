with

source as (
    select * from {{ source('sales', 'rejected_rows') }}
),

renamed as (
    select
        rejection_id,
        source_name,
        source_locator,
        source_file,
        source_line,
        api_page,
        raw_record,
        reason,
        rejected_at
    from source
)

select * from renamed
