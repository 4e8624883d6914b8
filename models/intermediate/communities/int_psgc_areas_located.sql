-- Every PSGC area with the municipality, province and region it rolls up to, built once from the
-- seed; the coverage models and the dim_psgc_areas mart read it. A table, not ephemeral: four
-- models read it and its rules have unit tests.
{{ config(materialized='table') }}

--   * region: the first two digits of the code.
--   * barangay -> municipality: RRPPPMM000; a barangay of a City of Manila sub-municipality
--     (SubMun) goes on to the city (RRPPP00000).
--   * municipality (or city) -> province: the province whose code is RRPPP00000; where there is
--     none, as for highly urbanised and independent component cities (City of Iligan 1030900000
--     sits under its own pseudo-province code), the province of the same region whose old 9-digit
--     correspondence code starts with the same four digits as the city's (Iligan 103504000 ->
--     Lanao del Norte 103500000). Cities still without a province (the NCR cities and Pateros, City
--     of Isabela, the Special Geographic Area) roll up to their region only.
with

psgc as (
    select * from {{ ref('psgc_2025q2') }}
),

areas as (
    select
        psgc_code_10 as area_code,
        name as area_name,
        nullif(correspondence_code, '') as correspondence_code,
        case geographic_level
            when 'Reg' then 'region'
            when 'Prov' then 'province'
            when 'City' then 'municipality'
            when 'Mun' then 'municipality'
            when 'SubMun' then 'sub_municipality'
            when 'Bgy' then 'barangay'
            else 'other'
        end as admin_level,
        coalesce(city_class, '') in ('HUC', 'ICC') as is_independent_city,
        substr(psgc_code_10, 1, 2) || '00000000' as region_code
    from psgc
),

provinces as (
    select * from areas
    where admin_level = 'province'
),

municipalities as (
    select
        areas.area_code,
        coalesce(
            province_by_code.area_code, province_by_correspondence.area_code
        ) as province_code,
        province_by_code.area_code is null
        and province_by_correspondence.area_code is not null as is_province_by_correspondence
    from areas
    left join provinces as province_by_code
        on substr(areas.area_code, 1, 5) || '00000' = province_by_code.area_code
    left join provinces as province_by_correspondence
        on
            substr(areas.correspondence_code, 1, 4)
            = substr(province_by_correspondence.correspondence_code, 1, 4)
            and areas.region_code = province_by_correspondence.region_code
    where areas.admin_level = 'municipality'
),

barangays as (
    select
        areas.area_code,
        case
            when parent.admin_level = 'sub_municipality'
                then substr(areas.area_code, 1, 5) || '00000'
            else parent.area_code
        end as municipality_code
    from areas
    left join areas as parent
        on substr(areas.area_code, 1, 7) || '000' = parent.area_code
    where areas.admin_level = 'barangay'
),

located as (
    select
        areas.area_code,
        areas.area_name,
        areas.admin_level,
        areas.is_independent_city,
        coalesce(
            municipalities.is_province_by_correspondence, false
        ) as is_province_by_correspondence,
        case
            when areas.admin_level = 'municipality' then areas.area_code
            else barangays.municipality_code
        end as municipality_code,
        case
            when areas.admin_level = 'province' then areas.area_code
            else coalesce(municipalities.province_code, barangay_municipality.province_code)
        end as province_code,
        areas.region_code
    from areas
    left join municipalities
        on areas.area_code = municipalities.area_code
    left join barangays
        on areas.area_code = barangays.area_code
    left join municipalities as barangay_municipality
        on barangays.municipality_code = barangay_municipality.area_code
)

select * from located
