with

source as (
    select * from {{ source('communities', 'records') }}
),

renamed as (
    select
        record_id,
        barangay_code,
        estimated_population,
        households,
        coalesce(is_deleted, false) as is_deleted,
        updated_at,
        source_file,
        _loaded_at as loaded_at
    from source
)

select * from renamed
