"""A source with some of its tables builds, on both targets, and so does any set of ODK Central forms: the
models and tests of a declared table that no load has created yet are skipped and reported ("no data
yet"), the others build and are checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.pipeline import RunSummary, run
from loaders.common.warehouse import Warehouse
from loaders.odk_central import repeat_table_name
from testing.fake_central import FakeCentral
from testing.samples import communities as community_samples
from testing.samples import odk_central as odk_samples
from testing.samples import registration as registration_samples
from tests.odk_fixtures import EMAIL, PASSWORD, central
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


def _odk_env(monkeypatch: pytest.MonkeyPatch, server: FakeCentral, tmp_path: Path, forms: list[dict]) -> None:
    monkeypatch.setenv("SOURCES__ODK_CENTRAL__BASE_URL", server.base_url)
    monkeypatch.setenv("SOURCES__ODK_CENTRAL__USERNAME", EMAIL)
    monkeypatch.setenv("SOURCES__ODK_CENTRAL__PASSWORD", PASSWORD)
    monkeypatch.setenv("SOURCES__ODK_CENTRAL__ATTACHMENTS_STORAGE", str(tmp_path / "attachments"))
    monkeypatch.setenv("SOURCES__ODK_CENTRAL__FORMS", json.dumps(forms))


def _repeat_rows(warehouse: Warehouse) -> dict[str, int]:
    return dict(
        warehouse.query(
            "select repeat_table, count(*) from staging.stg_odk_central__repeat_rows group by repeat_table"
        )
    )


def test_a_second_form_with_nested_repeats_lands_in_generic_staging(
    warehouse: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    forms = [
        {"xml_form_id": odk_samples.RENTAL_FORM_ID, "attachments": ["building_image"]},
        {"xml_form_id": odk_samples.NESTED_FORM_ID},
    ]
    with central() as server:
        odk_samples.populate(server, n=6)
        odk_samples.populate_nested(server, n=4)
        _odk_env(monkeypatch, server, tmp_path, forms)

        summary = run(sources=["odk_central"], target=warehouse.target)

        expected = {
            repeat_table_name(form["xml_form_id"], table): len(server.table_rows(form["xml_form_id"], table))
            for form in forms
            for table in server.tables(form["xml_form_id"])[1:]  # every repeat, nested ones too
        }
        live_rentals = len(server.table_rows(odk_samples.RENTAL_FORM_ID))

    assert summary.success, [(s.name, s.error) for s in summary.steps]
    assert step(summary, "dbt_build").not_loaded == []
    assert _repeat_rows(warehouse) == expected
    assert all(expected.values())
    nested = warehouse.query(
        "select count(*) from staging.stg_odk_central__repeat_rows phone "
        "join staging.stg_odk_central__repeat_rows member on phone.parent_id = member.row_id "
        "where phone.repeat_table like '%phones_phone' and member.repeat_table like '%household_member' "
        "and phone.submission_id = member.submission_id"
    )
    assert nested == [(expected["household_visits__household_member_phones_phone"],)]
    assert warehouse.query("select count(*) from marts.fct_rental_submissions_unified") == [(live_rentals,)]
    assert step(summary, "expectations").status == "success"


def test_any_form_alone_builds_and_the_missing_tables_are_reported(
    warehouse: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A form without the rental survey and without attachments: its repeats land in generic staging; the
    attachments table no load has created is reported, and the models that need it wait."""
    with central() as server:
        odk_samples.populate_nested(server, n=3)
        _odk_env(monkeypatch, server, tmp_path, [{"xml_form_id": odk_samples.NESTED_FORM_ID}])

        summary = run(sources=["odk_central"], target=warehouse.target)
        repeats = {
            repeat_table_name(odk_samples.NESTED_FORM_ID, t)
            for t in server.tables(odk_samples.NESTED_FORM_ID)[1:]
        }

    assert summary.success, [(s.name, s.error) for s in summary.steps]
    built = step(summary, "dbt_build")
    assert "odk_central.attachments" in built.not_loaded
    assert "no data yet in" in built.detail and "odk_central.attachments" in built.detail
    assert set(_repeat_rows(warehouse)) == repeats and len(repeats) == 4
    submissions = warehouse.query("select count(*) from staging.stg_odk_central__submissions")
    assert submissions == [(3,)]


def test_communities_without_rejections_build(
    warehouse: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    community_samples.generate(tmp_path / "communities", regions=("10",))
    monkeypatch.setenv("SOURCES__COMMUNITIES__FILES_PATH", str(tmp_path / "communities"))

    summary = run(sources=["communities"], target=warehouse.target)

    assert summary.success, [(s.name, s.error) for s in summary.steps]
    rejected = step(summary, "communities").rejected
    assert ("communities.rejected_rows" in step(summary, "dbt_build").not_loaded) == (rejected == 0)
    assert warehouse.query("select count(*) from marts.agg_municipality_coverage")[0][0] > 0
