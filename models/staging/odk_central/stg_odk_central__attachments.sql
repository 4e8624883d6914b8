with

source as (
    select * from {{ source('odk_central', 'attachments') }}
),

renamed as (
    select
        form_id,
        submission_id,
        name as file_name,
        field_name,
        storage_key,
        cast(size_bytes as {{ dbt.type_bigint() }}) as size_bytes,
        sha256,
        content_type,
        etag,
        -- `exists` is a keyword: quoted for the parsers of both targets.
        coalesce("exists", false) as is_present,  -- noqa: RF06
        downloaded_at,
        _loaded_at as loaded_at
    from source
)

select * from renamed
