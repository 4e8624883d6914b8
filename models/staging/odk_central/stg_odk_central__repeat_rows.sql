-- depends_on: {{ source('odk_central', 'submissions') }}
{#- One select per repeat table that exists (the odk_repeat_tables macro); none yet: no rows. -#}
{%- set tables = odk_repeat_tables() %}

with

{% if tables %}

    source as (
        {%- for table in tables %}
            select
                '{{ table }}' as repeat_table,
                form_id,
                submission_id,
                row_id,
                parent_id,
                parent_link,
                data,
                _is_tombstone,
                _loaded_at
            from {{ adapter.quote(source('odk_central', 'submissions').schema) }}.{{ adapter.quote(table) }}
            {%- if not loop.last %}
                union all
            {%- endif %}
        {%- endfor %}
    ),

{% else %}

    source as (
        select
            cast(null as {{ dbt.type_string() }}) as repeat_table,
            cast(null as {{ dbt.type_string() }}) as form_id,
            cast(null as {{ dbt.type_string() }}) as submission_id,
            cast(null as {{ dbt.type_string() }}) as row_id,
            cast(null as {{ dbt.type_string() }}) as parent_id,
            cast(null as {{ dbt.type_string() }}) as parent_link,
            cast(null as {{ dbt.type_string() }}) as data,  -- noqa: RF04
            cast(null as boolean) as _is_tombstone,
            cast(null as timestamp with time zone) as _loaded_at
        where 1 = 0
    ),

{% endif %}

renamed as (
    select
        repeat_table,
        form_id,
        submission_id,
        row_id,
        parent_id,
        parent_link,
        data,
        _loaded_at as loaded_at
    from source
    where not coalesce(_is_tombstone, false)
)

select * from renamed
