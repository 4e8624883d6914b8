-- Live (not soft-deleted) community records summed per municipality or city.
with

records as (
    select * from {{ ref('stg_communities__records') }}
),

areas as (
    select * from {{ ref('int_psgc_areas_located') }}
),

live_records as (
    select * from records
    where not is_deleted
),

aggregated as (
    select
        areas.municipality_code,
        count(*) as live_record_count,
        count(distinct live_records.barangay_code) as barangays_with_records,
        sum(live_records.estimated_population) as estimated_population,
        sum(live_records.households) as households
    from live_records
    inner join areas
        on live_records.barangay_code = areas.area_code
    group by areas.municipality_code
)

select * from aggregated
