{#-
    Incremental, merged on submission_id (delete+insert). An incremental run rebuilds, from all of
    their current rows, the submissions whose submission, person or attachment rows were loaded at
    or after the latest `source_loaded_at` in the table, deleted ones included so that their old row
    is deleted; the post-hook then drops the deleted submissions, so the table holds live ones only.
    "At or after": the rows of the last load seen are taken again (idempotent), so rows committed
    with that same load time after the previous run are not missed. Submissions whose stored image
    URL no longer matches `attachments_public_base_url` are rebuilt too. A full refresh builds the
    same rows from scratch (live submissions only).
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='submission_id',
        on_schema_change='append_new_columns',
        post_hook="delete from {{ this }} where is_deleted",
    )
}}

with

stg_odk_central__submissions as (
    select * from {{ ref('stg_odk_central__submissions') }}
    where form_id = 'rental_survey'
),

persons as (
    select * from {{ ref('int_rental_survey_persons_parsed') }}
),

stg_odk_central__attachments as (
    select * from {{ ref('stg_odk_central__attachments') }}
    where form_id = 'rental_survey'
),

{% if is_incremental() %}

    fct_rental_submissions_unified as (
        select * from {{ this }}
    ),

    watermark as (
        select max(source_loaded_at) as loaded_at
        from fct_rental_submissions_unified
    ),

    rows_loaded as (
        select
            submission_id,
            loaded_at
        from stg_odk_central__submissions
        union all
        select
            submission_id,
            loaded_at
        from persons
        union all
        select
            submission_id,
            loaded_at
        from stg_odk_central__attachments
    ),

    submissions_loaded_since_last_run as (
        select rows_loaded.submission_id
        from rows_loaded
        cross join watermark
        where
            watermark.loaded_at is null
            or rows_loaded.loaded_at >= watermark.loaded_at
    ),

    submissions_with_stale_urls as (
        select submission_id
        from fct_rental_submissions_unified
        where
            building_image_url is distinct from (
                {{ attachment_url('building_image_key') }}
            )
    ),

    submissions_to_refresh as (
        select submission_id from submissions_loaded_since_last_run
        union
        select submission_id from submissions_with_stale_urls
    ),

{% endif %}

submissions_in_scope as (
    select * from stg_odk_central__submissions
    {% if is_incremental() %}
        where
            submission_id in (
                select submissions_to_refresh.submission_id from submissions_to_refresh
            )
    {% endif %}
),

rental_submissions as (
    select
        submission_id,
        form_id,
        instance_id,
        cast({{ json_text('data', 'survey_date') }} as date) as survey_date,
        {{ json_text('data', 'building_name') }} as building_name,
        {{ json_text('data', 'address') }} as address,
        {{ json_text('data', 'address_plus_code') }} as address_plus_code,
        cast(
            {{ json_text('data', 'rent_amount') }} as {{ dbt.type_numeric() }}
        ) as rent_amount,
        cast({{ json_text('data', 'number_of_units') }} as integer) as number_of_units,
        {{ json_text('data', 'landlord_phone') }} as landlord_phone,
        {{ json_text('data', 'building_image') }} as building_image_file_name,
        submitted_at,
        updated_at,
        review_state,
        submitter_name,
        device_id,
        form_version,
        edit_count,
        is_deleted,
        loaded_at
    from submissions_in_scope
),

persons_per_submission as (
    select
        rental_submissions.submission_id,
        count(*) as person_count,
        {{ dbt.listagg(
            dbt.concat([
                "coalesce(persons.person_name, '?')",
                "' ('",
                "coalesce(cast(persons.age as "
                ~ dbt.type_string() ~ "), '?')",
                "', '",
                "coalesce(persons.sex, '?')",
                "')'",
            ]),
            "'; '",
            "order by persons.person_name, "
            ~ "persons.person_id",
        ) }} as person_list,
        max(persons.loaded_at) as loaded_at
    from rental_submissions
    inner join persons
        on rental_submissions.submission_id = persons.submission_id
    group by rental_submissions.submission_id
),

attachments_per_submission as (
    select
        rental_submissions.submission_id,
        -- The image field's file, preferring the one the current version names (files of earlier
        -- versions can stay listed), else the file the data names.
        coalesce(
            max(
                case
                    when
                        stg_odk_central__attachments.field_name = 'building_image'
                        and stg_odk_central__attachments.file_name
                        = rental_submissions.building_image_file_name
                        then stg_odk_central__attachments.storage_key
                end
            ),
            max(
                case
                    when stg_odk_central__attachments.field_name = 'building_image'
                        then stg_odk_central__attachments.storage_key
                end
            ),
            max(
                case
                    when
                        stg_odk_central__attachments.file_name
                        = rental_submissions.building_image_file_name
                        then stg_odk_central__attachments.storage_key
                end
            )
        ) as building_image_key,
        max(stg_odk_central__attachments.loaded_at) as loaded_at
    from rental_submissions
    inner join stg_odk_central__attachments
        on rental_submissions.submission_id = stg_odk_central__attachments.submission_id
    group by rental_submissions.submission_id
),

submissions_joined as (
    select
        rental_submissions.*,
        coalesce(persons_per_submission.person_count, 0) as person_count,
        persons_per_submission.person_list,
        attachments_per_submission.building_image_key,
        greatest(
            rental_submissions.loaded_at,
            coalesce(persons_per_submission.loaded_at, rental_submissions.loaded_at),
            coalesce(attachments_per_submission.loaded_at, rental_submissions.loaded_at)
        ) as source_loaded_at
    from rental_submissions
    left join persons_per_submission
        on rental_submissions.submission_id = persons_per_submission.submission_id
    left join attachments_per_submission
        on rental_submissions.submission_id = attachments_per_submission.submission_id
),

submissions_with_urls as (
    select
        *,
        {{ attachment_url('building_image_key') }} as building_image_url
    from submissions_joined
),

unified as (
    select
        submission_id,
        form_id,
        instance_id,
        survey_date,
        building_name,
        address,
        address_plus_code,
        rent_amount,
        number_of_units,
        landlord_phone,
        submitted_at,
        updated_at,
        review_state,
        submitter_name,
        device_id,
        form_version,
        edit_count,
        person_count,
        person_list,
        building_image_key,
        building_image_url,
        {{ html_link('building_image_url', "'View image'") }} as building_image_url_html,
        {{ html_link(
            dbt.concat(["'https://plus.codes/'", "nullif(address_plus_code, '')"]),
            "address_plus_code",
        ) }} as address_plus_code_url_html,
        is_deleted,
        source_loaded_at
    from submissions_with_urls
    {% if not is_incremental() %}
        where not is_deleted
    {% endif %}
)

select * from unified
