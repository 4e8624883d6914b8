with

stg_audit__sync_runs as (
    select * from {{ ref('stg_audit__sync_runs') }}
),

ranked_attempts as (
    select
        sync_type,
        coalesce(finished_at, last_heartbeat_at, started_at) as attempted_at,
        status,
        error_message,
        records_processed,
        records_rejected,
        row_number() over (
            partition by sync_type order by started_at desc, finished_at desc
        ) as attempt_rank
    from stg_audit__sync_runs
),

last_attempts as (
    select * from ranked_attempts
    where attempt_rank = 1
),

ranked_successes as (
    select
        sync_type,
        coalesce(cursor_at, finished_at) as reached_at,
        finished_at,
        row_number() over (
            partition by sync_type order by finished_at desc, started_at desc
        ) as success_rank
    from stg_audit__sync_runs
    where status = 'success'
),

last_successes as (
    select * from ranked_successes
    where success_rank = 1
),

-- completed attempts (not running) of the last 7 and 30 days, as the view is read
completed_attempts as (
    select
        sync_type,
        status,
        duration_seconds,
        started_at >= {{ dbt.dateadd('day', -7, dbt.current_timestamp()) }} as is_in_last_7_days,
        started_at >= {{ dbt.dateadd('day', -30, dbt.current_timestamp()) }} as is_in_last_30_days
    from stg_audit__sync_runs
    where status != 'running'
),

windows as (
    select
        sync_type,
        sum(case when is_in_last_7_days then 1 else 0 end) as attempts_7d,
        sum(case when is_in_last_7_days and status = 'success' then 1 else 0 end) as successes_7d,
        avg(case when is_in_last_7_days and status = 'success' then duration_seconds end)
            as avg_duration_seconds_7d,
        sum(case when is_in_last_30_days then 1 else 0 end) as attempts_30d,
        sum(case when is_in_last_30_days and status = 'success' then 1 else 0 end) as successes_30d,
        avg(case when is_in_last_30_days and status = 'success' then duration_seconds end)
            as avg_duration_seconds_30d
    from completed_attempts
    group by sync_type
),

counts as (
    select
        sync_type,
        sum(case when status = 'success' then 1 else 0 end) as successful_sync_count,
        sum(case when status = 'error' then 1 else 0 end) as failed_sync_count,
        sum(case when status = 'abandoned' then 1 else 0 end) as abandoned_sync_count
    from stg_audit__sync_runs
    group by sync_type
),

status as (
    select
        counts.sync_type,
        last_successes.reached_at as last_sync_timestamp,
        last_attempts.attempted_at as last_attempt_timestamp,
        last_attempts.status as last_sync_status,
        last_attempts.error_message as last_error_message,
        counts.successful_sync_count,
        counts.failed_sync_count,
        counts.abandoned_sync_count,
        last_attempts.records_processed as last_records_processed,
        last_attempts.records_rejected as last_records_rejected,
        last_successes.finished_at as last_success_finished_at,
        coalesce(windows.attempts_7d, 0) as attempts_7d,
        cast(round(
            cast(windows.successes_7d as {{ dbt.type_numeric() }})
            / nullif(windows.attempts_7d, 0),
            3
        ) as {{ dbt.type_float() }}) as success_rate_7d,
        cast(windows.avg_duration_seconds_7d as {{ dbt.type_float() }}) as avg_duration_seconds_7d,
        coalesce(windows.attempts_30d, 0) as attempts_30d,
        cast(round(
            cast(windows.successes_30d as {{ dbt.type_numeric() }})
            / nullif(windows.attempts_30d, 0),
            3
        ) as {{ dbt.type_float() }}) as success_rate_30d,
        cast(windows.avg_duration_seconds_30d as {{ dbt.type_float() }}) as avg_duration_seconds_30d
    from counts
    inner join last_attempts
        on counts.sync_type = last_attempts.sync_type
    left join last_successes
        on counts.sync_type = last_successes.sync_type
    left join windows
        on counts.sync_type = windows.sync_type
)

select * from status
