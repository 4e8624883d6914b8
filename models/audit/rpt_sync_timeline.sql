with

sync_history as (
    select * from {{ ref('sync_history') }}
),

recent_attempts as (
    select
        sync_run_id,
        sync_type,
        status,
        started_at,
        coalesce(finished_at, last_heartbeat_at, started_at) as ended_at,
        duration_seconds,
        records_processed,
        records_rejected,
        error_message
    from sync_history
    where started_at >= {{ dbt.dateadd('day', -30, dbt.current_timestamp()) }}
)

select * from recent_attempts
