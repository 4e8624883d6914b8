-- County demographic figures allocated down to constituencies, wards and polling
-- stations in proportion to registered voters. Areas with zero or missing voters get nothing
-- here and are listed in rpt_demographics_exceptions; the county's figure goes to its other
-- areas.
with

demographics as (
    select * from {{ ref('kenya_county_demographics') }}
),

areas as (
    select * from {{ ref('int_registration_areas_unioned') }}
),

weighted_areas as (
    select
        admin_level,
        area_code,
        county_code,
        registered_voters,
        sum(registered_voters) over (
            partition by admin_level, county_code
        ) as county_level_registered_voters
    from areas
    where registered_voters > 0
),

allocated as (
    select
        weighted_areas.admin_level,
        weighted_areas.area_code,
        weighted_areas.county_code,
        demographics.sex,
        demographics.age_band,
        weighted_areas.registered_voters,
        cast(weighted_areas.registered_voters as double precision)
        / weighted_areas.county_level_registered_voters as share_of_county,
        demographics.population * cast(weighted_areas.registered_voters as double precision)
        / weighted_areas.county_level_registered_voters as allocated_population
    from weighted_areas
    inner join demographics
        on weighted_areas.county_code = demographics.county_code
)

select * from allocated
