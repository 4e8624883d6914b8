{#- The text value at a dotted path (`a.b.c`) inside a column of JSON text; NULL when absent or null. -#}
{% macro json_text(column, path) -%}
    {{ return(adapter.dispatch('json_text')(column, path)) }}
{%- endmacro %}

{#- PostgreSQL (and the default): jsonb's #>> with a text-array path; keys quoted as array elements. -#}
{% macro default__json_text(column, path) -%}
    {%- set keys = [] -%}
    {%- for key in path.split('.') -%}
        {%- do keys.append('"' ~ key | replace('\\', '\\\\') | replace('"', '\\"') | replace("'", "''") ~ '"') -%}
    {%- endfor -%}
    (cast({{ column }} as jsonb) #>> '{{ "{" ~ keys | join(",") ~ "}" }}')
{%- endmacro %}

{#- DuckDB: json_extract_string with a JSONPath; keys quoted so any key name is taken as written. -#}
{% macro duckdb__json_text(column, path) -%}
    {%- set keys = [] -%}
    {%- for key in path.split('.') -%}
        {%- do keys.append('"' ~ key | replace('"', '\\"') | replace("'", "''") ~ '"') -%}
    {%- endfor -%}
    json_extract_string({{ column }}, '$.{{ keys | join(".") }}')
{%- endmacro %}
