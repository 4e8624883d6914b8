with

stg_audit__sync_runs as (
    select * from {{ ref('stg_audit__sync_runs') }}
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
    from stg_audit__sync_runs
    where started_at >= {{ dbt.dateadd('day', -30, dbt.current_timestamp()) }}
)

select * from recent_attempts
