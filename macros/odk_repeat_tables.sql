{#- The raw tables of ODK Central repeat groups that loads have created, one per configured form and
    repeat (`<form>__<repeat path>`, nested repeats included): every table of the source's schema but
    the submissions, the attachments, the quarantine and dlt's own. Read from the warehouse when the
    model runs, so a form added to `sources.odk_central.forms` needs no SQL; empty while parsing. -#}
{% macro odk_repeat_tables() -%}
    {%- if not execute -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set schema = source('odk_central', 'submissions').schema -%}
    {%- set found = run_query(
        "select table_name from information_schema.tables where table_schema = '"
        ~ schema | replace("'", "''") ~ "' order by table_name"
    ) -%}
    {%- set tables = [] -%}
    {%- for row in found.rows -%}
        {%- set name = row[0] -%}
        {%- if '__' in name and not name.startswith('_dlt') -%}
            {%- do tables.append(name) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(tables) }}
{%- endmacro %}
