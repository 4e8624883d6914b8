"""The Great Expectations checks of the sales marts, on DuckDB and on PostgreSQL.

Each test builds the three marts directly with SQL (schema ``marts``), then runs the checkpoints
through ``flows.expectations.run_expectations``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from decimal import Decimal
from pathlib import Path

import pytest

from flows.expectations import GX_DIR, MARTS, ExpectationsResult, run_expectations
from loaders.common.warehouse import Warehouse

LOADED_AT = dt.datetime(2024, 3, 2, 6, 0, 0)
DAY = dt.date(2024, 3, 1)

FCT_SALES = [
    # order_line_id, order_id, order_date, user_id, product_name, quantity, unit_price,
    # total_amount, region, source_name, loaded_at
    ("o1-1", "o1", DAY, "u1", "Widget", 2, Decimal("10.00"), Decimal("20.00"), "north", "csv"),
    ("o1-2", "o1", DAY, "u1", "Gadget", 1, Decimal("5.50"), Decimal("5.50"), "north", "csv"),
    ("o2-1", "o2", DAY, "u2", "Widget", 3, Decimal("10.00"), Decimal("30.00"), "south", "api"),
]
AGG_SALES = [
    # order_date, region, order_count, order_line_count, units_sold, revenue
    (DAY, "north", 1, 2, 3, Decimal("25.50")),
    (DAY, "south", 1, 1, 3, Decimal("30.00")),
]
DIM_USERS = [
    # username, email, role, has_initial_password, loaded_at
    ("alice", "alice@example.com", "admin", True),
    ("bob", "bob.smith@example.org", "sales_rep", False),
    ("carol", "carol@example.co.ke", "analyst", False),
]


def create_marts(warehouse: Warehouse) -> None:
    """The three sales marts with a few good rows, as dbt would build them."""
    ph = warehouse.paramstyle
    with warehouse.connect() as conn:
        cur = conn.cursor()
        cur.execute("create schema if not exists marts")
        cur.execute(
            "create table marts.fct_sales (order_line_id text, order_id text, order_date date, "
            "user_id text, product_name text, quantity integer, unit_price numeric(18, 2), "
            "total_amount numeric(18, 2), region text, source_name text, loaded_at timestamp)"
        )
        cur.executemany(
            f"insert into marts.fct_sales values ({', '.join([ph] * 11)})",
            [(*row, LOADED_AT) for row in FCT_SALES],
        )
        cur.execute(
            "create table marts.agg_sales_daily_by_region (order_date date, region text, "
            "order_count integer, order_line_count integer, units_sold integer, "
            "revenue numeric(18, 2))"
        )
        cur.executemany(
            f"insert into marts.agg_sales_daily_by_region values ({', '.join([ph] * 6)})",
            AGG_SALES,
        )
        cur.execute(
            "create table marts.dim_users (username text, email text, role text, "
            "has_initial_password boolean, loaded_at timestamp)"
        )
        cur.executemany(
            f"insert into marts.dim_users values ({', '.join([ph] * 5)})",
            [(*row, LOADED_AT) for row in DIM_USERS],
        )


def execute(warehouse: Warehouse, *statements: str) -> None:
    with warehouse.connect() as conn:
        cur = conn.cursor()
        for statement in statements:
            cur.execute(statement)


def suite_size(mart: str) -> int:
    return len(json.loads((GX_DIR / "expectations" / f"{mart}.json").read_text())["expectations"])


def gx_files() -> dict[str, str]:
    return {
        str(path.relative_to(GX_DIR)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(GX_DIR.rglob("*"))
        if path.is_file()
    }


def test_good_marts_pass(warehouse: Warehouse) -> None:
    create_marts(warehouse)

    result = run_expectations(warehouse)

    assert result.failures == [], result.message()
    assert result.success
    assert result.suites_run == list(MARTS)
    assert result.evaluated == sum(suite_size(mart) for mart in MARTS)
    assert "passed" in result.message()


BAD_DATA = {
    "implausible total": (
        ["update marts.fct_sales set total_amount = 2000000 where order_line_id = 'o2-1'"],
        ("fct_sales", "expect_column_values_to_be_between", "total_amount"),
        "1 unexpected value(s)",
    ),
    "duplicate order line": (
        ["update marts.fct_sales set order_line_id = 'o1-1' where order_line_id = 'o1-2'"],
        ("fct_sales", "expect_column_values_to_be_unique", "order_line_id"),
        "2 unexpected value(s)",
    ),
    "zero quantity": (
        ["update marts.fct_sales set quantity = 0 where order_line_id = 'o1-2'"],
        ("fct_sales", "expect_column_values_to_be_between", "quantity"),
        "strict_min=True",
    ),
    "two rows for one day and region": (
        [
            "insert into marts.agg_sales_daily_by_region "
            "select * from marts.agg_sales_daily_by_region where region = 'north'"
        ],
        ("agg_sales_daily_by_region", "expect_compound_columns_to_be_unique", "order_date, region"),
        "2 unexpected value(s)",
    ),
    "password hash in dim_users": (
        ["alter table marts.dim_users add column password_hash text"],
        ("dim_users", "expect_table_columns_to_match_set", None),
        "unexpected columns ['password_hash']",
    ),
    "unknown role": (
        ["update marts.dim_users set role = 'superuser' where username = 'bob'"],
        ("dim_users", "expect_column_values_to_be_in_set", "role"),
        "'superuser'",
    ),
    "malformed email": (
        ["update marts.dim_users set email = 'carol at example' where username = 'carol'"],
        ("dim_users", "expect_column_values_to_match_regex", "email"),
        "'carol at example'",
    ),
}


@pytest.mark.parametrize("case", list(BAD_DATA), ids=list(BAD_DATA))
def test_bad_data_fails_naming_suite_and_expectation(warehouse: Warehouse, case: str) -> None:
    statements, (suite, expectation, column), detail = BAD_DATA[case]
    create_marts(warehouse)
    execute(warehouse, *statements)

    result = run_expectations(warehouse)

    assert not result.success
    assert result.suites_run == list(MARTS)
    assert [(f.suite, f.expectation, f.column) for f in result.failures] == [(suite, expectation, column)], (
        result.message()
    )
    where = f"({column})" if column else ""
    assert result.message().startswith(f"{suite}: {expectation}{where} failed: ")
    assert detail in result.message()
    assert len(result.message().splitlines()) == 1


def test_every_failure_has_its_own_line(warehouse: Warehouse) -> None:
    create_marts(warehouse)
    execute(
        warehouse,
        "alter table marts.fct_sales drop column region",
        "delete from marts.agg_sales_daily_by_region",
        "update marts.dim_users set email = null where username = 'bob'",
    )

    result = run_expectations(warehouse)

    assert [(f.suite, f.expectation, f.column) for f in result.failures] == [
        ("fct_sales", "expect_table_columns_to_match_set", None),
        ("fct_sales", "expect_column_values_to_not_be_null", "region"),
        ("agg_sales_daily_by_region", "expect_table_row_count_to_be_between", None),
        ("dim_users", "expect_column_values_to_not_be_null", "email"),
    ], result.message()
    lines = result.message().splitlines()
    assert len(lines) == 4
    assert "missing columns ['region']" in lines[0]
    assert 'raised an error: Error: The column "region"' in lines[1]
    assert "observed 0; expected min_value=1" in lines[2]
    assert "1 unexpected value(s) of 3 row(s)" in lines[3]


def test_missing_mart_is_a_failure(warehouse: Warehouse) -> None:
    create_marts(warehouse)
    execute(warehouse, "drop table marts.dim_users")

    result = run_expectations(warehouse)

    assert not result.success
    assert result.suites_run == ["fct_sales", "agg_sales_daily_by_region"]
    assert [(f.suite, f.expectation) for f in result.failures] == [("dim_users", "table_exists")]
    assert "marts.dim_users not found" in result.message()
    assert "dbt build" in result.message()


def test_runs_leave_gx_folder_untouched_and_write_no_secret(warehouse: Warehouse) -> None:
    create_marts(warehouse)
    execute(warehouse, "alter table marts.dim_users add column initial_password text")
    before = gx_files()

    results: list[ExpectationsResult] = [run_expectations(warehouse) for _ in range(2)]

    assert gx_files() == before
    if warehouse.target == "postgres":
        assert warehouse.pg_password
        for path in GX_DIR.rglob("*"):
            if path.is_file():
                assert warehouse.pg_password not in path.read_text(errors="replace"), path
        for result in results:
            assert warehouse.pg_password not in result.message()
            assert warehouse.pg_password not in repr(result)


def test_no_connection_outlives_the_run(warehouse: Warehouse) -> None:
    create_marts(warehouse)

    run_expectations(warehouse)

    if warehouse.target == "duckdb":
        import duckdb

        # A read-only connection in this process fails while any other connection is open.
        assert warehouse.duckdb_path is not None
        conn = duckdb.connect(str(warehouse.duckdb_path), read_only=True)
        conn.close()
    else:
        rows = warehouse.query(
            "select count(*) from pg_stat_activity "
            "where datname = current_database() and pid <> pg_backend_pid()"
        )
        assert rows == [(0,)]


def test_gx_folder_holds_suites_and_explicit_actions() -> None:
    suites = {path.stem for path in (GX_DIR / "expectations").glob("*.json")}
    assert suites == set(MARTS)
    checkpoints = sorted((GX_DIR / "checkpoints").glob("*.json"))
    assert {path.stem for path in checkpoints} == {
        f"{mart}__{target}" for mart in MARTS for target in ("duckdb", "postgres")
    }
    for path in checkpoints:
        assert "actions" in json.loads(path.read_text()), path


def test_missing_duckdb_file_says_what_to_do(tmp_path: Path) -> None:
    from loaders.common.warehouse import ConfigurationError

    with pytest.raises(ConfigurationError, match="not found: run `elt run`"):
        run_expectations(Warehouse(target="duckdb", duckdb_path=tmp_path / "none.duckdb"))
