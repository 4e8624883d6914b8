-- The old verification step, made repeatable: every county, constituency and ward, the figure the
-- registration source reports, the reference figure the warehouse holds (IEBC 2022), and the figure
-- rolled up from the lowest level present below it.
with

registration_areas as (
    select * from {{ ref('int_registration_areas_unioned') }}
),

areas as (
    select
        admin_level,
        area_code,
        area_name,
        county_code,
        registered_voters as source_value,
        reference_registered_voters as warehouse_value,
        rolled_up_registered_voters as rolled_up_value,
        is_in_source,
        is_in_reference
    from registration_areas
    -- polling stations have no reference figure: they enter through their wards' rollups
    where admin_level != 'polling_station'
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
