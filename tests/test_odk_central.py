"""The ODK Central loader against the local Central stand-in, on DuckDB and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote

import pytest

from loaders.common.warehouse import Warehouse
from testing.fake_central import Field, FormSpec, Group, Repeat
from testing.samples import odk_central as samples
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


def test_the_cursor_imported_from_last_sync_txt_is_where_loading_resumes(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from flows.cli import app
    from loaders.common.state import get_resource_state

    with central() as server:
        sample = samples.populate(server, n=40, edit_share=0, delete_share=0, review_share=0)
        middle = server.get_submission("rental_survey", sample.instance_ids[19])["__system"]["submissionDate"]
        (tmp_path / "last_sync.txt").write_text(middle + "\n")

        result = CliRunner().invoke(
            app,
            [
                "state",
                "set-cursor",
                "odk_central",
                "--form",
                "rental_survey",
                "--from-file",
                str(tmp_path / "last_sync.txt"),
                "--target",
                warehouse.target,
            ],
        )
        assert result.exit_code == 0, result.output
        state = get_resource_state(
            warehouse,
            pipeline_name="odk_central",
            dataset_name="raw_odk_central",
            source_name="odk_central",
            resource_name="rental_survey",
        )
        stats = load_odk(server, warehouse, tmp_path / "files", overlap_seconds=0)

    assert state["cursor"].startswith(middle[:19])
    assert stats.parts["odk_central.rental_survey.submissions"]["processed"] == 20
    assert count(warehouse, SUBMISSIONS) == 20


def test_a_bad_cursor_file_is_a_clear_error(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    (tmp_path / "last_sync.txt").write_text("yesterday-ish\n")

    result = CliRunner().invoke(
        app,
        ["state", "set-cursor", "odk_central", "--form", "f", "--from-file", str(tmp_path / "last_sync.txt")],
    )

    assert result.exit_code == 2
    assert "not an ISO 8601 timestamp" in result.output


def test_5xx_and_timeouts_are_retried_with_backoff(warehouse: Warehouse, tmp_path: Path) -> None:
    with central(fault_sleep_seconds=2.0) as server:
        sample = samples.populate(server, n=30, edit_share=0, delete_share=0, review_share=0)
        server.faults.extend([None, 500, 503, "timeout"])  # after the login: a page fails three ways
        stats = load_odk(server, warehouse, tmp_path / "files", request_timeout=0.5, page_size=10)
        statuses = [r.fault for r in server.requests[:5]]

    assert statuses[1:4] == [500, 503, "timeout"]
    assert stats.http_errors == 3
    assert count(warehouse, SUBMISSIONS) == len(sample.instance_ids)


@pytest.mark.parametrize("fault", ["truncated", "invalid_json"])
def test_a_broken_page_fails_cleanly_and_keeps_the_cursor(
    warehouse: Warehouse, tmp_path: Path, fault: str
) -> None:
    from loaders.common.state import get_resource_state

    with central() as server:
        sample = samples.populate(server, n=30, edit_share=0, delete_share=0, review_share=0)
        load_odk(server, warehouse, tmp_path / "files", page_size=10)
        state_before = get_resource_state(
            warehouse,
            pipeline_name="odk_central",
            dataset_name="raw_odk_central",
            source_name="odk_central",
            resource_name="rental_survey",
        )
        for ident in sample.instance_ids[:25]:
            server.set_review_state("rental_survey", ident, "approved")
        server.faults.extend([None, None, fault])  # login, page 1, then page 2 breaks
        with pytest.raises(Exception, match="invalid JSON"):
            load_odk(server, warehouse, tmp_path / "files", page_size=10)
        state_after = get_resource_state(
            warehouse,
            pipeline_name="odk_central",
            dataset_name="raw_odk_central",
            source_name="odk_central",
            resource_name="rental_survey",
        )
        approved_after_failure = count(
            warehouse, "select count(*) from raw_odk_central.submissions where review_state = 'approved'"
        )
        load_odk(server, warehouse, tmp_path / "files", page_size=10)

    assert state_after["cursor"] == state_before["cursor"]
    assert approved_after_failure == 0  # page 1 was read but nothing of the failed run is visible
    assert (
        count(warehouse, "select count(*) from raw_odk_central.submissions where review_state = 'approved'")
        == 25
    )


def test_paging_follows_next_links_while_submissions_arrive() -> None:
    import random

    from loaders.odk_central.helpers import CentralSession
    from tests.odk_fixtures import EMAIL, PASSWORD

    with central() as server:
        sample = samples.populate(server, n=45, edit_share=0, delete_share=0, review_share=0)
        session = CentralSession(server.base_url, EMAIL, PASSWORD)
        url = session.odata_url(server.project_id, "rental_survey") + "/Submissions"
        seen: list[str] = []
        rng = random.Random(5)
        for page in session.paginate(url, {"$top": 10}):
            seen += [row["__id"] for row in page]
            for i in range(3):  # new submissions arrive while we page
                server.add_submission("rental_survey", samples.rental_record(rng, 1000 + len(seen) + i)[0])

    assert len(seen) == len(set(seen))
    assert set(sample.instance_ids) <= set(seen)


def test_unchanged_attachments_are_not_downloaded_again(warehouse: Warehouse, tmp_path: Path) -> None:
    with central() as server:
        sample = samples.populate(server, n=12, edit_share=0, delete_share=0, review_share=0)
        first = load_odk(server, warehouse, tmp_path / "files")
        for ident in sample.instance_ids[:4]:  # changes that keep the photo
            server.set_review_state("rental_survey", ident, "hasIssues")
        before = len(server.requests)
        load_odk(server, warehouse, tmp_path / "files")
        requests = server.requests[before:]

    bodies = [r for r in requests if "/attachments/" in r.path and r.status == 200]
    not_modified = [r for r in requests if "/attachments/" in r.path and r.status == 304]
    assert bodies == []
    assert len(not_modified) == 4
    stored = warehouse.query(
        "select storage_key, size_bytes, sha256 from raw_odk_central.attachments "
        "where storage_key is not null"
    )
    assert len(stored) == len(first.files_loaded) > 0
    for key, size, _sha in stored:
        assert (tmp_path / "files" / key).stat().st_size == size
    assert not any("http" in str(value) for row in stored for value in row)


def test_an_expired_session_leads_to_one_new_login_not_a_failure() -> None:
    from loaders.odk_central.helpers import CentralSession
    from tests.odk_fixtures import EMAIL, PASSWORD

    with central(start_time=samples.DEMO_CLOCK, token_ttl_seconds=3600) as server:
        samples.populate(server, n=5, edit_share=0, delete_share=0, review_share=0)
        session = CentralSession(server.base_url, EMAIL, PASSWORD)
        url = session.odata_url(server.project_id, "rental_survey") + "/Submissions"
        first = session.get_json(url)
        server.advance(7200)  # Central's clock passes the token's expiry
        second = session.get_json(url)
        server.revoke_sessions()  # and an administrator revokes every session
        third = session.get_json(url)
        statuses = [(r.method, r.status) for r in server.requests]

    assert first == second == third
    assert session.stats.logins == 3
    assert statuses.count(("GET", 401)) == 2
    assert statuses.count(("POST", 200)) == 3


@pytest.mark.parametrize("target", ["duckdb"])
def test_a_run_logs_out_at_the_end(warehouse: Warehouse, tmp_path: Path) -> None:
    with central() as server:
        samples.populate(server, n=12, edit_share=0, delete_share=0, review_share=0)
        load_odk(server, warehouse, tmp_path / "files", page_size=5)
        requests = [(r.method, r.path) for r in server.requests]

    assert requests[-1] == ("DELETE", "/v1/sessions/current")
    assert requests.count(("DELETE", "/v1/sessions/current")) == 1


def test_eight_requests_that_meet_a_revoked_session_lead_to_one_login() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from loaders.odk_central.helpers import CentralSession
    from tests.odk_fixtures import EMAIL, PASSWORD

    with central() as server:
        samples.populate(server, n=5, edit_share=0, delete_share=0, review_share=0)
        session = CentralSession(server.base_url, EMAIL, PASSWORD, pool_size=8)
        url = session.odata_url(server.project_id, "rental_survey") + "/Submissions"
        session.get_json(url)
        server.revoke_sessions()
        with ThreadPoolExecutor(8) as pool:
            pages = list(pool.map(lambda _: session.get_json(url), range(8)))
        logins = [r for r in server.requests if r.method == "POST" and r.path == "/v1/sessions"]

    assert all(page == pages[0] for page in pages)
    assert len(logins) == 2  # the first, and one after the revocation


@pytest.mark.parametrize("target", ["duckdb"])
def test_submissions_that_arrive_while_a_run_pages_are_loaded_by_the_next_run(
    warehouse: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Central pages newest first: two submissions that arrive after a run read its first page are not
    on its pages, and an older submission edited 370 s after the first arrival is. The next run must
    still read the arrivals (the cursor is when the run began reading, by Central's clock, not the
    newest timestamp it saw)."""
    import random

    from loaders.odk_central.helpers import CentralSession

    rng = random.Random(7)
    with central(start_time=samples.DEMO_CLOCK) as server:
        samples.populate(server, n=30, edit_share=0, delete_share=0, review_share=0)
        load_odk(server, warehouse, tmp_path / "files", page_size=5)
        server.advance(3600)
        ids = server.submission_ids("rental_survey")  # newest first
        for sid in ids[:12]:  # twelve recent edits: the next run reads three pages of five
            server.edit_submission("rental_survey", sid, samples.rental_record(rng, 1)[0])
        oldest = ids[-1]
        arrivals: list[str] = []
        real_get_json = CentralSession.get_json

        def arrivals_after_the_first_page(self, url, params=None):
            page = real_get_json(self, url, params)
            if url.endswith("/Submissions") and params and not arrivals:
                arrivals.append(server.add_submission("rental_survey", samples.rental_record(rng, 2)[0]))
                server.advance(37)
                arrivals.append(server.add_submission("rental_survey", samples.rental_record(rng, 3)[0]))
                server.advance(333)
                server.edit_submission("rental_survey", oldest, samples.rental_record(rng, 4)[0])
            return page

        monkeypatch.setattr(CentralSession, "get_json", arrivals_after_the_first_page)
        during = load_odk(server, warehouse, tmp_path / "files", page_size=5)
        monkeypatch.undo()
        server.advance(60)
        after = load_odk(server, warehouse, tmp_path / "files", page_size=5)

    loaded = {sid for (sid,) in warehouse.query("select submission_id from raw_odk_central.submissions")}
    assert len(arrivals) == 2 and during.read >= 12
    assert set(arrivals) <= loaded  # neither arrival lost
    assert after.read >= 2


