"""The Great Expectations checks of the marts, on DuckDB and on PostgreSQL.

Each test builds the marts directly with SQL (schema ``marts``): the three sales marts and the ODK
Central one, then runs the checkpoints through ``flows.expectations.run_expectations``. The suites
come from the marts' YAML descriptions (``meta: {expectations: ...}``), read from dbt's manifest.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest

from flows.expectations import ExpectationsResult, checked_marts, run_expectations
from flows.manifest import models
from loaders.common.warehouse import ROOT, ConfigurationError, Warehouse

# Loaded an hour ago: fresh for every ``newest`` rule.
LOADED_AT = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).replace(microsecond=0)
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

SALES_MARTS = ["agg_sales_daily_by_region", "dim_users", "fct_sales"]  # (suites run by name)
# The marts these tests build by hand (create_marts), and the sources they come from.
HAND_BUILT = ("sales", "odk_central")


def hand_built_marts(warehouse: Warehouse) -> list[str]:
    """The checked marts (by their YAML's meta, through dbt's manifest) of the hand-built sources."""
    return [mart for mart, built_from in checked_marts(warehouse).items() if built_from & set(HAND_BUILT)]


ODK_MART = "fct_rental_submissions_unified"
SUBMITTED_AT = dt.datetime(2026, 1, 5, 8, 0, 0)
PLUS_CODE_LINK = '<a href="https://plus.codes/6GCRPR6C+24">6GCRPR6C+24</a>'
IMAGE_URL = "https://cdn.example.org/odk/1/rental_survey/uuid-s1/building_000001.png"
ODK_COLUMNS = (
    "submission_id text, form_id text, instance_id text, survey_date date, building_name text, "
    "address text, address_plus_code text, rent_amount numeric(28, 6), number_of_units integer, "
    "landlord_phone text, submitted_at timestamp, updated_at timestamp, review_state text, "
    "submitter_name text, device_id text, form_version text, edit_count bigint, person_count bigint, "
    "person_list text, building_image_key text, building_image_url text, building_image_url_html text, "
    "address_plus_code_url_html text, is_deleted boolean, source_loaded_at timestamp with time zone"
)
RENTAL_SUBMISSIONS = [
    # submission_id, address_plus_code, rent_amount, number_of_units, review_state, person_count,
    # building_image_url, address_plus_code_url_html
    ("uuid:s1", "6GCRPR6C+24", Decimal("12500"), 8, "approved", 3, IMAGE_URL, PLUS_CODE_LINK),
    ("uuid:s2", None, Decimal("250.5"), None, None, 0, None, None),
    ("uuid:s3", "6GCRPR6C+24", None, 1, "hasIssues", 1, None, PLUS_CODE_LINK),
]


def rental_row(row: tuple) -> tuple:
    """A full mart row from the columns the checks look at."""
    submission_id, plus_code, rent, units, review_state, persons, image_url, plus_code_link = row
    image_link = f'<a href="{image_url}">View image</a>' if image_url else None
    return (
        submission_id,
        "rental_survey",
        submission_id,
        DAY,
        "Kamau Court",
        "12 Moi Avenue, Umoja, Nairobi",
        plus_code,
        rent,
        units,
        "+254700000001",
        SUBMITTED_AT,
        None,
        review_state,
        "amina.otieno",
        "collect:0123456789ab",
        "2026011501",
        0,
        persons,
        "Amina Otieno (34, female)" if persons else None,
        image_url.rsplit("/odk/", 1)[1] if image_url else None,
        image_url,
        image_link,
        plus_code_link,
        False,
        LOADED_AT,
    )


def create_marts(warehouse: Warehouse, *, odk: bool = True) -> None:
    """The three sales marts and (unless ``odk`` is False) the ODK Central mart with a few good rows,
    as dbt would build them."""
    ph = warehouse.paramstyle
    with warehouse.connect() as conn:
        cur = conn.cursor()
        cur.execute("create schema if not exists marts")
        cur.execute(
            "create table marts.fct_sales (order_line_id text, order_id text, order_date date, "
            "user_id text, product_name text, quantity integer, unit_price numeric(18, 2), "
            "total_amount numeric(18, 2), region text, source_name text, loaded_at timestamp with time zone)"
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
            "has_initial_password boolean, loaded_at timestamp with time zone)"
        )
        cur.executemany(
            f"insert into marts.dim_users values ({', '.join([ph] * 5)})",
            [(*row, LOADED_AT) for row in DIM_USERS],
        )
        if odk:
            cur.execute(f"create table marts.{ODK_MART} ({ODK_COLUMNS})")
            cur.executemany(
                f"insert into marts.{ODK_MART} values ({', '.join([ph] * 25)})",
                [rental_row(row) for row in RENTAL_SUBMISSIONS],
            )


def execute(warehouse: Warehouse, *statements: str) -> None:
    with warehouse.connect() as conn:
        cur = conn.cursor()
        for statement in statements:
            cur.execute(statement)


def suite_size(warehouse: Warehouse, mart: str, *, previous: bool = False) -> int:
    """How many expectations the mart's description stands for (its row-count change only once a
    check has counted its rows before)."""
    description = models(warehouse)[mart].meta["expectations"]
    rows = description.get("rows", {})
    return (
        ("min" in rows or "max" in rows)
        + ("max_drop" in rows and previous)
        + len(description.get("expect", []))
        + len(description.get("totals", []))
        + ("newest" in description)
    )


def files_under(path: Path) -> set[Path]:
    return {item for item in path.rglob("*") if item.is_file()}


def test_good_marts_pass(warehouse: Warehouse) -> None:
    create_marts(warehouse)

    result = run_expectations(warehouse, sources=HAND_BUILT)

    assert result.failures == [], result.message()
    assert result.success
    assert result.suites_run == hand_built_marts(warehouse)
    assert result.evaluated == sum(suite_size(warehouse, mart) for mart in hand_built_marts(warehouse))
    assert result.row_counts == {
        "agg_sales_daily_by_region": 2,
        "dim_users": 3,
        ODK_MART: 3,
        "fct_sales": 3,
    }
    assert "passed" in result.message()


BAD_DATA = {
    "implausible total": (
        [
            "update marts.fct_sales set total_amount = 2000000 where order_line_id = 'o2-1'",
            "update marts.agg_sales_daily_by_region set revenue = 2000000 where region = 'south'",
        ],
        ("fct_sales", "expect_column_values_to_be_between", "total_amount"),
        "1 unexpected value(s)",
    ),
    "zero quantity": (
        [
            "update marts.fct_sales set quantity = 0 where order_line_id = 'o1-2'",
            "update marts.agg_sales_daily_by_region set units_sold = 2 where region = 'north'",
        ],
        ("fct_sales", "expect_column_values_to_be_between", "quantity"),
        "strict_min=True",
    ),
    "quantities in the hundreds": (
        [
            "update marts.fct_sales set quantity = 500 where order_line_id in ('o1-1', 'o2-1')",
            "update marts.agg_sales_daily_by_region set units_sold = units_sold + 498 where region = 'north'",
            "update marts.agg_sales_daily_by_region set units_sold = units_sold + 497 where region = 'south'",
        ],
        ("fct_sales", "expect_column_median_to_be_between", "quantity"),
        "observed 500",
    ),
    "no sales loaded for eight days": (
        ["update marts.fct_sales set loaded_at = loaded_at - interval '8 days'"],
        ("fct_sales", "expect_column_max_to_be_between", "loaded_at"),
        "(the newest row at most 7 days old)",
    ),
    "daily revenue that is not the sum of its lines": (
        ["update marts.fct_sales set total_amount = 21.00 where order_line_id = 'o1-1'"],
        ("agg_sales_daily_by_region", "expect_column_sum_to_be_between", "revenue"),
        "observed 55.5; expected min_value=56.49, max_value=56.51 (sum(total_amount) of fct_sales is 56.5)",
    ),
    "a line counted twice in the daily figures": (
        ["update marts.agg_sales_daily_by_region set order_line_count = 2 where region = 'south'"],
        ("agg_sales_daily_by_region", "expect_column_sum_to_be_between", "order_line_count"),
        "(count(*) of fct_sales is 3)",
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
    "signed image URL": (
        [
            f"update marts.{ODK_MART} set building_image_url = building_image_url || "
            "'?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=3600&X-Amz-Signature=0f3a' "
            "where submission_id = 'uuid:s1'"
        ],
        (ODK_MART, "expect_column_values_to_not_match_regex", "building_image_url"),
        "X-Amz-Signature",
    ),
    "CloudFront-signed image URL": (
        [
            f"update marts.{ODK_MART} set building_image_url = "
            "'https://d1.cloudfront.net/b.png?Expires=1767225600&Signature=abc&Key-Pair-Id=K1' "
            "where submission_id = 'uuid:s3'"
        ],
        (ODK_MART, "expect_column_values_to_not_match_regex", "building_image_url"),
        "1 unexpected value(s)",
    ),
    "signed image URL in lower case": (
        [
            f"update marts.{ODK_MART} set building_image_url = building_image_url || "
            "'?x-amz-signature=0f3a' where submission_id = 'uuid:s1'"
        ],
        (ODK_MART, "expect_column_values_to_not_match_regex", "building_image_url"),
        "1 unexpected value(s) of 3 row(s)",
    ),
    "implausible person count": (
        [f"update marts.{ODK_MART} set person_count = 51 where submission_id = 'uuid:s1'"],
        (ODK_MART, "expect_column_values_to_be_between", "person_count"),
        "max_value=50",
    ),
    "persons misread": (
        [f"update marts.{ODK_MART} set person_count = 40"],
        (ODK_MART, "expect_column_mean_to_be_between", "person_count"),
        "observed 40",
    ),
    "negative rent": (
        [f"update marts.{ODK_MART} set rent_amount = -500 where submission_id = 'uuid:s1'"],
        (ODK_MART, "expect_column_values_to_be_between", "rent_amount"),
        "mostly=0.95",
    ),
    "unknown review state": (
        [f"update marts.{ODK_MART} set review_state = 'pending' where submission_id = 'uuid:s3'"],
        (ODK_MART, "expect_column_values_to_be_in_set", "review_state"),
        "'pending'",
    ),
    "plus code link elsewhere": (
        [
            f"update marts.{ODK_MART} set address_plus_code_url_html = "
            "'<a href=\"https://example.org/6GCRPR6C+24\">6GCRPR6C+24</a>' where submission_id = 'uuid:s1'"
        ],
        (ODK_MART, "expect_column_values_to_match_regex", "address_plus_code_url_html"),
        "1 unexpected value(s) of 3 row(s)",
    ),
}


@pytest.mark.parametrize("case", list(BAD_DATA), ids=list(BAD_DATA))
def test_bad_data_fails_naming_suite_and_expectation(warehouse: Warehouse, case: str) -> None:
    statements, (suite, expectation, column), detail = BAD_DATA[case]
    create_marts(warehouse)
    execute(warehouse, *statements)

    result = run_expectations(warehouse, sources=HAND_BUILT)

    assert not result.success
    assert result.suites_run == hand_built_marts(warehouse)
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
        "alter table marts.fct_sales drop column quantity",
        "update marts.agg_sales_daily_by_region set order_count = 0 where region = 'north'",
        "update marts.dim_users set email = 'bob' where username = 'bob'",
    )

    result = run_expectations(warehouse, sources=HAND_BUILT)

    assert [(f.suite, f.expectation, f.column) for f in result.failures] == [  # suites by name
        ("agg_sales_daily_by_region", "expect_column_sum_to_be_between", "units_sold"),
        ("agg_sales_daily_by_region", "expect_column_values_to_be_between", "order_count"),
        ("dim_users", "expect_column_values_to_match_regex", "email"),
        ("fct_sales", "expect_column_values_to_be_between", "quantity"),
        ("fct_sales", "expect_column_median_to_be_between", "quantity"),
    ], result.message()
    lines = result.message().splitlines()
    assert len(lines) == 5
    assert "cannot compute sum(quantity) of fct_sales: " in lines[0]
    assert "1 unexpected value(s) of 2 row(s)" in lines[1]
    assert "1 unexpected value(s) of 3 row(s) (e.g. 'bob')" in lines[2]
    assert "raised an error: " in lines[3] and "quantity" in lines[3]


def test_missing_mart_is_a_failure(warehouse: Warehouse) -> None:
    create_marts(warehouse)
    execute(warehouse, "drop table marts.dim_users")

    result = run_expectations(warehouse, sources=HAND_BUILT)

    assert not result.success
    assert result.suites_run == ["agg_sales_daily_by_region", ODK_MART, "fct_sales"]
    assert [(f.suite, f.expectation) for f in result.failures] == [("dim_users", "table_exists")]
    assert "marts.dim_users not found" in result.message()
    assert "dbt build" in result.message()


def test_only_the_marts_of_the_selected_sources_are_checked(warehouse: Warehouse) -> None:
    create_marts(warehouse, odk=False)  # a sales-only deployment

    sales = run_expectations(warehouse, sources=["audit", "sales"])

    assert sales.failures == [], sales.message()
    assert sales.success
    assert sales.suites_run == SALES_MARTS
    assert sales.evaluated == sum(suite_size(warehouse, mart) for mart in SALES_MARTS)

    # The ODK mart still has to exist when its source is selected (or when all are).
    for sources in (["odk_central", "sales"], None):
        result = run_expectations(warehouse, sources=sources)
        assert not result.success
        assert result.suites_run == SALES_MARTS
        missing = [(f.suite, f.expectation) for f in result.failures]
        expected = [
            (mart, "table_exists")
            for mart, built_from in checked_marts(warehouse).items()
            if "sales" not in built_from and (sources is None or built_from & set(sources))
        ]
        assert (ODK_MART, "table_exists") in expected
        assert missing == expected
        assert f"marts.{ODK_MART} not found" in result.message()

    nothing = run_expectations(warehouse, sources=["audit"])
    assert nothing.success and nothing.suites_run == [] and nothing.evaluated == 0


def test_odk_suite_alone(warehouse: Warehouse) -> None:
    create_marts(warehouse)
    execute(warehouse, "drop table marts.fct_sales")  # another source's mart: not checked

    result = run_expectations(warehouse, sources=["odk_central"])

    assert result.failures == [], result.message()
    assert result.suites_run == [ODK_MART]
    assert result.evaluated == suite_size(warehouse, ODK_MART)


def test_runs_write_no_file_and_no_secret(
    warehouse: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GX's context is in memory: nothing is written where the run starts, in the project or in the
    home folder, and the PostgreSQL password is in no message."""
    create_marts(warehouse)
    execute(warehouse, "alter table marts.dim_users add column initial_password text")
    start, home = tmp_path / "cwd", tmp_path / "home"
    start.mkdir(), home.mkdir()
    monkeypatch.chdir(start)
    monkeypatch.setenv("HOME", str(home))
    project = {path for path in files_under(ROOT) if ".venv" not in path.parts and "target" not in path.parts}

    results: list[ExpectationsResult] = [run_expectations(warehouse, sources=HAND_BUILT) for _ in range(2)]

    assert all(not result.success for result in results)  # the extra column is found each time
    assert files_under(start) == set() and files_under(home) == set()
    after = {path for path in files_under(ROOT) if ".venv" not in path.parts and "target" not in path.parts}
    assert after - project == set()
    if warehouse.target == "postgres":
        assert warehouse.pg_password
        for result in results:
            assert warehouse.pg_password not in result.message()
            assert warehouse.pg_password not in repr(result)


