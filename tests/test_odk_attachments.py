"""ODK Central attachments: downloaded once into fsspec storage, again only when Central's ETag changes."""

from __future__ import annotations

import hashlib
import os
import random
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from loaders.common.warehouse import ROOT
from loaders.odk_central.attachments import (
    ATTACHMENT_COLUMNS,
    AttachmentError,
    AttachmentResult,
    AttachmentStore,
    AttachmentSync,
)
from loaders.odk_central.helpers import CentralSession
from testing.fake_central import FakeCentral
from testing.samples.odk_central import (
    RENTAL_FORM_ID,
    SampleRun,
    png_bytes,
    populate,
    rental_form,
    rental_record,
)

EMAIL = "data.manager@example.org"
PASSWORD = "correct horse battery staple"
PROJECT = 1


@pytest.fixture
def central() -> Iterator[FakeCentral]:
    # The server keeps real time: CentralSession compares the token's expiresAt with the local clock, so
    # a server frozen at DEMO_CLOCK (in the past) would make it log in again before every request, and the
    # faults queued below would hit those logins. The sample data carries its own fixed timestamps.
    with FakeCentral(users={EMAIL: PASSWORD}, forms=[rental_form()]) as server:
        yield server


@pytest.fixture
def rental(central: FakeCentral) -> SampleRun:
    return populate(central, n=12)


@pytest.fixture
def session(central: FakeCentral) -> Iterator[CentralSession]:
    client = CentralSession(central.base_url, EMAIL, PASSWORD, backoff_factor=0.01, max_retry_delay=0.1)
    client.login()
    yield client
    client.close()


@pytest.fixture
def store(tmp_path: Path) -> AttachmentStore:
    return AttachmentStore(str(tmp_path / "attachments"))


def live_submissions(central: FakeCentral) -> list[tuple[str, str]]:
    """(``__id``, current ``meta/instanceID``) of every live submission, as the loader passes them."""
    return [
        (sid, central.get_submission(RENTAL_FORM_ID, sid)["meta"]["instanceID"])
        for sid in central.submission_ids(RENTAL_FORM_ID)
    ]


def image_fields(central: FakeCentral) -> dict[str, str]:
    """File name -> form field, from the submissions' ``building_image`` values."""
    names = (
        central.get_submission(RENTAL_FORM_ID, sid)["building_image"]
        for sid in central.submission_ids(RENTAL_FORM_ID)
    )
    return {name: "building_image" for name in names if name}


def fetch(central: FakeCentral, submission_id: str, name: str) -> requests.Response:
    """A file straight from the server (what the store must hold)."""
    form_url = f"{central.api_url}/projects/{PROJECT}/forms/{RENTAL_FORM_ID}"
    url = f"{form_url}/submissions/{submission_id}/attachments/{name}"
    response = requests.get(url, headers={"Authorization": f"Bearer {central.issue_token()}"}, timeout=5)
    response.raise_for_status()
    return response


def sync(
    session: CentralSession,
    central: FakeCentral,
    store: AttachmentStore,
    known: dict[tuple[str, str], str] | None = None,
    submissions: list[tuple[str, str]] | None = None,
    workers: int = 4,
    field_names: dict[str, str] | None = None,
    listings: dict[str, list[tuple[str, bool]]] | None = None,
) -> AttachmentResult:
    """The files of ``submissions`` (``(__id, instanceID)``; all live ones by default) through one
    ``AttachmentSync``, as the loader adds them: ``known`` maps (submission, file) to stored ETags."""
    files = AttachmentSync(session, PROJECT, RENTAL_FORM_ID, store, workers)
    for submission_id, instance_id in live_submissions(central) if submissions is None else submissions:
        files.add(
            submission_id,
            instance_id,
            known={name: etag for (sid, name), etag in (known or {}).items() if sid == submission_id},
            field_names=field_names,
            listing=(listings or {}).get(submission_id),
        )
    return files.finish()


def known_from(*results: AttachmentResult) -> dict[tuple[str, str], str]:
    """What the warehouse holds after loading these results' rows (later rows replace earlier ones)."""
    return {
        (r["submission_id"], r["name"]): r["etag"] for result in results for r in result.rows if r["etag"]
    }


def attachment_requests(central: FakeCentral, since: int) -> list[Any]:
    """File downloads (not listings) the server answered since request number ``since``."""
    return [r for r in central.requests[since:] if "/attachments/" in r.path]


