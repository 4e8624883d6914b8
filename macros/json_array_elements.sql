{#- One row per element of the JSON array at a top-level key of a column of JSON text, each as JSON
    text: a set-returning expression for a select list. Read an element's fields with json_text. -#}
{% macro json_array_elements(column, key) -%}
    {{ return(adapter.dispatch('json_array_elements')(column, key)) }}
{%- endmacro %}

{#- PostgreSQL (and the default): jsonb_array_elements, each element back to text. -#}
{% macro default__json_array_elements(column, key) -%}
    cast(jsonb_array_elements(cast({{ column }} as jsonb) -> '{{ key | replace("'", "''") }}') as text)
{%- endmacro %}

{#- DuckDB: the array's elements as a list of JSON, unnested. -#}
{% macro duckdb__json_array_elements(column, key) -%}
    unnest(json_extract({{ column }}, '$."{{ key | replace('"', '\\"') | replace("'", "''") }}"[*]'))
{%- endmacro %}
