"""The main run end to end on both targets: loads -> dbt build -> expectations -> audit; once as the
Prefect flow (in-process, under a temporary Prefect API), otherwise as ``elt run`` calls it. A failing
expectation is in test_publish.py (it also checks that nothing was published)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows import main
from flows.pipeline import RunSummary, run
from loaders.common.warehouse import Warehouse
from tests.sample_sources import sample_sources as sources_in

MART_COUNTS = {
    "fct_sales": "select count(*) from marts.fct_sales",
    "agg_sales_daily_by_region": "select count(*) from marts.agg_sales_daily_by_region",
    "dim_users": "select count(*) from marts.dim_users",
    "raw_orders": "select count(*) from raw_sales.orders",
    "rejected": "select count(*) from raw_sales.rejected_rows",
    "rental_unified": "select count(*) from marts.fct_rental_submissions_unified",
    "odk_submissions": "select count(*) from raw_odk_central.submissions",
}


@pytest.fixture
def sample_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The demo's sample sources in a temporary folder, with the API servers running."""
    with sources_in(tmp_path) as sources:
        for key, value in sources.env.items():
            monkeypatch.setenv(key, value)
        yield sources.generated, sources.api, sources.odk


def counts(warehouse: Warehouse) -> dict[str, int]:
    return {name: int(warehouse.query(sql)[0][0]) for name, sql in MART_COUNTS.items()}


def step(summary: RunSummary, name: str):
    return next(s for s in summary.steps if s.name == name)


@pytest.mark.usefixtures("prefect_harness")
def test_the_flow_loads_builds_checks_and_a_rerun_changes_nothing(
    warehouse: Warehouse, sample_sources
) -> None:
    first = main.run(target=warehouse.target)

    assert first.success, [(s.name, s.error) for s in first.steps]
    for name in ("sales_csv", "sales_api", "sales_users"):
        outcome = step(first, name)
        assert outcome.read and outcome.loaded is not None and outcome.rejected
        assert outcome.loaded + outcome.rejected == outcome.read
    before = counts(warehouse)
    assert before["fct_sales"] == step(first, "sales_csv").loaded + step(first, "sales_api").loaded
    assert before["dim_users"] == step(first, "sales_users").loaded

    second = main.run(target=warehouse.target)

    assert second.success
    assert step(second, "odk_central").read == 0
    assert step(second, "sales_csv").read == 0
    assert step(second, "sales_users").read == 0
    # the API's lookback day is read again, unchanged: nothing is loaded, so nothing is built
    assert step(second, "sales_api").read > 0 and step(second, "sales_api").loaded == 0
    assert step(second, "dbt_build").status == "skipped"
    assert counts(warehouse) == before
    status = dict(warehouse.query("select sync_type, successful_sync_count from audit.sync_status"))
    for sync_type in ("sales_csv", "sales_api", "sales_users", "odk_central", "registration"):
        assert status[sync_type] == 2, sync_type
    assert status["registration.wards"] == 2
    assert (status["dbt_build"], status["expectations"]) == (1, 1)
    assert status["registration.rollup.counties"] >= 1  # audited when rebuilt (flows/build_plan.py)
    assert status["elt_run"] in (1, 2)  # the second run's outcome is recorded after the views were read


def test_a_failed_run_is_audited_and_leaves_the_marts_as_they_were(
    warehouse: Warehouse, sample_sources
) -> None:
    generated, api, _odk = sample_sources
    assert run(sources=["sales_api"], target=warehouse.target).success
    marts_before = warehouse.query(
        "select order_line_id, quantity, total_amount from marts.fct_sales order by 1"
    )
    # New API data arrives, but the API breaks mid-run with a truncated page.
    api.records.extend(
        line | {"order_id": "NEW-" + line["order_id"]} for line in generated.api_records[-300:]
    )
    api.faults.extend([None, "truncated", "truncated"])

    failed = run(sources=["sales_api"], target=warehouse.target, days=400)

    assert not failed.success
    assert failed.failed == ["sales_api"]
    assert step(failed, "dbt_build").status == "skipped"  # nothing new was loaded
    assert (
        warehouse.query("select order_line_id, quantity, total_amount from marts.fct_sales order by 1")
        == marts_before
    )
    history = warehouse.query(
        "select status, error_message from audit.sync_history "
        "where sync_type = 'sales_api' order by finished_at"
    )
    assert [status for status, _ in history] == ["success", "error"]
    assert "JSON" in history[-1][1] or "Expecting" in history[-1][1]
    status = warehouse.query(
        "select last_sync_status, last_error_message, failed_sync_count from audit.sync_status "
        "where sync_type = 'sales_api'"
    )
    assert status[0][0] == "error" and status[0][2] == 1


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize("target", ["duckdb"])
def test_a_step_that_crashes_in_the_flow_is_audited_with_the_run(
    warehouse: Warehouse, sample_sources, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a deployment met when flows/dbt.py hid dbt: the build's crash and the run's outcome are in
    the audit like any failure."""
    import flows.dbt_runner

    def crash(*args, **kwargs):
        raise ModuleNotFoundError("No module named 'dbt.cli'; 'dbt' is not a package")

    monkeypatch.setattr(flows.dbt_runner, "invoke", crash)

    summary = main.run(sources=["sales_users"], target=warehouse.target)

    assert summary.failed == ["dbt_build"]
    assert "No module named 'dbt.cli'" in (step(summary, "dbt_build").error or "")
    history = dict(
        warehouse.query(
            "select sync_type, status from audit.sync_runs where sync_type in ('sales_users', 'dbt_build', "
            "'elt_run')"
        )
    )
    assert history == {"sales_users": "success", "dbt_build": "error", "elt_run": "error"}


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize("target", ["duckdb"])
@pytest.mark.parametrize("runner", ["elt run", "Prefect flow"])
def test_a_failed_load_is_tried_again_but_a_setting_to_fix_is_not(
    warehouse: Warehouse, runner: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flows.pipeline

    monkeypatch.setenv("ELT_LOAD_RETRIES", "1")
    monkeypatch.setenv("ELT_RETRY_DELAY_SECONDS", "0")
    monkeypatch.setenv("SOURCES__SALES_USERS__USERS_PATH", str(tmp_path / "users"))
    calls = []
    real_run_sync = flows.pipeline.run_sync

    def flaky(name, *args):
        calls.append(name)
        if name == "sales_users" and calls.count(name) == 1:
            raise ConnectionError("the server went away")
        return real_run_sync(name, *args)

    monkeypatch.setattr(flows.pipeline, "run_sync", flaky)
    nowhere = json.dumps([{"name": "x", "path": str(tmp_path / "nope")}])
    monkeypatch.setenv("SOURCES__SALES_CSV__FILE_SOURCES", nowhere)
    (tmp_path / "users").mkdir()
    run_with = run if runner == "elt run" else main.run

    summary = run_with(sources=["sales_csv", "sales_users"], target=warehouse.target)

    assert "sales_csv" in summary.failed and "sales_users" not in summary.failed
    assert summary.configuration_errors and "nope does not exist" in summary.configuration_errors[0]
    assert calls == ["sales_csv", "sales_users", "sales_users"]
    statuses = warehouse.query(
        "select sync_type, status from audit.sync_runs where sync_type in ('sales_csv', 'sales_users') "
        "order by started_at"
    )
    assert statuses == [("sales_csv", "error"), ("sales_users", "error"), ("sales_users", "success")]
