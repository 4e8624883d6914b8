{#- Seconds since the Unix epoch, with fractions, for a timestamp expression. -#}
{% macro epoch_seconds(expression) -%}
    {{ return(adapter.dispatch('epoch_seconds')(expression)) }}
{%- endmacro %}

{% macro default__epoch_seconds(expression) -%}
    cast(extract(epoch from {{ expression }}) as {{ dbt.type_float() }})
{%- endmacro %}

{% macro duckdb__epoch_seconds(expression) -%}
    epoch({{ expression }})
{%- endmacro %}
