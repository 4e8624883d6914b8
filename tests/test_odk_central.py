"""The ODK Central loader against the local Central stand-in, on DuckDB and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loaders.common.warehouse import Warehouse
from loaders.odk_central import samples
from tests.odk_fixtures import central, load_odk

SUBMISSIONS = "select count(*) from raw_odk_central.submissions"
PERSONS = "select count(*) from raw_odk_central.rental_survey__person_details where not _is_tombstone"


def count(warehouse: Warehouse, sql: str) -> int:
    return int(warehouse.query(sql)[0][0])


def persons_of(warehouse: Warehouse, submission_id: str) -> list[str]:
    rows = warehouse.query(
        "select data from raw_odk_central.rental_survey__person_details "
        f"where submission_id = '{submission_id}' and not _is_tombstone"
    )
    return sorted(json.loads(data)["name"] for (data,) in rows)


def editable(record: dict) -> dict:
    """A submission as the stand-in returns it, as data for an edit."""
    return {k: v for k, v in record.items() if not k.startswith("__") and k != "meta" and "@odata" not in k}


def test_a_full_load_then_nothing_to_fetch(warehouse: Warehouse, tmp_path: Path) -> None:
    with central() as server:
        sample = samples.populate(server, n=60)
        first = load_odk(server, warehouse, tmp_path / "files")
        before = len(server.requests)
        second = load_odk(server, warehouse, tmp_path / "files")
        requests = server.requests[before:]

    live = len(sample.instance_ids) - len(sample.deleted)
    assert count(warehouse, SUBMISSIONS) == len(sample.instance_ids)
    assert count(warehouse, "select count(*) from raw_odk_central.submissions where is_deleted") == len(
        sample.deleted
    )
    assert first.parts["odk_central.rental_survey.submissions"]["processed"] == live
    expected_persons = sum(
        len(server.get_submission("rental_survey", sid, expand=True).get("person_details", []))
        for sid in server.submission_ids("rental_survey")
    )
    assert count(warehouse, PERSONS) == expected_persons
    assert second.parts["odk_central.rental_survey.submissions"]["processed"] == 0
    assert second.parts["odk_central.rental_survey.person_details"]["processed"] == 0
    downloads = [r for r in requests if "/attachments/" in r.path and r.status == 200]
    assert downloads == []
    assert len(requests) <= 6  # login, submissions, deletions, service document, repeat table


def test_an_edit_replaces_the_submission_and_its_child_rows(warehouse: Warehouse, tmp_path: Path) -> None:
    with central() as server:
        sample = samples.populate(server, n=20, edit_share=0, delete_share=0, review_share=0)
        load_odk(server, warehouse, tmp_path / "files")
        target = sample.instance_ids[3]
        record = server.get_submission("rental_survey", target, expand=True)
        data = editable(record)
        data["building_name"] = "Renamed House"
        data["person_details"] = [{"name": "Only Person", "age": 40, "sex": "female"}]
        server.edit_submission("rental_survey", target, data)
        stats = load_odk(server, warehouse, tmp_path / "files")

    assert stats.parts["odk_central.rental_survey.submissions"]["processed"] == 1
    row = warehouse.query(
        f"select data, edits, review_state from raw_odk_central.submissions where submission_id = '{target}'"
    )
    assert json.loads(row[0][0])["building_name"] == "Renamed House"
    assert row[0][1] == 1 and row[0][2] == "edited"
    assert persons_of(warehouse, target) == ["Only Person"]
    assert count(warehouse, SUBMISSIONS) == 20


def test_an_edit_that_removes_every_child_row_leaves_no_orphans(warehouse: Warehouse, tmp_path: Path) -> None:
    with central() as server:
        sample = samples.populate(server, n=5, edit_share=0, delete_share=0, review_share=0)
        load_odk(server, warehouse, tmp_path / "files")
        target = sample.instance_ids[0]
        record = server.get_submission("rental_survey", target, expand=True)
        data = editable(record)
        data.pop("person_details", None)
        server.edit_submission("rental_survey", target, data)
        load_odk(server, warehouse, tmp_path / "files")

    assert persons_of(warehouse, target) == []


def test_a_review_state_change_is_picked_up(warehouse: Warehouse, tmp_path: Path) -> None:
    with central() as server:
        sample = samples.populate(server, n=10, edit_share=0, delete_share=0, review_share=0)
        load_odk(server, warehouse, tmp_path / "files")
        server.set_review_state("rental_survey", sample.instance_ids[2], "approved")
        stats = load_odk(server, warehouse, tmp_path / "files")

    assert stats.parts["odk_central.rental_survey.submissions"]["processed"] == 1
    states = warehouse.query(
        "select review_state from raw_odk_central.submissions "
        f"where submission_id = '{sample.instance_ids[2]}'"
    )
    assert states == [("approved",)]


def test_a_deletion_marks_the_submission_deleted(warehouse: Warehouse, tmp_path: Path) -> None:
    with central() as server:
        sample = samples.populate(server, n=10, edit_share=0, delete_share=0, review_share=0)
        load_odk(server, warehouse, tmp_path / "files")
        server.delete_submission("rental_survey", sample.instance_ids[4])
        stats = load_odk(server, warehouse, tmp_path / "files")

    assert stats.parts["odk_central.rental_survey.deletions"]["processed"] == 1
    rows = warehouse.query(
        "select is_deleted, deleted_at is not null from raw_odk_central.submissions "
        f"where submission_id = '{sample.instance_ids[4]}'"
    )
    assert rows == [(True, True)]
    assert count(warehouse, SUBMISSIONS) == 10


@pytest.mark.parametrize("target", ["duckdb"])
def test_a_revoked_session_leads_to_one_new_login(warehouse: Warehouse, tmp_path: Path) -> None:
    with central() as server:
        samples.populate(server, n=30, edit_share=0, delete_share=0, review_share=0)
        stats_first = load_odk(server, warehouse, tmp_path / "files", page_size=10)
        server.revoke_sessions()
        server.add_submission("rental_survey", samples.rental_record(__import__("random").Random(1), 999)[0])
        logins_before = sum(1 for r in server.requests if r.path.endswith("/sessions") and r.method == "POST")
        load_odk(server, warehouse, tmp_path / "files", page_size=10)
        logins = sum(1 for r in server.requests if r.path.endswith("/sessions") and r.method == "POST")

    assert stats_first.read > 0
    assert logins - logins_before == 1  # a new source run logs in once; no retry storm


def test_nested_repeats_land_with_their_parent_links(warehouse: Warehouse, tmp_path: Path) -> None:
    with central() as server:
        samples.populate_nested(server, n=6)
        stats = load_odk(server, warehouse, tmp_path / "files", forms=["household_visits"])
        phones = server.table_rows("household_visits", "Submissions.household.member.phones.phone")

    assert stats.rejected == 0
    rows = warehouse.query(
        "select row_id, parent_id, parent_link, submission_id "
        "from raw_odk_central.household_visits__household_member_phones_phone where not _is_tombstone"
    )
    assert len(rows) == len(phones) > 0
    members = dict(
        warehouse.query(
            "select row_id, submission_id from raw_odk_central.household_visits__household_member "
            "where not _is_tombstone"
        )
    )
    for _row_id, parent_id, link, submission_id in rows:
        assert link == "__Submissions-household-member-id"
        assert members[parent_id] == submission_id
