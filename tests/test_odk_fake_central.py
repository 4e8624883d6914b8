"""The ODK Central stand-in behaves as Central documents it (docs/api.yaml in getodk/central-backend), and its
responses have the shapes of real Central responses (the samples in /work/shared/data/odk_central)."""

from __future__ import annotations

import base64
import json
import random
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from testing.fake_central import FakeCentral, Field, FormSpec, NotFoundError, Repeat
from testing.samples.odk_central import (
    DEMO_CLOCK,
    NESTED_FORM_ID,
    RENTAL_FORM_ID,
    SampleRun,
    nested_form,
    populate,
    populate_nested,
    rental_form,
    rental_record,
)

SAMPLES = Path("/work/shared/data/odk_central")
EMAIL = "data.manager@example.org"
PASSWORD = "correct horse battery staple"
EDMX = "{http://docs.oasis-open.org/odata/ns/edm}"


def sample(name: str) -> Any:
    path = SAMPLES / name
    if not path.exists():
        pytest.skip(f"shared sample {path} is not available")
    return json.loads(path.read_text())


@pytest.fixture
def central() -> Iterator[FakeCentral]:
    server = FakeCentral(
        users={EMAIL: PASSWORD, "viewer@example.org": "another password"},
        forms=[rental_form(), nested_form()],
        start_time=DEMO_CLOCK,
    )
    with server:
        yield server


@pytest.fixture
def rental(central: FakeCentral) -> SampleRun:
    return populate(central, n=60)


@pytest.fixture
def nested(central: FakeCentral) -> SampleRun:
    return populate_nested(central, n=10)


def login(central: FakeCentral, email: str = EMAIL, password: str = PASSWORD) -> requests.Session:
    session = requests.Session()
    response = session.post(
        f"{central.api_url}/sessions", json={"email": email, "password": password}, timeout=5
    )
    response.raise_for_status()
    session.headers["Authorization"] = f"Bearer {response.json()['token']}"
    return session


@pytest.fixture
def http(central: FakeCentral) -> requests.Session:
    return login(central)


