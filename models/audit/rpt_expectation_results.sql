with

sync_history as (
    select * from {{ ref('sync_history') }}
),

ranked_checks as (
    select
        sync_run_id,
        started_at,
        status,
        metadata,
        row_number() over (order by started_at desc, sync_run_id desc) as check_rank
    from sync_history
    where
        sync_type = 'expectations'
        and status in ('success', 'error')
),

last_check_outcomes as (
    select
        sync_run_id,
        started_at as checked_at,
        status as check_status,
        {{ json_array_elements('metadata', 'checked') }} as outcome
    from ranked_checks
    where check_rank = 1
),

outcomes as (
    select
        sync_run_id,
        checked_at,
        check_status,
        cast({{ json_text('outcome', 'position') }} as integer) as recorded_position,
        {{ json_text('outcome', 'suite') }} as suite,
        {{ json_text('outcome', 'expectation') }} as expectation,
        {{ json_text('outcome', 'column') }} as column_name,
        {{ json_text('outcome', 'success') }} = 'true' as is_success,
        {{ json_text('outcome', 'details') }} as details
    from last_check_outcomes
),

-- numbered as the check recorded them (an attempt of an older version has no numbers: by suite)
results as (
    select
        sync_run_id,
        checked_at,
        check_status,
        row_number() over (
            order by recorded_position, suite, expectation, column_name, details
        ) as check_position,
        suite,
        expectation,
        column_name,
        is_success,
        details
    from outcomes
)

select * from results
