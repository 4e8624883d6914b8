with

stg_audit__sync_runs as (
    select * from {{ ref('stg_audit__sync_runs') }}
),

history as (
    select
        sync_run_id,
        flow_run_id,
        sync_type,
        started_at,
        finished_at,
        status,
        records_processed,
        records_rejected,
        duration_seconds,
        error_message,
        service_instance,
        metadata,
        load_id,
        cursor_at,
        last_heartbeat_at
    from stg_audit__sync_runs
)

select * from history
