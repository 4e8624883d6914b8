with

source as (
    select * from {{ source('audit', 'sync_runs') }}
),

renamed as (
    select
        sync_run_id,
        flow_run_id,
        sync_type,
        started_at,
        finished_at,
        status,
        records_processed,
        records_rejected,
        heartbeat_at as last_heartbeat_at,
        {{ epoch_seconds('finished_at') }}
        - {{ epoch_seconds('started_at') }} as duration_seconds,
        error_message,
        service_instance,
        cast(cursor_value as timestamp with time zone) as cursor_at,
        metadata,
        load_id
    from source
)

select * from renamed