def add_rental(central: FakeCentral, index: int, files: dict[str, bytes] | None = None, **data: Any) -> str:
    record, images = rental_record(random.Random(index), index)
    record.update(data)
    return central.add_submission(
        RENTAL_FORM_ID, record, images if files is None else files, instance_id=f"uuid:{uuid.uuid4()}"
    )


def test_first_sync_downloads_every_file(
    central: FakeCentral, rental: SampleRun, session: CentralSession, store: AttachmentStore
) -> None:
    submissions = live_submissions(central)
    assert any(sid != instance for sid, instance in submissions), "the sample should have edited submissions"
    result = sync(session, central, store, field_names=image_fields(central))

    assert result.listed == result.downloaded == len(submissions)
    assert (result.not_modified, result.missing) == (0, 0)
    assert result.bytes == sum(row["size_bytes"] for row in result.rows)
    assert [(r["submission_id"]) for r in result.rows] == [sid for sid, _ in submissions]
    instances = dict(submissions)
    for row in result.rows:
        assert tuple(row) == ATTACHMENT_COLUMNS
        served = fetch(central, row["submission_id"], row["name"])
        assert row["storage_key"] == (
            f"{PROJECT}/{RENTAL_FORM_ID}/{instances[row['submission_id']]}/{row['name']}"
        )
        assert store.open(row["storage_key"]) == served.content
        assert row["sha256"] == hashlib.sha256(served.content).hexdigest()
        assert row["size_bytes"] == len(served.content)
        assert row["content_type"] == "image/png"
        assert row["etag"] == served.headers["ETag"].strip('"')
        assert row["field_name"] == "building_image"
        assert row["exists"] is True
        assert row["downloaded_at"].utcoffset().total_seconds() == 0
        assert "url" not in " ".join(str(value) for value in row.values()).lower()
    stored = [p for p in Path(store.root).rglob("*") if p.is_file()]
    assert len(stored) == len(submissions)
    assert not [p for p in stored if p.name.endswith(".partial")]


def test_second_sync_sends_etags_and_downloads_nothing(
    central: FakeCentral, rental: SampleRun, session: CentralSession, store: AttachmentStore
) -> None:
    first = sync(session, central, store)
    since = len(central.requests)
    second = sync(session, central, store, known_from(first), workers=3)

    assert second.rows == []
    assert (second.downloaded, second.missing, second.bytes) == (0, 0, 0)
    assert second.not_modified == second.listed == first.downloaded
    downloads = attachment_requests(central, since)
    assert len(downloads) == first.downloaded
    assert {r.status for r in downloads} == {304}


def test_changed_image_is_the_only_download(
    central: FakeCentral, rental: SampleRun, session: CentralSession, store: AttachmentStore
) -> None:
    first = sync(session, central, store)
    target = central.submission_ids(RENTAL_FORM_ID)[3]
    name = central.get_submission(RENTAL_FORM_ID, target)["building_image"]
    old_key = next(r["storage_key"] for r in first.rows if r["submission_id"] == target)
    record, _ = rental_record(random.Random(0), 0)
    record["building_image"] = name
    new_image = png_bytes(24, 16, (10, 20, 30), seed=99)
    new_instance = central.edit_submission(
        RENTAL_FORM_ID, target, record, {name: new_image}, new_instance_id=f"uuid:{uuid.uuid4()}"
    )

    since = len(central.requests)
    second = sync(session, central, store, known_from(first))

    assert second.downloaded == 1 and second.not_modified == first.downloaded - 1
    [row] = second.rows
    assert (row["submission_id"], row["name"]) == (target, name)
    assert row["storage_key"] == f"{PROJECT}/{RENTAL_FORM_ID}/{new_instance}/{name}"
    assert store.open(row["storage_key"]) == new_image
    assert row["sha256"] == hashlib.sha256(new_image).hexdigest()
    assert row["etag"] != known_from(first)[(target, name)]
    assert store.exists(old_key), "the previous version's file stays where its row pointed"
    statuses = [r.status for r in attachment_requests(central, since)]
    assert sorted(statuses) == [200] + [304] * (first.downloaded - 1)