@pytest.mark.parametrize("target", ["duckdb"])
def test_nested_repeats_of_an_unchanged_submission_in_the_overlap_are_not_rejected(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    from datetime import timedelta

    forms = [{"xml_form_id": "household_visits"}]
    with central(start_time=samples.DEMO_CLOCK) as server:
        # two minutes before the first run: inside the overlap the next run reads again
        samples.populate_nested(server, n=1, start=samples.DEMO_CLOCK - timedelta(seconds=120))
        first = load_odk(server, warehouse, tmp_path / "files", forms=forms)
        server.advance(30)
        second = load_odk(server, warehouse, tmp_path / "files", forms=forms)

    assert first.rejected == 0 and first.read > 0
    assert second.rejected == 0
    tables = {
        name
        for (name,) in warehouse.query(
            "select table_name from information_schema.tables where table_schema = 'raw_odk_central'"
        )
    }
    assert "rejected_rows" not in tables


@pytest.mark.parametrize("target", ["duckdb"])
def test_a_submission_made_after_centrals_clock_was_set_back_is_loaded(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    """Central's clock goes back an hour between two runs: what it stamps then is older than the
    cursor, and the next run must read it all the same."""
    import random

    rng = random.Random(11)
    with central(start_time=samples.DEMO_CLOCK) as server:
        samples.populate(server, n=5, edit_share=0, delete_share=0, review_share=0)
        load_odk(server, warehouse, tmp_path / "files")
        server.advance(-3600)
        late = server.add_submission("rental_survey", samples.rental_record(rng, 1)[0])
        server.advance(5)
        second = load_odk(server, warehouse, tmp_path / "files")

    loaded = {sid for (sid,) in warehouse.query("select submission_id from raw_odk_central.submissions")}
    assert late in loaded
    assert any("as if it was set back" in note for note in second.notes)


def test_a_file_the_row_names_costs_one_request_and_only_unclear_submissions_are_listed(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    form = FormSpec(
        "inspection",
        fields=(
            Field("front", "binary"),
            Field("back", "binary"),
            Group("meta", (Field("audit", "binary"),)),
            Repeat("rooms", (Field("room_photo", "binary"),)),
        ),
    )
    with central(forms=[form]) as server:
        named = server.add_submission(
            "inspection",
            {"front": "a_front.jpg", "back": "a_back.jpg", "meta": {"audit": "audit.csv"}},
            {"a_front.jpg": b"front", "a_back.jpg": b"back", "audit.csv": b"event,time"},
        )
        half = server.add_submission(
            "inspection", {"front": "b_front.jpg", "back": "b_back.jpg"}, {"b_front.jpg": b"front"}
        )
        pending = server.add_submission("inspection", {"front": "c_front.jpg"})
        in_repeat = server.add_submission(
            "inspection", {"rooms": [{"room_photo": "d_room.jpg"}]}, {"d_room.jpg": b"room"}
        )
        server.add_submission("inspection", {})
        before = len(server.requests)
        stats = load_odk(server, warehouse, tmp_path / "files", forms=["inspection"])
        requests = server.requests[before:]

    listed = sorted(unquote(r.path.split("/")[-2]) for r in requests if r.path.endswith("/attachments"))
    downloads = [r for r in requests if "/attachments/" in r.path]
    assert listed == sorted([half, in_repeat])  # some present, or named where the row does not show
    assert len(downloads) == len(stats.files_loaded) == 5
    assert [r.path for r in requests if r.path.endswith("/fields")] == [
        "/v1/projects/1/forms/inspection/fields"
    ]
    rows = warehouse.query(
        "select submission_id, name, field_name, exists from raw_odk_central.attachments order by 1, 2"
    )
    assert rows == sorted(
        [
            (named, "a_back.jpg", "back", True),
            (named, "a_front.jpg", "front", True),
            (named, "audit.csv", "audit", True),
            (half, "b_back.jpg", "back", False),
            (half, "b_front.jpg", "front", True),
            (pending, "c_front.jpg", "front", False),
            (in_repeat, "d_room.jpg", None, True),
        ]
    )
