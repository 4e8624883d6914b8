"""The sales API loader against a local server that behaves like the API, on both targets."""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

import pytest

from loaders.common.quarantine import LoadStats
from loaders.common.warehouse import Warehouse
from loaders.registry import RunOptions, run_sync
from loaders.sales import sales_api
from testing.samples.sales import SalesApiServer, order_lines, plant_bad_rows
from tests.sales_fixtures import count, load

API_KEY = "test-key-4f1c9a"
TODAY = date.today()


def records(n: int = 120, days: int = 10, prefix: str = "API") -> list[dict[str, Any]]:
    lines = order_lines(random.Random(7), prefix, n, TODAY - timedelta(days=days - 1), days, ["u1"])
    return [line | {"date": line["date"].isoformat()} for line in lines]


def run_api(api: SalesApiServer, warehouse: Warehouse, **kwargs: Any) -> LoadStats:
    stats = LoadStats()
    options = {
        "base_url": api.base_url,
        "api_key": API_KEY,
        "page_size": 25,
        "initial_start_date": (TODAY - timedelta(days=60)).isoformat(),
        "backoff_factor": 0.05,
        "max_retry_delay": 2,
        "request_timeout": 1.0,
    } | kwargs
    load(sales_api(stats=stats, **options), "sales_api", warehouse)
    return stats


def test_overlapping_windows_do_not_duplicate(warehouse: Warehouse) -> None:
    data = records()
    with SalesApiServer(data, api_key=API_KEY) as api:
        first = run_api(api, warehouse)
        second = run_api(api, warehouse, days=5)  # overlaps the first window
        third = run_api(api, warehouse)  # from the cursor, minus the lookback day: nothing new
        latest = max(data, key=lambda record: record["date"])
        latest["region"] = "Revised"
        fourth = run_api(api, warehouse)  # the lookback reads one revised line

    assert first.loaded == len(data)
    # lines read again unchanged are counted, not loaded (an API with nothing new loads nothing)
    assert 0 < second.loaded < len(data) and second.unchanged > 0
    assert (third.loaded, third.unchanged) == (0, third.read) and third.read > 0
    assert (fourth.loaded, fourth.unchanged) == (1, fourth.read - 1)
    assert count(warehouse, "select count(*) from raw_sales.orders where region = 'Revised'") == 1
    assert count(warehouse, "select count(*) from raw_sales.orders") == len(data)
    assert count(
        warehouse, "select count(distinct order_id || '|' || product_name) from raw_sales.orders"
    ) == len(data)


def test_the_cursor_narrows_the_next_window(warehouse: Warehouse) -> None:
    with SalesApiServer(records(), api_key=API_KEY) as api:
        run_api(api, warehouse)
        api.requests.clear()
        stats = run_api(api, warehouse)

    newest = max(r["date"] for r in records())
    assert stats.cursor == newest
    starts = {req["query"]["start_date"][0] for req in api.requests}
    assert starts == {(date.fromisoformat(newest) - timedelta(days=1)).isoformat()}


def test_5xx_and_429_are_retried_and_counted(warehouse: Warehouse) -> None:
    data = records(60)
    with SalesApiServer(data, api_key=API_KEY) as api:
        api.faults.extend([500, 503, 429])
        stats = run_api(api, warehouse)
        served = [req["fault"] for req in api.requests]

    assert served[:4] == [500, 503, 429, None]
    assert stats.http_errors == 3
    assert stats.requests == stats.pages + 3
    assert stats.loaded == len(data)
    assert count(warehouse, "select count(*) from raw_sales.orders") == len(data)


def test_a_timeout_is_retried(warehouse: Warehouse) -> None:
    data = records(30)
    with SalesApiServer(data, api_key=API_KEY) as api:
        api.faults.append("timeout")
        stats = run_api(api, warehouse)

    assert stats.http_errors == 1
    assert stats.loaded == len(data)


def test_exhausted_retries_fail_and_keep_the_cursor(warehouse: Warehouse) -> None:
    data = records(30)
    with SalesApiServer(data, api_key=API_KEY) as api:
        run_api(api, warehouse)
        api.faults.extend([500] * 3)
        with pytest.raises(Exception, match="500"):
            run_api(api, warehouse, max_attempts=3, days=30)
        api.requests.clear()
        stats = run_api(api, warehouse)

    newest = max(r["date"] for r in data)
    assert stats.cursor == newest
    assert api.requests[0]["query"]["start_date"] == [
        (date.fromisoformat(newest) - timedelta(days=1)).isoformat()
    ]


def test_a_truncated_page_fails_cleanly_and_loads_nothing(warehouse: Warehouse) -> None:
    data = records(60)
    with SalesApiServer(data, api_key=API_KEY) as api:
        api.faults.extend([None, "truncated"])  # the second page is cut in half
        with pytest.raises(Exception):
            run_api(api, warehouse)

    tables = warehouse.query(
        "select count(*) from information_schema.tables "
        "where table_schema = 'raw_sales' and table_name = 'orders'"
    )
    if tables[0][0]:
        assert count(warehouse, "select count(*) from raw_sales.orders") == 0


def test_bad_records_are_quarantined_with_their_page(warehouse: Warehouse) -> None:
    data = [
        line | {"date": str(line["date"])}
        for line in plant_bad_rows(
            order_lines(random.Random(3), "API", 20, TODAY - timedelta(days=3), 3, ["u1"]), "API"
        )
    ]
    # the planted impossible date would fall outside the window: make it a bad date inside it
    data[-2]["date"] = f"{TODAY - timedelta(days=1)}T"
    with SalesApiServer(data, api_key=API_KEY) as api:
        stats = run_api(api, warehouse, page_size=10)

    assert stats.read == len(data)
    assert stats.loaded + stats.rejected == stats.read
    assert stats.rejected == 7
    rows = warehouse.query("select api_page, source_locator, reason from raw_sales.rejected_rows")
    assert {page for page, _, _ in rows} == {3}
    assert all(locator.startswith("orders page 3, record ") for _, locator, _ in rows)


def test_a_wrong_key_fails_without_showing_it(warehouse: Warehouse) -> None:
    with SalesApiServer(records(10), api_key=API_KEY) as api, pytest.raises(Exception) as caught:
        run_api(api, warehouse, api_key="wrong-key-123456")

    assert "401" in str(caught.value) and "refused the API key" in str(caught.value)
    assert "wrong-key-123456" not in str(caught.value)


def test_a_terminals_columns_and_a_desktops_username_are_not_settings(
    warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    # dlt looks a source's argument up down to its bare name: COLUMNS=80 once failed the sales API
    # source ("ValueError: 80", its column map); the run's settings name their section.
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("USERNAME", "desktop-user")
    monkeypatch.setenv("SOURCES__SALES_API__API_KEY", API_KEY)
    monkeypatch.setenv("SOURCES__SALES_API__INITIAL_START_DATE", (TODAY - timedelta(days=60)).isoformat())
    data = records(n=30)
    with SalesApiServer(data, api_key=API_KEY) as api:
        monkeypatch.setenv("SOURCES__SALES_API__BASE_URL", api.base_url)
        stats = LoadStats()
        run_sync("sales_api", warehouse, RunOptions(), stats)

    assert stats.loaded == len(data)
    assert count(warehouse, "select count(*) from raw_sales.orders") == len(data)
