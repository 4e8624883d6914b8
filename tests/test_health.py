"""``elt health``: each check fires on a planted condition and passes once it is fixed; exit 0 healthy,
1 unhealthy, 2 cannot check; every check recorded as a ``health_check`` attempt. Both targets."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.health import check_health
from loaders.common.warehouse import Warehouse
from tests.test_status import build_status_views, plant

runner = CliRunner()
YESTERDAY = datetime.now(UTC).date() - timedelta(days=1)


def sales_mart(warehouse: Warehouse, days: list[tuple[date, str]]) -> None:
    """``marts.fct_sales`` with one line per (order date, region)."""
    with warehouse.connect() as conn:
        cur = conn.cursor()
        cur.execute("create schema if not exists marts")
        cur.execute("drop table if exists marts.fct_sales")
        cur.execute("create table marts.fct_sales (order_line_id text, order_date date, region text)")
        for index, (day, region) in enumerate(days):
            cur.execute(
                f"insert into marts.fct_sales values ({', '.join([warehouse.paramstyle] * 3)})",
                (f"l{index}", day, region),
            )


def raw_orders(warehouse: Warehouse, loaded_hours_ago: float) -> None:
    """``raw_sales.orders`` as far as ``dbt source freshness`` looks at it (its ``_loaded_at``)."""
    moment = datetime.now(UTC) - timedelta(hours=loaded_hours_ago)
    with warehouse.connect() as conn:
        cur = conn.cursor()
        cur.execute("create schema if not exists raw_sales")
        cur.execute("drop table if exists raw_sales.orders")
        cur.execute("create table raw_sales.orders (order_id text, _loaded_at timestamp with time zone)")
        cur.execute(f"insert into raw_sales.orders values ('o1', {warehouse.paramstyle})", (moment,))


@pytest.fixture
def fed(warehouse: Warehouse) -> Warehouse:
    """A warehouse being fed as it should: recent successes, yesterday's sales, fresh raw orders."""
    plant(warehouse, "sales_csv", "success", 2, records_processed=100, records_rejected=1)
    plant(warehouse, "odk_central", "success", 0.2, records_processed=5, records_rejected=0)
    build_status_views(warehouse)
    sales_mart(warehouse, [(YESTERDAY, "North"), (YESTERDAY, "South")])
    raw_orders(warehouse, 1)
    return warehouse


def failed(warehouse: Warehouse, **options: bool) -> dict[str, str]:
    report = check_health(warehouse, **options)
    assert report.cannot_check is None, report.cannot_check
    return {check.name: check.detail for check in report.failed}


def test_a_fed_warehouse_is_healthy_and_the_check_is_audited(fed: Warehouse) -> None:
    result = runner.invoke(app, ["health", "--target", fed.target])

    assert result.exit_code == 0, result.output
    assert "healthy" in result.output.splitlines()[-1]
    names = {
        check["name"]
        for check in json.loads(runner.invoke(app, ["health", "--json", "-t", fed.target]).output)["checks"]
    }
    assert {
        "warehouse",
        "sync sales_csv",
        "sync odk_central",
        "freshness sales.orders",
        "sales yesterday",
    } <= names
    assert {"disk backups", "disk attachments"} <= names
    recorded = fed.query(
        "select status, records_processed, records_rejected from audit.sync_runs "
        "where sync_type = 'health_check' order by started_at"
    )
    assert [row[0] for row in recorded] == ["success", "success"] and recorded[0][1] == len(names)


@pytest.mark.parametrize(
    ("planted", "check", "detail"),
    [
        ("stale", "sync registration", "h ago (allowed 26.0 h)"),
        ("failed", "sync sales_csv", "last attempt error"),
        ("abandoned", "sync odk_central", "last attempt abandoned"),
        ("rejections", "sync sales_csv", "rejected 10 of 100 records (10.0%, more than 5.0%)"),
        ("no sales", "sales yesterday", f"0 lines on {YESTERDAY}"),
        ("stale raw orders", "freshness sales.orders", "error"),
    ],
)
def test_each_check_fires_on_its_condition_and_passes_when_fixed(
    fed: Warehouse, monkeypatch: pytest.MonkeyPatch, planted: str, check: str, detail: str
) -> None:
    if planted == "stale":
        plant(fed, "registration", "success", 30)
    elif planted == "failed":
        plant(fed, "sales_csv", "error", 0.1, error_message="ValueError: no")
    elif planted == "abandoned":
        plant(fed, "odk_central", "abandoned", 0.1, error_message="abandoned: process h:1 ended")
    elif planted == "rejections":
        plant(fed, "sales_csv", "success", 0.1, records_processed=100, records_rejected=10)
    elif planted == "no sales":
        sales_mart(fed, [(YESTERDAY - timedelta(days=1), "North")])
    else:
        raw_orders(fed, 8 * 24)  # error_after 7 days

    found = failed(fed)

    assert list(found) == [check], found
    assert detail in found[check]
    result = runner.invoke(app, ["health", "--no-freshness", "-t", fed.target])
    assert result.exit_code == (0 if planted == "stale raw orders" else 1), result.output
    recorded = fed.query(
        "select status, error_message from audit.sync_runs where sync_type = 'health_check' "
        "order by started_at desc"
    )
    assert recorded[-1][0] == "error" and check in recorded[-1][1]

    # fixed: a new success, more slack, sales for yesterday, fresh orders
    if planted == "stale":
        monkeypatch.setenv("HEALTH__MAX_AGE_HOURS__REGISTRATION", "48")
    elif planted in ("failed", "abandoned"):
        plant(fed, check.split()[1], "success", 0.05)
    elif planted == "rejections":
        monkeypatch.setenv("HEALTH__MAX_REJECTED_RATE", "0.2")
    elif planted == "no sales":
        sales_mart(fed, [(YESTERDAY, "North")])
    else:
        raw_orders(fed, 1)
    assert failed(fed) == {}


def test_sales_per_configured_region(fed: Warehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEALTH__SALES_REGIONS", '["North", "East"]')

    assert failed(fed, freshness=False) == {"sales yesterday East": f"0 lines on {YESTERDAY}"}


def test_an_unreachable_warehouse_cannot_be_checked(pg_server, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in pg_server.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("ELT_PG_PASSWORD", "not-the-password-xyz")

    result = runner.invoke(app, ["health", "--target", "postgres"])

    assert result.exit_code == 2, result.output
    assert "Cannot check" in result.output and "not-the-password-xyz" not in result.output


def test_a_setting_of_the_wrong_type_is_a_one_line_error(
    warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEALTH__MIN_FREE_GB", "lots")

    result = runner.invoke(app, ["health", "--no-freshness", "--target", warehouse.target])

    assert result.exit_code == 2
    assert "health.min_free_gb must be a number, got 'lots'" in result.output