def test_expected_but_missing_file_gives_a_row_without_key(
    central: FakeCentral, session: CentralSession, store: AttachmentStore
) -> None:
    complete = add_rental(central, 1)
    pending = add_rental(central, 2, files={}, building_image="not_uploaded_yet.jpg")
    submissions = [(complete, complete), (pending, pending)]

    result = sync(session, central, store, submissions=submissions, field_names={"not_uploaded_yet.jpg": "x"})

    assert (result.listed, result.downloaded, result.missing) == (2, 1, 1)
    missing = result.rows[1]
    assert missing == {
        "form_id": RENTAL_FORM_ID,
        "submission_id": pending,
        "name": "not_uploaded_yet.jpg",
        "field_name": "x",
        "exists": False,
        "storage_key": None,
        "size_bytes": None,
        "sha256": None,
        "content_type": None,
        "etag": None,
        "downloaded_at": None,
    }
    assert not list(Path(store.root).glob(f"{PROJECT}/{RENTAL_FORM_ID}/{pending}*"))


def test_server_error_is_retried(
    central: FakeCentral, session: CentralSession, store: AttachmentStore
) -> None:
    sid = add_rental(central, 5)
    since = len(central.requests)
    central.faults.extend([None, 500])  # the listing succeeds, the first download attempt gets a 500

    result = sync(session, central, store, submissions=[(sid, sid)], workers=1)

    assert result.downloaded == 1
    assert store.open(result.rows[0]["storage_key"]) == fetch(central, sid, result.rows[0]["name"]).content
    assert [r.status for r in attachment_requests(central, since)][:2] == [500, 200]


@pytest.mark.parametrize("fault", ["truncated", "timeout"])
def test_a_truncated_or_stalled_download_is_retried(
    central: FakeCentral, store: AttachmentStore, fault: str
) -> None:
    sid = add_rental(central, 7)
    name = central.get_submission(RENTAL_FORM_ID, sid)["building_image"]
    central.fault_sleep_seconds = 2.0
    client = CentralSession(central.base_url, EMAIL, PASSWORD, backoff_factor=0.01, request_timeout=0.5)
    client.login()
    since = len(central.requests)
    # The file's first answer: half its bytes (its ETag, the MD5 of them all, tells), or none in time.
    central.faults.append(fault)

    result = sync(client, central, store, submissions=[(sid, sid)], listings={sid: [(name, True)]}, workers=1)
    client.close()

    assert result.downloaded == 1
    assert store.open(result.rows[0]["storage_key"]) == fetch(central, sid, name).content
    assert [r.fault for r in attachment_requests(central, since)][:2] == [fault, None]
    assert client.stats.http_errors == (1 if fault == "timeout" else 0)  # a cut body came with a 200


def test_a_file_central_redirects_to_its_object_store_is_downloaded(
    central: FakeCentral, session: CentralSession, store: AttachmentStore
) -> None:
    # Central with S3 answers 307 to a signed URL; S3's ETag is not the MD5 (encrypted objects), so
    # the MD5 check does not apply there.
    central.redirect_attachments = True
    sid = add_rental(central, 9)
    name = central.get_submission(RENTAL_FORM_ID, sid)["building_image"]
    since = len(central.requests)

    result = sync(session, central, store, submissions=[(sid, sid)], listings={sid: [(name, True)]})
    statuses = [r.status for r in central.requests[since:]]

    assert result.downloaded == 1
    assert statuses == [307, 200]  # Central's redirect, then the object store's answer
    central.redirect_attachments = False
    assert store.open(result.rows[0]["storage_key"]) == fetch(central, sid, name).content


def test_a_file_cut_short_twice_fails_the_run_and_stores_nothing(
    central: FakeCentral, session: CentralSession, store: AttachmentStore
) -> None:
    sid = add_rental(central, 8)
    name = central.get_submission(RENTAL_FORM_ID, sid)["building_image"]
    central.faults.extend(["truncated", "truncated"])

    with pytest.raises(AttachmentError, match="do not match the file's ETag") as failure:
        sync(session, central, store, submissions=[(sid, sid)], listings={sid: [(name, True)]}, workers=1)

    assert name in str(failure.value)
    assert not Path(store.root).exists() or not [p for p in Path(store.root).rglob("*") if p.is_file()]


def test_failure_names_submission_and_file_and_leaves_no_partial_file(
    central: FakeCentral, session: CentralSession, store: AttachmentStore
) -> None:
    sid = add_rental(central, 6)
    name = central.get_submission(RENTAL_FORM_ID, sid)["building_image"]
    central.faults.extend([None, 403])  # not retried: the run fails

    with pytest.raises(AttachmentError) as failure:
        sync(session, central, store, submissions=[(sid, sid)], workers=1)

    assert sid in str(failure.value) and name in str(failure.value) and "403" in str(failure.value)
    assert not Path(store.root).exists() or not [p for p in Path(store.root).rglob("*") if p.is_file()]


