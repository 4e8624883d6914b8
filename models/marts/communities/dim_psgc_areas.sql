with

psgc_areas as (
    select * from {{ ref('int_psgc_areas_located') }}
),

final as (
    select
        area_code,
        area_name,
        admin_level,
        is_independent_city,
        is_province_by_correspondence,
        municipality_code,
        province_code,
        region_code
    from psgc_areas
)

select * from final
