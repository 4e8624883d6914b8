-- The rental survey's `person_details` repeat rows with their fields taken out of the JSON: a
-- view, so that the mart's unit test can give it rows.
{{ config(materialized='view') }}

with

stg_odk_central__repeat_rows as (
    select * from {{ ref('stg_odk_central__repeat_rows') }}
    where repeat_table = 'rental_survey__person_details'
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
        loaded_at
    from stg_odk_central__repeat_rows
)

select * from renamed