def test_listing_failure_names_the_submission(
    central: FakeCentral, session: CentralSession, store: AttachmentStore
) -> None:
    with pytest.raises(AttachmentError, match="uuid:no-such-submission"):
        sync(session, central, store, submissions=[("uuid:no-such-submission", None)])


def test_keys_are_safe(tmp_path: Path) -> None:
    assert (
        AttachmentStore.key(1, "rental_survey", "uuid:5b1e", "photo.jpg")
        == "1/rental_survey/uuid:5b1e/photo.jpg"
    )
    assert AttachmentStore.key(1, "form", "uuid:5b1e", "../x.jpg") == "1/form/uuid:5b1e/.._x.jpg"
    assert AttachmentStore.key(1, "..", ".", "") == "1/_../_./_"
    assert AttachmentStore.key(2, "a/b", "c\\d", "e#f?g%h\n.png") == "2/a_b/c_d/e_f_g_h_.png"

    store = AttachmentStore(str(tmp_path / "store"))
    key = AttachmentStore.key(1, "form", "uuid:5b1e", "../../../escape.jpg")
    store.put(key, b"data")
    [written] = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written.is_relative_to(tmp_path / "store")
    assert written.read_bytes() == b"data"
    with pytest.raises(ValueError, match="invalid attachment storage key"):
        store.put("1/form/../../escape.jpg", b"data")


def test_local_store_paths_and_signed_url(tmp_path: Path) -> None:
    assert AttachmentStore("data/attachments").root == str(ROOT / "data" / "attachments")
    store = AttachmentStore(f"file://{tmp_path}/files")
    key = AttachmentStore.key(1, "rental_survey", "uuid:abc", "photo one.png")
    assert not store.exists(key)
    store.put(key, b"first")
    store.put(key, b"second")  # replaced whole
    assert store.exists(key) and store.open(key) == b"second"

    umask = os.umask(0o022)
    os.umask(umask)
    assert Path(store.path(key)).stat().st_mode & 0o777 == 0o666 & ~umask  # readable like any other file

    url = store.signed_url(key)
    assert url.startswith("file:///")
    with urllib.request.urlopen(url) as response:  # noqa: S310 - a file URL we just made
        assert response.read() == b"second"


def test_interrupted_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = AttachmentStore(str(tmp_path))
    key = AttachmentStore.key(1, "form", "uuid:abc", "photo.png")
    store.put(key, b"complete")

    def crash(source: str, target: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        store.put(key, b"new content that never lands")
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["photo.png"]
    assert store.open(key) == b"complete"


def test_memory_filesystem_store(central: FakeCentral, session: CentralSession) -> None:
    sid = add_rental(central, 7)
    store = AttachmentStore(f"memory://odk-test-{uuid.uuid4().hex}/attachments")

    result = sync(session, central, store, submissions=[(sid, sid)])

    [row] = result.rows
    assert store.exists(row["storage_key"])
    assert store.open(row["storage_key"]) == fetch(central, sid, row["name"]).content
    with pytest.raises(AttachmentError, match="cannot sign URLs"):
        store.signed_url(row["storage_key"])


def test_unknown_storage_protocol_says_what_to_do() -> None:
    with pytest.raises(AttachmentError, match="attachments_storage"):
        AttachmentStore("nosuchfs://bucket/x")


def test_elt_attachments_url_prints_a_url_for_a_stored_key(tmp_path) -> None:
    from typer.testing import CliRunner

    from flows.cli import app
    from loaders.odk_central.attachments import AttachmentStore

    store = AttachmentStore(str(tmp_path / "files"))
    key = AttachmentStore.key(1, "rental_survey", "uuid:abc", "photo.png")
    store.put(key, b"png-bytes")

    found = CliRunner().invoke(app, ["attachments", "url", key, "--storage", str(tmp_path / "files")])
    missing = CliRunner().invoke(
        app, ["attachments", "url", "1/x/y/z.png", "--storage", str(tmp_path / "files")]
    )

    assert found.exit_code == 0, found.output
    assert found.output.strip().startswith("file://") and found.output.strip().endswith("photo.png")
    assert missing.exit_code == 1 and "no attachment stored" in missing.output
