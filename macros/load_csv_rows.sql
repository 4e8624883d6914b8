{#
    Seeds on PostgreSQL: dbt's default inserts render one `get_binding_char()` call per cell, which
    costs about 25 s for the 437,690 cells of the PSGC seed (dbt-labs/dbt-core#5309). The placeholder
    row is rendered once here; the statements and bindings are those of dbt's `default__load_csv_rows`.
    Tied to dbt 1.11's seed materialization (pyproject pins dbt-core <1.12): tests/test_seeds.py checks
    that every seed still lands row for row as its CSV says, on both targets.
#}
{% macro postgres__load_csv_rows(model, agate_table) %}
    {% set batch_size = get_batch_size() %}
    {% set cols_sql = get_seed_column_quoted_csv(model, agate_table.column_names) %}
    {% set binding = get_binding_char() %}
    {% set placeholders = '(' ~ ([binding] * (agate_table.column_names | length)) | join(',') ~ ')' %}
    {% set statements = [] %}

    {% for chunk in agate_table.rows | batch(batch_size) %}
        {% set bindings = [] %}
        {% for row in chunk %}
            {% do bindings.extend(row) %}
        {% endfor %}

        {% set sql %}
            insert into {{ this.render() }} ({{ cols_sql }}) values
            {{ ([placeholders] * (chunk | length)) | join(',') }}
        {% endset %}

        {% do adapter.add_query(sql, bindings=bindings, abridge_sql_log=True) %}

        {% if loop.index0 == 0 %}
            {% do statements.append(sql) %}
        {% endif %}
    {% endfor %}

    {# the first statement, for the compiled files #}
    {{ return(statements[0]) }}
{% endmacro %}