def get(http: requests.Session, url: str, **params: Any) -> dict[str, Any]:
    response = http.get(url, params=params, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def follow(http: requests.Session, url: str, between_pages: Any = None) -> tuple[list[dict[str, Any]], int]:
    """Every row of a data document, following @odata.nextLink exactly as given; and the request count."""
    rows: list[dict[str, Any]] = []
    pages = 0
    next_url: str | None = url
    while next_url:
        document = get(http, next_url)
        pages += 1
        rows.extend(document["value"])
        next_url = document.get("@odata.nextLink")
        if between_pages is not None:
            between_pages()
    return rows, pages


def error(response: requests.Response) -> tuple[int, float]:
    body = response.json()
    assert set(body) >= {"code", "message"}
    return response.status_code, body["code"]


def decode_token(next_link: str) -> dict[str, Any]:
    token = parse_qs(urlsplit(next_link).query)["$skiptoken"][0]
    assert token.startswith("01")
    return json.loads(base64.b64decode(token[2:]))


# ---- sessions ----------------------------------------------------------------------------------------


def test_login_gives_a_24_hour_bearer_token(central: FakeCentral) -> None:
    response = requests.post(
        f"{central.api_url}/sessions", json={"email": EMAIL, "password": PASSWORD}, timeout=5
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"createdAt", "expiresAt", "token"}
    assert body["createdAt"] == "2026-02-01T09:00:00.000Z"
    assert body["expiresAt"] == "2026-02-02T09:00:00.000Z"
    headers = {"Authorization": f"Bearer {body['token']}"}
    assert requests.get(central.odata_url(RENTAL_FORM_ID), headers=headers, timeout=5).status_code == 200


def test_bad_credentials_are_refused_with_centrals_codes(central: FakeCentral) -> None:
    url = central.odata_url(RENTAL_FORM_ID)
    wrong = requests.post(f"{central.api_url}/sessions", json={"email": EMAIL, "password": "nope"}, timeout=5)
    assert error(wrong) == (401, 401.2)
    missing = requests.post(f"{central.api_url}/sessions", json={"email": EMAIL}, timeout=5)
    assert error(missing) == (400, 400.3)
    assert error(requests.get(url, headers={"Authorization": "Bearer not-a-token"}, timeout=5)) == (
        401,
        401.2,
    )
    assert error(requests.get(url, timeout=5)) == (403, 403.1)  # anonymous: no rights


def test_expired_sessions_get_401(central: FakeCentral) -> None:
    http = login(central)
    url = central.odata_url(RENTAL_FORM_ID)
    central.advance(24 * 3600 - 1)
    assert http.get(url, timeout=5).status_code == 200
    central.advance(2)
    assert error(http.get(url, timeout=5)) == (401, 401.2)
    assert login(central).get(url, timeout=5).status_code == 200  # a new login works again


def test_logout_and_revocation(central: FakeCentral) -> None:
    url = central.odata_url(RENTAL_FORM_ID)
    first, second, third = login(central), login(central), login(central)
    assert first.delete(f"{central.api_url}/sessions/current", timeout=5).json() == {"success": True}
    assert error(first.get(url, timeout=5)) == (401, 401.2)
    assert second.get(url, timeout=5).status_code == 200  # only the current session ended
    token = third.headers["Authorization"].split()[1]
    assert second.delete(f"{central.api_url}/sessions/{token}", timeout=5).status_code == 200
    assert error(third.get(url, timeout=5)) == (401, 401.2)
    assert central.revoke_sessions() == 1
    assert error(second.get(url, timeout=5)) == (401, 401.2)


# ---- service document, metadata, shapes --------------------------------------------------------------


def test_service_document_lists_every_repeat_table(central: FakeCentral, http: requests.Session) -> None:
    document = get(http, central.odata_url(NESTED_FORM_ID))
    reference = sample("service_document_withrepeat.json")
    assert set(document) == set(reference)
    assert document["@odata.context"] == f"{central.odata_url(NESTED_FORM_ID)}/$metadata"
    assert all(set(entry) == set(reference["value"][0]) for entry in document["value"])
    assert [entry["name"] for entry in document["value"]] == [
        "Submissions",
        "Submissions.household.member",
        "Submissions.household.member.phones.phone",
        "Submissions.visit",
        "Submissions.visit.observation",
    ]
    assert [e["url"] for e in document["value"]] == [e["name"] for e in document["value"]]
    rental = get(http, central.odata_url(RENTAL_FORM_ID))
    assert [e["name"] for e in rental["value"]] == ["Submissions", "Submissions.person_details"]


def test_repeat_names_are_sanitised_as_central_does(central: FakeCentral, http: requests.Session) -> None:
    central.add_form(
        FormSpec("odata_sanitize_repeat_name", "1", (Repeat("q1.8-test", (Field("one", "int"),)),))
    )
    central.add_submission("odata_sanitize_repeat_name", {"q1.8-test": [{"one": 1}]})
    document = get(http, central.odata_url("odata_sanitize_repeat_name"))
    reference = sample("service_document_odata_sanitize_repeat_name.json")
    assert [e["name"] for e in document["value"]] == [e["name"] for e in reference["value"]]
    rows = get(http, f"{central.odata_url('odata_sanitize_repeat_name')}/Submissions.q1_8_test")["value"]
    assert set(rows[0]) == set(sample("repeat_feed_q1_8_test_sanitized.json")["value"][0])


def test_metadata_describes_tables_and_parent_links(central: FakeCentral, http: requests.Session) -> None:
    response = http.get(f"{central.odata_url(NESTED_FORM_ID)}/$metadata", timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/xml")
    root = ET.fromstring(response.content)  # noqa: S314 - our own server's document
    entities = {e.get("Name"): e for e in root.iter(f"{EDMX}EntityType")}
    assert list(entities) == [
        "Submissions",
        "Submissions.household.member",
        "Submissions.household.member.phones.phone",
        "Submissions.visit",
        "Submissions.visit.observation",
    ]

    def properties(name: str) -> list[str]:
        return [p.get("Name") for p in entities[name].iter(f"{EDMX}Property")]

    assert properties("Submissions")[:2] == ["__id", "__system"]
    assert properties("Submissions.household.member")[:2] == ["__id", "__Submissions-id"]
    assert properties("Submissions.household.member.phones.phone")[1] == "__Submissions-household-member-id"
    assert properties("Submissions.visit.observation")[1] == "__Submissions-visit-id"
    sets = [s.get("Name") for s in root.iter(f"{EDMX}EntitySet")]
    assert sets == list(entities)
    # the system metadata type lists the same fields as the reference document
    reference = ET.parse(SAMPLES / "metadata_withrepeat_rendered_from_template.xml").getroot()  # noqa: S314

    def system_fields(document: ET.Element) -> list[str | None]:
        metadata = next(c for c in document.iter(f"{EDMX}ComplexType") if c.get("Name") == "metadata")
        return [p.get("Name") for p in metadata]

    assert system_fields(root) == system_fields(reference)


def test_submission_rows_have_centrals_shape(
    central: FakeCentral, http: requests.Session, rental: SampleRun
) -> None:
    document = get(http, f"{central.odata_url(RENTAL_FORM_ID)}/Submissions", **{"$top": 1, "$count": "true"})
    reference = sample("submissions_withrepeat_top1_count.json")
    assert set(document) == set(reference)
    row = document["value"][0]
    ref_row = reference["value"][0]
    assert {"__id", "__system", "meta"} <= set(row)
    # the reference bodies come from Central's tests, which strip submissionDate; real rows carry it
    assert set(row["__system"]) == set(ref_row["__system"]) | {"submissionDate"}
    assert row["meta"] == {"instanceID": row["__id"]}
    assert (
        row["person_details@odata.navigationLink"]
        == f"Submissions('{row['__id'].replace(':', '%3A')}')/person_details"
    )
    link = document["@odata.nextLink"]
    assert link.startswith(
        f"{central.odata_url(RENTAL_FORM_ID)}/Submissions?%24top=1&%24count=true&%24skiptoken=01"
    )
    assert decode_token(link) == {"instanceId": row["__id"]}
    assert document["@odata.context"] == f"{central.odata_url(RENTAL_FORM_ID)}/$metadata#Submissions"

    feed = get(http, f"{central.odata_url(RENTAL_FORM_ID)}/Submissions.person_details", **{"$top": 2})
    ref_feed = sample("repeat_feed_withrepeat_Submissions.children.child.json")
    assert set(feed) == set(ref_feed) | {"@odata.nextLink"}
    assert set(feed["value"][0]) == {
        "__id",
        "__Submissions-id",
        "name",
        "age",
        "sex",
        "relationship",
        "occupation",
    }
    assert {k for k in ref_feed["value"][0] if k.startswith("__")} == {"__id", "__Submissions-id"}
    assert decode_token(feed["@odata.nextLink"]) == {"repeatId": feed["value"][-1]["__id"]}

    listing = http.get(f"{central.api_url}/projects/1/forms/{RENTAL_FORM_ID}/submissions", timeout=5).json()
    assert set(sample("pyodk_rest_submissions_list_range_form.json")[0]) <= set(listing[0])
    assert len(listing) == len(rental.instance_ids) - len(rental.deleted)


def test_expand_inlines_repeats_like_central(
    central: FakeCentral, http: requests.Session, nested: SampleRun
) -> None:
    first = nested.instance_ids[0]
    document = get(http, f"{central.odata_url(NESTED_FORM_ID)}/Submissions('{first}')", **{"$expand": "*"})
    assert document["@odata.context"].endswith("/$metadata#Submissions")
    row = document["value"][0]
    reference = sample("expand_all_doubleRepeat_row_unit.json")[0]
    assert set(row["__system"]) == set(reference["__system"])
    members = row["household"]["member"]
    assert (
        row["household"]["member@odata.navigationLink"]
        == f"Submissions('{first.replace(':', '%3A')}')/household/member"
    )
    assert set(members[0]) == {"__id", "name", "age", "phones"}  # no parent column inside $expand
    phone_link = members[0]["phones"]["phone@odata.navigationLink"]
    assert phone_link.endswith(f"/household/member('{members[0]['__id']}')/phones/phone")
    assert all("__id" in phone for phone in members[1]["phones"]["phone"])
    ref_child = reference["children"]["child"]
    assert ref_child[0]["toys"] == {}  # an empty nested repeat leaves an empty group, as here:
    central.add_submission(NESTED_FORM_ID, {"household": {"member": [{"name": "Solo"}]}})
    latest = get(http, f"{central.odata_url(NESTED_FORM_ID)}/Submissions", **{"$top": 1, "$expand": "*"})
    assert latest["value"][0]["household"]["member"][0]["phones"] == {}
    assert "visit" not in latest["value"][0] and "visit@odata.navigationLink" not in latest["value"][0]


# ---- paging ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("table", ["Submissions", "Submissions.person_details"])
def test_next_links_cover_every_row_once_while_submissions_arrive(
    central: FakeCentral, http: requests.Session, rental: SampleRun, table: str
) -> None:
    expected = [row["__id"] for row in central.table_rows(RENTAL_FORM_ID, table)]
    rng_index = iter(range(1000, 2000))

    def new_submission() -> None:
        central.advance(1)
        data, files = rental_record(random.Random(next(rng_index)), 9999)
        central.add_submission(RENTAL_FORM_ID, data, files)

    rows, pages = follow(
        http, f"{central.odata_url(RENTAL_FORM_ID)}/{table}?$top=7", between_pages=new_submission
    )
    ids = [row["__id"] for row in rows]
    assert ids == expected  # every row that existed at the start, once, in Central's order
    assert pages == -(-len(expected) // 7)
    grown = [row["__id"] for row in central.table_rows(RENTAL_FORM_ID, table)]
    assert len(grown) > len(expected)  # the newcomers are there for the next run


def test_count_and_skip(central: FakeCentral, http: requests.Session, rental: SampleRun) -> None:
    url = f"{central.odata_url(RENTAL_FORM_ID)}/Submissions"
    live = len(rental.instance_ids) - len(rental.deleted)
    document = get(http, url, **{"$top": 0, "$count": "true"})
    assert document == {"@odata.context": document["@odata.context"], "@odata.count": live, "value": []}
    everything = [r["__id"] for r in central.table_rows(RENTAL_FORM_ID)]
    page = get(http, url, **{"$top": 5, "$skip": 10, "$count": "true"})
    assert page["@odata.count"] == live
    assert [r["__id"] for r in page["value"]] == everything[10:15]
    assert "%24skip=" not in page["@odata.nextLink"]
    persons = get(http, f"{url}.person_details", **{"$top": 0, "$count": "true"})
    assert persons["@odata.count"] == len(central.table_rows(RENTAL_FORM_ID, "Submissions.person_details"))
    assert decode_token(persons["@odata.nextLink"]) == {"repeatId": None}  # as Central answers $top=0


def test_bad_skiptokens_are_refused(central: FakeCentral, http: requests.Session, rental: SampleRun) -> None:
    url = f"{central.odata_url(RENTAL_FORM_ID)}/Submissions.person_details"
    assert error(http.get(url, params={"$skiptoken": "xyz"}, timeout=5)) == (400, 400.35)
    unknown = "01" + base64.b64encode(b'{"repeatId":"0000"}').decode()
    assert error(http.get(url, params={"$skiptoken": unknown}, timeout=5)) == (400, 400.34)
    page = get(
        http, f"{url[: -len('.person_details')]}", **{"$top": 2, "$orderby": "__system/submissionDate asc"}
    )
    assert error(http.get(page["@odata.nextLink"], timeout=5)) == (501, 501.1)  # Central refuses this mix


# ---- $filter, $orderby, single rows ------------------------------------------------------------------


def test_filter_on_timestamps_with_null_handling(
    central: FakeCentral, http: requests.Session, rental: SampleRun
) -> None:
    url = f"{central.odata_url(RENTAL_FORM_ID)}/Submissions"
    rows = central.table_rows(RENTAL_FORM_ID)
    cut = rows[len(rows) // 2]["__system"]["submissionDate"]
    updated = [r for r in rows if r["__system"]["updatedAt"] is not None]
    assert updated and len(updated) < len(rows)
    stamp = sorted(r["__system"]["updatedAt"] for r in updated)[len(updated) // 2]

    def ids(expression: str) -> list[str]:
        return [r["__id"] for r in get(http, url, **{"$filter": expression})["value"]]

    assert ids("__system/updatedAt eq null") == [
        r["__id"] for r in rows if r["__system"]["updatedAt"] is None
    ]
    assert ids("__system/updatedAt ne null") == [r["__id"] for r in updated]
    after = [r["__id"] for r in updated if r["__system"]["updatedAt"] > stamp]
    assert ids(f"__system/updatedAt gt {stamp}") == after
    # SQL logic: a comparison with NULL is unknown, and so is its negation: never-updated rows stay out
    assert ids(f"not (__system/updatedAt gt {stamp})") == [
        r["__id"] for r in updated if r["__id"] not in after
    ]
    assert ids(f"__system/updatedAt gt {stamp} or __system/updatedAt eq null") == [
        r["__id"] for r in rows if r["__system"]["updatedAt"] is None or r["__id"] in after
    ]
    assert ids(f"__system/submissionDate le {cut}") == [
        r["__id"] for r in rows if r["__system"]["submissionDate"] <= cut
    ]
    day = cut[:10]
    assert ids(f"(__system/submissionDate ge {day} and __system/submissionDate lt {day}T23:59:59.999Z)") == [
        r["__id"] for r in rows if r["__system"]["submissionDate"][:10] == day
    ]
    assert ids(f"$root/Submissions/__system/submissionDate gt {cut}") == ids(
        f"__system/submissionDate gt {cut}"
    )
    assert ids("__system/reviewState eq 'approved'") == [
        r["__id"] for r in rows if r["__system"]["reviewState"] == "approved"
    ]
    assert ids(f"year(__system/submissionDate) eq {day[:4]}") == [r["__id"] for r in rows]
    assert error(http.get(url, params={"$filter": "__system/updatedAt gt"}, timeout=5)) == (400, 400.18)
    assert error(http.get(url, params={"$filter": "building_name eq 'x'"}, timeout=5)) == (501, 501.5)


def test_root_filter_on_a_repeat_table(
    central: FakeCentral, http: requests.Session, rental: SampleRun
) -> None:
    url = f"{central.odata_url(RENTAL_FORM_ID)}/Submissions.person_details"
    parents = {r["__id"]: r for r in central.table_rows(RENTAL_FORM_ID)}
    stamp = sorted(r["__system"]["updatedAt"] for r in parents.values() if r["__system"]["updatedAt"])[0]
    rows, _ = follow(http, f"{url}?$top=10&$filter=$root/Submissions/__system/updatedAt ge {stamp}")
    wanted = {
        i for i, r in parents.items() if r["__system"]["updatedAt"] and r["__system"]["updatedAt"] >= stamp
    }
    assert rows and {r["__Submissions-id"] for r in rows} == wanted
    every = central.table_rows(RENTAL_FORM_ID, "Submissions.person_details")
    assert [r["__id"] for r in rows] == [r["__id"] for r in every if r["__Submissions-id"] in wanted]
    plain = http.get(url, params={"$filter": f"__system/updatedAt ge {stamp}"}, timeout=5)
    assert error(plain) == (501, 501.5)  # repeat tables only know the $root/Submissions/ form


def test_orderby_and_single_submission(
    central: FakeCentral, http: requests.Session, rental: SampleRun
) -> None:
    url = f"{central.odata_url(RENTAL_FORM_ID)}/Submissions"
    newest_first = [r["__id"] for r in central.table_rows(RENTAL_FORM_ID)]
    oldest_first = get(http, url, **{"$orderby": "__system/submissionDate asc"})["value"]
    assert [r["__id"] for r in oldest_first] == newest_first[::-1]
    by_id = get(http, url, **{"$orderby": "__id desc", "$top": 3})["value"]
    assert [r["__id"] for r in by_id] == sorted(newest_first, reverse=True)[:3]
    one = get(http, f"{url}('{newest_first[4]}')")
    assert [r["__id"] for r in one["value"]] == [newest_first[4]]
    assert set(one) == set(sample("submission_single_doubleRepeat_double.json"))
    assert error(http.get(f"{url}('uuid:missing')", timeout=5)) == (404, 404.1)
    picked = get(http, url, **{"$select": "__id,__system/updatedAt,building_name", "$top": 1})["value"][0]
    assert set(picked) == {"__id", "__system", "building_name"} and set(picked["__system"]) == {"updatedAt"}


# ---- deletes, edits, reviews -------------------------------------------------------------------------


def test_deleted_submissions_are_hidden_unless_the_filter_names_deleted_at(
    central: FakeCentral, http: requests.Session, rental: SampleRun
) -> None:
    svc = central.odata_url(RENTAL_FORM_ID)
    rest = f"{central.api_url}/projects/1/forms/{RENTAL_FORM_ID}/submissions"
    target = central.table_rows(RENTAL_FORM_ID)[3]["__id"]
    assert http.delete(f"{rest}/{target}", timeout=5).json() == {"success": True}
    visible = [r["__id"] for r in get(http, f"{svc}/Submissions")["value"]]
    assert target not in visible
    persons = get(http, f"{svc}/Submissions.person_details")["value"]
    assert target not in {p["__Submissions-id"] for p in persons}
    deleted = get(http, f"{svc}/Submissions", **{"$filter": "__system/deletedAt ne null"})["value"]
    assert {r["__id"] for r in deleted} == {target, *rental.deleted}
    assert all(
        r["__system"]["deletedAt"] == "2026-02-01T09:00:00.000Z" for r in deleted if r["__id"] == target
    )
    assert len(get(http, f"{svc}/Submissions", **{"$filter": "__system/deletedAt eq null"})["value"]) == len(
        visible
    )
    assert error(http.get(f"{svc}/Submissions('{target}')", timeout=5)) == (404, 404.1)
    assert target not in [s["instanceId"] for s in http.get(rest, timeout=5).json()]
    trash = http.get(rest, params={"deleted": "true"}, timeout=5).json()
    assert {s["instanceId"] for s in trash} == {target, *rental.deleted}
    assert all(s["deletedAt"] for s in trash)

    assert http.post(f"{rest}/{target}/restore", timeout=5).json() == {"success": True}
    assert target in [r["__id"] for r in get(http, f"{svc}/Submissions")["value"]]
    assert error(http.post(f"{rest}/{target}/restore", timeout=5)) == (404, 404.1)

    central.delete_submission(RENTAL_FORM_ID, target)
    central.advance(29 * 86400)
    assert central.purge_deleted() == len(rental.deleted)  # the samples were deleted in January
    central.advance(2 * 86400)
    assert central.purge_deleted() == 1
    http = login(central)  # the first session expired a month ago
    assert http.get(rest, params={"deleted": "true"}, timeout=5).json() == []
    with pytest.raises(NotFoundError):
        central.restore_submission(RENTAL_FORM_ID, target)


def test_an_edit_keeps_the_id_and_bumps_updated_at_and_edits(
    central: FakeCentral, http: requests.Session, rental: SampleRun
) -> None:
    svc = central.odata_url(RENTAL_FORM_ID)
    target = next(i for i in rental.instance_ids if i not in rental.edited and i not in rental.deleted)
    before = get(http, f"{svc}/Submissions('{target}')")["value"][0]
    persons_before = get(http, f"{svc}/Submissions('{target}')/person_details")["value"]
    assert before["__system"]["edits"] == 0
    cursor = max(r["__system"]["updatedAt"] or "" for r in central.table_rows(RENTAL_FORM_ID))

    central.advance(60)
    data, _ = rental_record(random.Random(5), 5)
    people = [{k: p[k] for k in ("name", "age", "sex", "relationship", "occupation")} for p in persons_before]
    data.update(building_name="Renamed Court", building_image=before["building_image"], person_details=people)
    version = central.edit_submission(RENTAL_FORM_ID, target, data)

    after = get(http, f"{svc}/Submissions('{target}')")["value"][0]
    assert after["__id"] == target and after["meta"]["instanceID"] == version != target
    assert after["building_name"] == "Renamed Court"
    assert after["__system"]["edits"] == 1
    assert after["__system"]["reviewState"] == "edited"
    assert after["__system"]["updatedAt"] == "2026-02-01T09:01:00.000Z"
    assert after["__system"]["submissionDate"] == before["__system"]["submissionDate"]
    assert after["__system"]["attachmentsPresent"] == 1  # the photo carried over
    changed = get(http, f"{svc}/Submissions", **{"$filter": f"__system/updatedAt gt {cursor}"})["value"]
    assert [r["__id"] for r in changed] == [target]
    # repeat rows keep their ids while their position in the submission is unchanged
    assert [p["__id"] for p in get(http, f"{svc}/Submissions('{target}')/person_details")["value"]] == [
        p["__id"] for p in persons_before
    ]
    rest = http.get(
        f"{central.api_url}/projects/1/forms/{RENTAL_FORM_ID}/submissions/{target}", timeout=5
    ).json()
    assert rest["instanceId"] == target and rest["currentVersion"]["instanceId"] == version


def test_a_review_bumps_updated_at(central: FakeCentral, http: requests.Session, rental: SampleRun) -> None:
    svc = central.odata_url(RENTAL_FORM_ID)
    rest = f"{central.api_url}/projects/1/forms/{RENTAL_FORM_ID}/submissions"
    target = next(i for i in rental.instance_ids if i not in rental.reviewed and i not in rental.edited)
    central.advance(90)
    response = http.patch(f"{rest}/{target}", json={"reviewState": "approved"}, timeout=5)
    assert response.status_code == 200 and response.json()["reviewState"] == "approved"
    row = get(http, f"{svc}/Submissions('{target}')")["value"][0]
    assert row["__system"]["reviewState"] == "approved"
    assert row["__system"]["updatedAt"] == "2026-02-01T09:01:30.000Z"
    assert row["__system"]["edits"] == 0
    central.advance(30)
    central.set_review_state(RENTAL_FORM_ID, target, "hasIssues")
    row = get(http, f"{svc}/Submissions('{target}')")["value"][0]
    assert (row["__system"]["reviewState"], row["__system"]["updatedAt"]) == (
        "hasIssues",
        "2026-02-01T09:02:00.000Z",
    )
    assert error(http.patch(f"{rest}/{target}", json={"reviewState": "great"}, timeout=5)) == (400, 400.8)


def test_attachments_have_etags_and_answer_304(
    central: FakeCentral, http: requests.Session, rental: SampleRun
) -> None:
    target = rental.instance_ids[0]
    base = f"{central.api_url}/projects/1/forms/{RENTAL_FORM_ID}/submissions/{target}/attachments"
    listing = http.get(base, timeout=5).json()
    assert listing == [{"name": "building_000000.png", "exists": True}]
    first = http.get(f"{base}/building_000000.png", timeout=5)
    assert first.status_code == 200
    assert first.headers["Content-Type"] == "image/png"
    assert first.content.startswith(b"\x89PNG\r\n\x1a\n")
    etag = first.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    again = http.get(f"{base}/building_000000.png", headers={"If-None-Match": etag}, timeout=5)
    assert again.status_code == 304 and again.content == b""
    stale = http.get(f"{base}/building_000000.png", headers={"If-None-Match": '"stale"'}, timeout=5)
    assert stale.status_code == 200 and stale.content == first.content
    assert error(http.get(f"{base}/other.png", timeout=5)) == (404, 404.1)
    # a referenced file that never arrived is expected but not present
    data, _ = rental_record(random.Random(1), 77)
    missing = central.add_submission(RENTAL_FORM_ID, data)
    row = central.get_submission(RENTAL_FORM_ID, missing)
    assert (row["__system"]["attachmentsExpected"], row["__system"]["attachmentsPresent"]) == (1, 0)
    other = f"{central.api_url}/projects/1/forms/{RENTAL_FORM_ID}/submissions/{missing}/attachments"
    assert http.get(other, timeout=5).json() == [{"name": "building_000077.png", "exists": False}]


# ---- repeats -----------------------------------------------------------------------------------------


def test_nested_repeats_link_to_their_parents(
    central: FakeCentral, http: requests.Session, nested: SampleRun
) -> None:
    svc = central.odata_url(NESTED_FORM_ID)

    def table(name: str) -> list[dict[str, Any]]:
        rows, _ = follow(http, f"{svc}/{name}?$top=4")
        return rows

    submissions = {r["__id"] for r in table("Submissions")}
    members = table("Submissions.household.member")
    phones = table("Submissions.household.member.phones.phone")
    visits = table("Submissions.visit")
    observations = table("Submissions.visit.observation")
    assert members and phones and visits and observations
    reference = sample("repeat_feed_doubleRepeat_children_child.json")["value"][0]
    assert {k for k in members[0] if k.startswith("__")} == {k for k in reference if k.startswith("__")}
    assert {m["__Submissions-id"] for m in members} <= submissions
    assert {p["__Submissions-household-member-id"] for p in phones} <= {m["__id"] for m in members}
    assert {v["__Submissions-id"] for v in visits} <= submissions
    assert {o["__Submissions-visit-id"] for o in observations} <= {v["__id"] for v in visits}
    every_id = [r["__id"] for rows in (members, phones, visits, observations) for r in rows]
    assert len(every_id) == len(set(every_id))

    # a member's navigation link leads to exactly that member's phones
    member = next(m for m in members if m["phones"])
    link = member["phones"]["phone@odata.navigationLink"]
    assert link.startswith("Submissions('uuid%3A") and link.endswith(
        f"/household/member('{member['__id']}')/phones/phone"
    )
    linked = get(http, f"{svc}/{link}")
    assert linked["@odata.context"].endswith("#Submissions.household.member.phones.phone")
    assert [p["__id"] for p in linked["value"]] == [
        p["__id"] for p in phones if p["__Submissions-household-member-id"] == member["__id"]
    ]


def test_repeat_ids_are_stable_and_unique(
    central: FakeCentral, http: requests.Session, rental: SampleRun
) -> None:
    url = f"{central.odata_url(RENTAL_FORM_ID)}/Submissions.person_details"
    first = [r["__id"] for r in get(http, url)["value"]]
    central.advance(3600)
    central.add_submission(RENTAL_FORM_ID, rental_record(random.Random(2), 500)[0])
    second = [r["__id"] for r in get(http, url)["value"]]
    assert len(first) == len(set(first))
    assert second[-len(first) :] == first  # the new submission's rows come first; the rest are unchanged


# ---- faults and the request log ----------------------------------------------------------------------


def test_faults_are_served_in_order_and_logged(
    central: FakeCentral, http: requests.Session, rental: SampleRun
) -> None:
    url = f"{central.odata_url(RENTAL_FORM_ID)}/Submissions?$top=5"
    central.requests.clear()
    central.faults.extend([500, 429, "truncated", "invalid_json", None])
    assert http.get(url, timeout=5).status_code == 500
    limited = http.get(url, timeout=5)
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "1"
    truncated = http.get(url, timeout=5)
    assert truncated.status_code == 200
    with pytest.raises(ValueError):
        truncated.json()
    garbage = http.get(url, timeout=5)
    with pytest.raises(ValueError):
        garbage.json()
    assert len(http.get(url, timeout=5).json()["value"]) == 5
    assert [(r.status, r.fault) for r in central.requests] == [
        (500, 500),
        (429, 429),
        (200, "truncated"),
        (200, "invalid_json"),
        (200, None),
    ]
    assert central.request_count == 5
    assert central.requests[0].path.endswith("/Submissions") and central.requests[0].query == {"$top": "5"}


def test_a_stalled_response_times_the_client_out() -> None:
    with FakeCentral(users={EMAIL: PASSWORD}, forms=[rental_form()], fault_sleep_seconds=0.6) as central:
        http = login(central)
        central.faults.append("timeout")
        with pytest.raises(requests.Timeout):
            http.get(central.odata_url(RENTAL_FORM_ID), timeout=0.2)
        assert central.requests[-1].fault == "timeout"


def test_python_api_rejects_what_central_would(central: FakeCentral) -> None:
    with pytest.raises(ValueError, match="unknown field"):
        central.add_submission(RENTAL_FORM_ID, {"no_such_field": 1})
    with pytest.raises(ValueError, match="not a valid int"):
        central.add_submission(RENTAL_FORM_ID, {"number_of_units": "many"})
    ident = central.add_submission(RENTAL_FORM_ID, {"building_name": "A"}, instance_id="uuid:fixed")
    with pytest.raises(ValueError, match="already exists"):
        central.add_submission(RENTAL_FORM_ID, {"building_name": "B"}, instance_id=ident)
    with pytest.raises(NotFoundError):
        central.edit_submission(RENTAL_FORM_ID, "uuid:missing", {})
    with pytest.raises(NotFoundError):
        central.add_submission("no_form", {})
    central.add_form(
        {
            "xml_form_id": "dict_form",
            "version": "2",
            "fields": [{"name": "g", "type": "group", "children": [{"name": "r", "type": "repeat"}]}],
        }
    )
    assert central.tables("dict_form") == ["Submissions", "Submissions.g.r"]
    assert central.now() == DEMO_CLOCK  # frozen: nothing above moved it
