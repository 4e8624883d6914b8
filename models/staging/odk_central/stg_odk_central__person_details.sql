with

source as (
    select * from {{ source('odk_central', 'rental_survey__person_details') }}
),

renamed as (
    select
        row_id as person_id,
        form_id,
        submission_id,
        parent_id,
        {{ json_text('data', 'name') }} as person_name,
        cast({{ json_text('data', 'age') }} as integer) as age,
        {{ json_text('data', 'sex') }} as sex,
        {{ json_text('data', 'relationship') }} as relationship,
        {{ json_text('data', 'occupation') }} as occupation,
        _loaded_at as loaded_at
    from source
    where not coalesce(_is_tombstone, false)
)

select * from renamed
