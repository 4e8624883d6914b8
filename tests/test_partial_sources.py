"""A source with some of its tables builds, on both targets: the models and tests of a declared table that
no load has created yet are skipped and reported ("no data yet"), the others build and are checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.pipeline import RunSummary, run
from loaders.common.warehouse import Warehouse
from loaders.registration import samples as registration_samples
from tests.sales_fixtures import GOOD_ROWS, write_csv


def step(summary: RunSummary, name: str):
    return next(s for s in summary.steps if s.name == name)


def test_orders_without_users_or_rejections_build(
    warehouse: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_csv(tmp_path / "shop" / "orders.csv", GOOD_ROWS)
    folders = json.dumps([{"name": "shop", "path": str(tmp_path / "shop")}])
    monkeypatch.setenv("SOURCES__SALES_CSV__FILE_SOURCES", folders)

    summary = run(sources=["sales_csv"], target=warehouse.target)

    assert summary.success, [(s.name, s.error) for s in summary.steps]
    built = step(summary, "dbt_build")
    assert built.not_loaded == ["sales.users", "sales.rejected_rows"]
    assert "no data yet in sales.users, sales.rejected_rows" in built.detail
    assert warehouse.query("select count(*) from marts.fct_sales") == [(len(GOOD_ROWS),)]
    assert step(summary, "expectations").status == "success"  # fct_sales checked, dim_users waits


@pytest.mark.parametrize("target", ["duckdb"])
def test_registration_without_polling_stations_builds(
    warehouse: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'registration.sqlite'}"
    registration_samples.build_source_database(url, counties={"001"})
    monkeypatch.setenv("SOURCES__REGISTRATION__CREDENTIALS", url)

    summary = run(
        sources=["registration"], target=warehouse.target, levels=["counties", "constituencies", "wards"]
    )

    assert summary.success, [(s.name, s.error) for s in summary.steps]
    assert "registration.polling_stations" in step(summary, "dbt_build").not_loaded
    assert warehouse.query("select count(*) from raw_registration.wards")[0][0] > 0
