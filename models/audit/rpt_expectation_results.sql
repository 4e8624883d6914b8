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

last_check_results as (
    select
        sync_run_id,
        started_at as checked_at,
        status as check_status,
        {{ json_array_elements('metadata', 'checked') }} as outcome
    from ranked_checks
    where check_rank = 1
),

results as (
    select
        sync_run_id,
        checked_at,
        check_status,
        cast({{ json_text('outcome', 'position') }} as integer) as check_position,
        {{ json_text('outcome', 'suite') }} as suite,
        {{ json_text('outcome', 'expectation') }} as expectation,
        {{ json_text('outcome', 'column') }} as column_name,
        {{ json_text('outcome', 'success') }} = 'true' as is_success,
        {{ json_text('outcome', 'details') }} as details
    from last_check_results
)

select * from results
