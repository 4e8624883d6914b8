"""``elt status``: per sync type the last attempt and success, staleness against the age its schedule
allows, success rates and durations; exit 0 healthy, 1 a latest attempt failed, was abandoned or is
stale, 2 the status cannot be read. On both targets, from attempts planted in ``audit.sync_runs``."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.dbt_runner import invoke
from loaders.common import audit
from loaders.common.warehouse import Warehouse

runner = CliRunner()
LONG_ERROR = "HTTPError: 503 Service Unavailable for url https://sales.example.org/api/v1/orders " + "x" * 200


def plant(warehouse: Warehouse, sync_type: str, status: str, hours_ago: float, **fields: object) -> None:
    started = datetime.now(UTC) - timedelta(hours=hours_ago)
    finished = None if status in ("running", "abandoned") else started + timedelta(seconds=30)
    run = audit.SyncRun(sync_type=sync_type, started_at=started, finished_at=finished, status=status)
    for name, value in fields.items():
        setattr(run, name, value)
    audit.record(warehouse, run)


def build_status_views(warehouse: Warehouse) -> None:
    result = invoke(warehouse, "run", ["stg_audit__sync_runs", "sync_status", "sync_history"])
    assert result.success, result.message()


def status(warehouse: Warehouse, *args: str, columns: int = 200):
    return runner.invoke(app, ["status", "--target", warehouse.target, *args], env={"COLUMNS": str(columns)})


@pytest.fixture
def healthy(warehouse: Warehouse) -> Warehouse:
    """Three sales_csv attempts this week (two successes), an ODK Central success ten minutes ago."""
    plant(warehouse, "sales_csv", "success", 50, records_processed=10, records_rejected=0)
    plant(warehouse, "sales_csv", "error", 26, error_message="ValueError: bad file")
    plant(warehouse, "sales_csv", "success", 2, records_processed=12, records_rejected=1)
    plant(warehouse, "odk_central", "success", 0.2, records_processed=5, records_rejected=0)
    build_status_views(warehouse)
    return warehouse


def test_a_healthy_warehouse_exits_0_with_rates_and_ages(healthy: Warehouse) -> None:
    result = status(healthy)

    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("sales_csv "))
    assert "success" in line and "67% of 3" in line and "26.0 h" in line
    assert "need attention" not in result.output

    document = json.loads(status(healthy, "--json").output)
    assert document["healthy"] is True
    by_type = {entry["sync_type"]: entry for entry in document["sync_types"]}
    assert by_type["sales_csv"]["success_rate_7d"] == pytest.approx(0.667)
    assert by_type["sales_csv"]["avg_duration_seconds_7d"] == pytest.approx(30)
    assert by_type["sales_csv"]["last_records_processed"] == 12
    assert by_type["sales_csv"]["last_records_rejected"] == 1
    assert 1.9 < by_type["sales_csv"]["age_hours"] < 2.2
    assert by_type["odk_central"]["max_age_hours"] == 1
    # the figures are audit.sync_status's
    rows = healthy.query(
        "select sync_type, successful_sync_count, failed_sync_count, last_records_processed "
        "from audit.sync_status order by sync_type"
    )
    assert [
        (e["sync_type"], e["successful_sync_count"], e["failed_sync_count"], e["last_records_processed"])
        for e in document["sync_types"]
    ] == [tuple(row) for row in rows]


def test_a_failed_last_attempt_exits_1_and_names_it(healthy: Warehouse) -> None:
    plant(healthy, "odk_central", "error", 0.1, error_message=LONG_ERROR)

    result = status(healthy, columns=160)

    assert result.exit_code == 1, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("!odk_central "))
    assert len(line) <= 160 and line.endswith("...")  # the error, cut to the terminal
    assert "odk_central: last attempt error" in result.output
    assert LONG_ERROR in status(healthy, "--verbose").output
    assert json.loads(status(healthy, "--json").output)["healthy"] is False


def test_an_abandoned_last_attempt_exits_1(healthy: Warehouse) -> None:
    plant(healthy, "sales_csv", "abandoned", 0.5, error_message="abandoned: process h:1 ended")

    result = status(healthy)

    assert result.exit_code == 1, result.output
    assert "sales_csv: last attempt abandoned" in result.output


def test_a_stale_sync_type_exits_1_until_its_schedule_allows_the_age(
    warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    plant(warehouse, "registration", "success", 30)
    plant(warehouse, "registration.rollup.wards", "success", 30)
    plant(warehouse, "my_own_sync", "success", 1000)  # named nowhere: never stale
    build_status_views(warehouse)

    stale = status(warehouse)

    assert stale.exit_code == 1, stale.output
    assert re.search(r"registration: last success 30\.\d h ago \(allowed 26\.0 h\)", stale.output)
    assert re.search(r"registration\.rollup\.wards: last success 30\.\d h ago", stale.output)  # its source's
    assert "my_own_sync:" not in stale.output

    monkeypatch.setenv("HEALTH__MAX_AGE_HOURS__REGISTRATION", "48")
    assert status(warehouse).exit_code == 0
