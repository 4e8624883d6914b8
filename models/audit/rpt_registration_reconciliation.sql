-- The old verification step, made repeatable: every county, constituency and ward, the figure the
-- registration source reports, the reference figure the warehouse holds (IEBC 2022), and the figure
-- rolled up from the lowest level present below it.
with

counties as (
    select * from {{ ref('dim_counties') }}
),

constituencies as (
    select * from {{ ref('dim_constituencies') }}
),

wards as (
    select * from {{ ref('dim_wards') }}
),

areas as (
    select
        'county' as admin_level,
        county_code as area_code,
        county_name as area_name,
        county_code,
        registered_voters as source_value,
        reference_registered_voters as warehouse_value,
        rolled_up_registered_voters as rolled_up_value,
        is_in_source,
        is_in_reference
    from counties
    union all
    select
        'constituency' as admin_level,
        constituency_code as area_code,
        constituency_name as area_name,
        county_code,
        registered_voters as source_value,
        reference_registered_voters as warehouse_value,
        rolled_up_registered_voters as rolled_up_value,
        is_in_source,
        is_in_reference
    from constituencies
    union all
    select
        'ward' as admin_level,
        ward_code as area_code,
        ward_name as area_name,
        county_code,
        registered_voters as source_value,
        reference_registered_voters as warehouse_value,
        rolled_up_registered_voters as rolled_up_value,
        is_in_source,
        is_in_reference
    from wards
),

reconciled as (
    select
        admin_level,
        area_code,
        area_name,
        county_code,
        source_value,
        warehouse_value,
        rolled_up_value,
        source_value - warehouse_value as difference,
        source_value - rolled_up_value as rollup_difference,
        case
            when not is_in_reference then 'missing_in_warehouse'
            when not is_in_source then 'missing_in_source'
            -- figures are counts (at least 0): -1 stands for a missing one
            when coalesce(source_value, -1) != warehouse_value then 'value_mismatch'
            when coalesce(source_value, -1) != rolled_up_value then 'rollup_mismatch'
            else 'match'
        end as status
    from areas
)

select * from reconciled
