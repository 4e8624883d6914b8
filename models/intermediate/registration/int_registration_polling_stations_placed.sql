with

polling_stations as (
    select * from {{ ref('stg_registration__polling_stations') }}
),

reference_wards as (
    select * from {{ ref('kenya_iebc_2022_wards') }}
),

source_wards as (
    select * from {{ ref('stg_registration__wards') }}
),

source_constituencies as (
    select * from {{ ref('stg_registration__constituencies') }}
),

located as (
    select
        polling_stations.polling_station_code,
        polling_stations.polling_station_name,
        polling_stations.ward_code,
        coalesce(
            reference_wards.constituency_code, source_wards.constituency_code
        ) as constituency_code,
        coalesce(reference_wards.county_code, source_constituencies.county_code) as county_code,
        polling_stations.registered_voters,
        polling_stations.source_updated_at,
        polling_stations.loaded_at
    from polling_stations
    left join reference_wards
        on polling_stations.ward_code = reference_wards.ward_code
    left join source_wards
        on polling_stations.ward_code = source_wards.ward_code
    left join source_constituencies
        on source_wards.constituency_code = source_constituencies.constituency_code
)

select * from located
