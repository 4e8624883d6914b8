with

source as (
    select * from {{ source('odk_central', 'submissions') }}
),

renamed as (
    select
        submission_id,
        form_id,
        instance_id,
        submission_date as submitted_at,
        updated_at,
        deleted_at,
        coalesce(is_deleted, false) as is_deleted,
        review_state,
        submitter_id,
        submitter_name,
        device_id,
        form_version,
        cast(coalesce(edits, 0) as integer) as edit_count,
        cast(attachments_present as integer) as attachments_present,
        cast(attachments_expected as integer) as attachments_expected,
        data,
        _loaded_at as loaded_at
    from source
)

select * from renamed
