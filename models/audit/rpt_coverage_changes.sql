-- How many coverage rows each run created, updated and removed, per level (from snp_coverage).
with

snapshot_versions as (
    select * from {{ ref('snp_coverage') }}
),

versions as (
    select
        coverage_key,
        admin_level,
        dbt_valid_from,
        dbt_valid_to,
        lag(dbt_valid_to) over (
            partition by coverage_key order by dbt_valid_from
        ) as previous_valid_to,
        lead(dbt_valid_from) over (
            partition by coverage_key order by dbt_valid_from
        ) as next_valid_from
    from snapshot_versions
),

changes as (
    select
        dbt_valid_from as changed_at,
        admin_level,
        case
            when previous_valid_to is null or previous_valid_to < dbt_valid_from then 'created'
            else 'updated'
        end as change_kind
    from versions
    union all
    select
        dbt_valid_to as changed_at,
        admin_level,
        'removed' as change_kind
    from versions
    where
        dbt_valid_to is not null
        and (next_valid_from is null or next_valid_from > dbt_valid_to)
),

summarised as (
    select
        changed_at,
        admin_level,
        sum(case when change_kind = 'created' then 1 else 0 end) as created_count,
        sum(case when change_kind = 'updated' then 1 else 0 end) as updated_count,
        sum(case when change_kind = 'removed' then 1 else 0 end) as removed_count
    from changes
    group by changed_at, admin_level
)

select * from summarised
