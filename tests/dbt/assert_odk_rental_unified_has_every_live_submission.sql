-- The incremental mart holds exactly the live rental_survey submissions, each with its current
-- version and person count: a row missing, left after a deletion or stale after an edit fails.
with

stg_odk_central__submissions as (
    select * from {{ ref('stg_odk_central__submissions') }}
),

int_rental_survey_persons_parsed as (
    select * from {{ ref('int_rental_survey_persons_parsed') }}
),

fct_rental_submissions_unified as (
    select * from {{ ref('fct_rental_submissions_unified') }}
),

persons_per_submission as (
    select
        submission_id,
        count(*) as person_count
    from int_rental_survey_persons_parsed
    group by submission_id
),

live_submissions as (
    select
        stg_odk_central__submissions.submission_id,
        stg_odk_central__submissions.instance_id,
        coalesce(persons_per_submission.person_count, 0) as person_count
    from stg_odk_central__submissions
    left join persons_per_submission
        on stg_odk_central__submissions.submission_id = persons_per_submission.submission_id
    where
        stg_odk_central__submissions.form_id = 'rental_survey'
        and not stg_odk_central__submissions.is_deleted
),

compared as (
    select
        coalesce(
            live_submissions.submission_id, fct_rental_submissions_unified.submission_id
        ) as submission_id,
        live_submissions.instance_id as expected_instance_id,
        fct_rental_submissions_unified.instance_id as actual_instance_id,
        live_submissions.person_count as expected_person_count,
        fct_rental_submissions_unified.person_count as actual_person_count
    from live_submissions
    full outer join fct_rental_submissions_unified
        on live_submissions.submission_id = fct_rental_submissions_unified.submission_id
)

select * from compared
where
    expected_instance_id is distinct from actual_instance_id
    or expected_person_count is distinct from actual_person_count