def test_a_drop_in_rows_against_the_previous_check_fails_once(warehouse: Warehouse) -> None:
    """``rows.max_drop`` compares with the count the previous check recorded in the audit: more than
    half of the users gone fails that check, and the next one compares with the new count."""
    from flows.pipeline import check_expectations

    create_marts(warehouse)
    first = check_expectations(warehouse, list(HAND_BUILT))
    execute(warehouse, "delete from marts.dim_users where username <> 'alice'")

    second = check_expectations(warehouse, list(HAND_BUILT))
    third = check_expectations(warehouse, list(HAND_BUILT))

    assert (first.status, second.status, third.status) == ("success", "error", "success"), second.error
    assert second.error == (
        "dim_users: expect_table_row_count_to_be_between failed: observed 1; expected min_value=2 "
        "(the previous check counted 3 rows; at most 50% fewer allowed)"
    )
    recorded = warehouse.query(
        "select metadata from audit.sync_runs where sync_type = 'expectations' order by started_at"
    )
    assert [json.loads(metadata)["row_counts"]["dim_users"] for (metadata,) in recorded] == [3, 1, 1]


def test_every_description_is_well_formed(warehouse: Warehouse) -> None:
    """Each mart with a description (``meta: {expectations: ...}``) is built from one dbt source and
    kept in that source's folder; each expectation it stands for is one GX knows, with arguments GX
    accepts; each total reconciles with a model or seed of the project."""
    from flows.expectations import _Measured, suite_for

    marts = checked_marts(warehouse)
    assert set(HAND_BUILT) < set().union(*marts.values())
    every = models(warehouse)
    for mart, built_from in marts.items():
        (source,) = built_from
        assert (ROOT / "models" / "marts" / source / f"{mart}.sql").is_file(), mart
        description = every[mart].meta["expectations"]
        assert "rows" in description, mart  # each mart says how many rows it may lose between runs
        measured = _Measured(
            totals={(mart, index): 1.0 for index in range(len(description.get("totals", [])))}
        )
        suite = suite_for(every[mart], measured, 10, dt.datetime.now(dt.UTC))
        assert len(suite) == suite_size(warehouse, mart, previous=True)
        for expectation in suite:
            expectation.to_domain_obj()  # raises for an unknown type or arguments GX refuses
        for total in description.get("totals", []):
            assert total["of"] in every, (mart, total)


@pytest.mark.parametrize(
    "description",
    [True, {"rows": {"min": 1}, "checks": []}, {"expect": [{"column": "x"}]}, {"totals": [{"column": "x"}]}],
)
def test_a_malformed_description_says_what_is_wrong(description: object) -> None:
    from flows.expectations import _Measured, suite_for
    from flows.manifest import Model

    model = Model("fct_x", "marts.fct_x", frozenset({"sales"}), {"expectations": description})
    with pytest.raises(ConfigurationError, match="meta.expectations.* of fct_x"):
        suite_for(model, _Measured(), None, dt.datetime.now(dt.UTC))


def test_no_connection_outlives_the_run(warehouse: Warehouse) -> None:
    create_marts(warehouse)

    run_expectations(warehouse, sources=HAND_BUILT)

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


def test_missing_duckdb_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not found: run `elt run`"):
        run_expectations(Warehouse(target="duckdb", duckdb_path=tmp_path / "none.duckdb"))
