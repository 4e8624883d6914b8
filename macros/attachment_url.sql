{#- A public link to a stored attachment: the var attachments_public_base_url followed by the storage key.
    The warehouse keeps storage keys only; links are built at query time, so moving the files or
    putting a CDN in front is a change of this var, not of the data. Unset var: a null string. -#}
{% macro attachment_url(key_column) -%}
    {%- set base = var('attachments_public_base_url', none) -%}
    {%- if base is none or (base | string | trim) == '' -%}
        cast(null as {{ dbt.type_string() }})
    {%- else -%}
        {%- set base = base | string | trim -%}
        {%- set base = base if base.endswith('/') else base ~ '/' -%}
        {{ dbt.concat([
            "'" ~ base.replace("'", "''") ~ "'",
            "ltrim(cast(" ~ key_column ~ " as " ~ dbt.type_string() ~ "), '/')",
        ]) }}
    {%- endif -%}
{%- endmacro %}

{#- An HTML anchor for a URL expression: <a href="url">label</a>; null when the URL is null. The label
    falls back to the URL; double quotes in the URL become %22 so they cannot end the attribute. -#}
{% macro html_link(url_expression, label_expression) -%}
    {%- set url = "replace(cast(" ~ url_expression ~ " as " ~ dbt.type_string() ~ "), '\"', '%22')" -%}
    {%- set label = "coalesce(cast(" ~ label_expression ~ " as " ~ dbt.type_string() ~ "), " ~ url ~ ")" -%}
    case
        when ({{ url_expression }}) is not null
            then {{ dbt.concat(["'<a href=\"'", url, "'\">'", label, "'</a>'"]) }}
    end
{%- endmacro %}
