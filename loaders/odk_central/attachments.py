"""Submission attachments: download from ODK Central into object storage, only when new or changed.

Central lists a submission's files with ``GET .../submissions/{instanceId}/attachments``
(``[{"name", "exists"}]``; ``exists`` is false while a file is expected but not uploaded yet) and serves
each with ``GET .../attachments/{filename}``, with an ``ETag`` and ``304 Not Modified`` for a matching
``If-None-Match``. Files go to fsspec storage (a local folder by default, ``s3://...`` or any fsspec URL)
under ``<project>/<form>/<instance>/<file name>``; the warehouse keeps the key, size, SHA-256, type and
ETag of each file, never a URL (links are built at query time: ``macros/attachment_url.sql``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fsspec.core import url_to_fs

from loaders.common import progress
from loaders.common.warehouse import ROOT

from .helpers import CentralSession

ATTACHMENT_COLUMNS = (
    "form_id",
    "submission_id",
    "name",
    "field_name",
    "exists",
    "storage_key",
    "size_bytes",
    "sha256",
    "content_type",
    "etag",
    "downloaded_at",
)
_MD5 = re.compile(r"[0-9a-fA-F]{32}")
SYNC_BATCH = 1000  # files written between two flushes to disk, at most
_UNSAFE = re.compile(r"[/\\#?%\x00-\x1f\x7f]")  # path separators, URL delimiters, control characters


class AttachmentError(RuntimeError):
    """An attachment could not be listed, downloaded or stored; the message names the submission and file."""


class AttachmentStore:
    """Object storage through fsspec: a local folder by default, ``s3://...`` or any fsspec URL.

    ``storage_options`` go to the filesystem (``key``/``secret``/``endpoint_url`` for s3fs, ...). A relative
    local path is relative to the project root, so ``data/attachments`` means the same folder from any
    working directory.
    """

    def __init__(self, url: str, **storage_options: Any) -> None:
        if not url:
            raise ValueError("attachment storage URL is empty; set sources.odk_central.attachments_storage")
        if "://" not in url and not Path(url).is_absolute():
            url = str(ROOT / url)
        try:
            self.fs, root = url_to_fs(url, **storage_options)
        except (ImportError, ValueError) as exc:
            raise AttachmentError(
                f"cannot open attachment storage {url!r}: {exc}; install the filesystem's package "
                "(s3fs for s3://, gcsfs for gs://) or fix sources.odk_central.attachments_storage"
            ) from exc
        self.url = url
        self.root = root.rstrip("/")
        self.is_local = "file" in _protocols(self.fs)
        self._lock = threading.Lock()
        self._unsynced = 0  # files written since the last flush

    def __repr__(self) -> str:
        return f"AttachmentStore({self.url!r})"

    @staticmethod
    def key(project_id: int, form_id: str, instance_id: str, name: str) -> str:
        """``<project>/<form>/<instance>/<file name>``, each part made safe: no ``/`` or ``\\``, no
        ``.``/``..`` part, no ``#``, ``?`` or ``%`` (the key is appended to a public base URL), no control
        characters; ``uuid:...`` instance IDs are kept as they are."""
        return "/".join(_safe_part(str(part)) for part in (project_id, form_id, instance_id, name))

    def path(self, key: str) -> str:
        """The filesystem path of a key (keys come from ``key``; a stray ``..`` is refused)."""
        parts = key.split("/")
        if not key or any(part in ("", ".", "..") for part in parts):
            raise ValueError(f"invalid attachment storage key {key!r}")
        return f"{self.root}/{key}" if self.root else key

    def put(self, key: str, content: bytes) -> None:
        """Store ``content`` under ``key``. Locally the file is written next to its place and renamed, so a
        reader never sees half a file; object stores replace an object in one PUT.

        Local files reach the disk in batches (``flush``, and every ``SYNC_BATCH`` files): an fsync of
        each cost 1.7 ms, most of a small attachment's time. Call ``flush`` before recording the files."""
        path = self.path(key)
        if not self.is_local:
            self.fs.pipe_file(path, content)
            return
        folder, name = os.path.split(path)
        os.makedirs(folder, exist_ok=True)
        temporary = os.path.join(folder, f".{name}.{uuid.uuid4().hex}.partial")
        # os.open rather than mkstemp: the file gets the umask's permissions (mkstemp's are 0600, which a
        # web server serving the folder under another user could not read)
        handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(content)
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        with self._lock:
            self._unsynced += 1
            due = self._unsynced >= SYNC_BATCH
        if due:
            self.flush()

    def flush(self) -> None:
        """Make every file ``put`` so far durable: ``sync()``, one call for the whole batch (contents and
        the renames' folder entries), where an fsync of each file and folder cost 0.4 ms a file."""
        with self._lock:
            written, self._unsynced = self._unsynced, 0
        if written and self.is_local:
            os.sync()

    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(self.path(key)))

    def open(self, key: str) -> bytes:
        """The stored bytes of ``key``."""
        return bytes(self.fs.cat_file(self.path(key)))

    def signed_url(self, key: str, expires_seconds: int = 3600) -> str:
        """A time-limited link to the object (s3, gcs and other filesystems that sign URLs); a ``file://``
        URL for local storage."""
        path = self.path(key)
        if self.is_local:
            return Path(path).as_uri()
        try:
            return str(self.fs.sign(path, expiration=expires_seconds))
        except NotImplementedError:
            raise AttachmentError(
                f"attachment storage {self.url!r} ({type(self.fs).__name__}) cannot sign URLs; use s3:// or "
                "gs:// storage, or build public links with the attachment_url dbt macro "
                "(var attachments_public_base_url)"
            ) from None


@dataclass
class AttachmentResult:
    """Rows for new, changed and not-yet-uploaded files (unchanged ones keep their stored row), and counts.

    ``listed`` = files Central listed; ``downloaded`` + ``not_modified`` + ``missing`` = ``listed``;
    ``bytes`` = bytes downloaded."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    listed: int = 0
    downloaded: int = 0
    not_modified: int = 0
    missing: int = 0
    bytes: int = 0


Outcome = tuple[str, "dict[str, Any] | None", bool]  # file name, its row (None: not modified), present


class AttachmentSync:
    """Downloads the new or changed files of the submissions ``add``-ed, ``workers`` requests at a time,
    while the caller goes on (reading the next page of submissions); ``finish`` waits for the rest and
    returns the rows. At most a few submissions per worker wait their turn: ``add`` takes the oldest
    results first when the queue is full, so memory stays constant however many submissions there are,
    and results are taken in the order added (the first failure stops the sync: ``AttachmentError``
    naming the submission and file; files already stored are complete, and a re-run fetches whatever
    was not recorded)."""

    def __init__(
        self, session: CentralSession, project_id: int, form_id: str, store: AttachmentStore, workers: int = 4
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.session, self.project_id, self.form_id, self.store = session, int(project_id), form_id, store
        self.form_url = (
            f"{session.api_url}/projects/{self.project_id}/forms/{quote(form_id, safe='')}/submissions"
        )
        self.result = AttachmentResult()
        self._limit = 4 * workers
        self._in_flight: deque[Future[list[Outcome]]] = deque()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="odk-attachments")

    def add(
        self,
        submission_id: str,
        instance_id: str | None = None,
        *,
        known: Mapping[str, str] | None = None,
        field_names: Mapping[str, str] | None = None,
        listing: Sequence[tuple[str, bool]] | None = None,
    ) -> None:
        """Sync one submission's files. ``instance_id`` (its current version's ``meta/instanceID``, None
        for ``submission_id``) names the storage folder; ``known`` maps file names to the ETag of the
        stored copy (asked for with ``If-None-Match``: a 304 leaves the stored row as it is);
        ``field_names`` maps file names to their fields; ``listing``, when the submission's row already
        says which files it has, gives them as ``(name, present)`` and the list is not asked for (a new
        file then costs one request, its download)."""
        try:
            if len(self._in_flight) >= self._limit:
                self._take_oldest()
            self._in_flight.append(
                self._pool.submit(
                    self._sync_one,
                    submission_id,
                    instance_id or submission_id,
                    known or {},
                    field_names or {},
                    listing,
                )
            )
        except BaseException:
            self.close()
            raise

    def finish(self) -> AttachmentResult:
        """Wait for every file, make them durable, and return the rows and counts."""
        try:
            while self._in_flight:
                self._take_oldest()
        finally:
            self.close()
        self.store.flush()  # on disk before any row says they are
        return self.result

    def close(self) -> None:
        """Stop: downloads under way finish (whole files only), queued ones are dropped."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _take_oldest(self) -> None:
        result = self.result
        for _name, row, present in self._in_flight.popleft().result():
            result.listed += 1
            if not present:
                result.missing += 1
                result.rows.append(row)
            elif row is None:
                result.not_modified += 1
            else:
                result.downloaded += 1
                result.bytes += row["size_bytes"]
                result.rows.append(row)

    def _sync_one(
        self,
        submission_id: str,
        instance_id: str,
        known: Mapping[str, str],
        fields: Mapping[str, str],
        listing: Sequence[tuple[str, bool]] | None,
    ) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for name, present in sorted(self._list_files(submission_id) if listing is None else listing):
            if present:
                row = self._download(submission_id, instance_id, name, known.get(name), fields.get(name))
            else:
                row = _row(self.form_id, submission_id, name, fields.get(name))
            outcomes.append((name, row, present))
        return outcomes

    def _list_files(self, submission_id: str) -> list[tuple[str, bool]]:
        url = f"{self.form_url}/{quote(submission_id, safe='')}/attachments"
        where = f"the attachments of submission {submission_id!r} of form {self.form_id!r}"
        try:
            listing = self.session.get_json(url)
        except Exception as exc:
            raise AttachmentError(f"listing {where} failed: {exc}") from exc
        if not isinstance(listing, list) or not all(
            isinstance(entry, dict) and isinstance(entry.get("name"), str) for entry in listing
        ):
            raise AttachmentError(
                f"listing {where}: expected a list of {{name, exists}}, got {str(listing)[:200]!r}"
            )
        return [(entry["name"], bool(entry.get("exists"))) for entry in listing]

    def _download(
        self, submission_id: str, instance_id: str, name: str, etag: str | None, field_name: str | None
    ) -> dict[str, Any] | None:
        url = f"{self.form_url}/{quote(submission_id, safe='')}/attachments/{quote(name, safe='')}"
        headers = {"If-None-Match": _quoted(etag)} if etag else None
        try:
            for attempt in range(2):
                response = self.session.download(url, headers=headers, expected=(200, 304))
                if response.status == 304:
                    if not etag:
                        raise AttachmentError("HTTP 304 to a request without If-None-Match")
                    return None
                content = response.data
                history = response.retries.history if response.retries else ()
                redirected = any(step.redirect_location for step in history)  # an object store's ETag
                damage = None if redirected else _damage(content, response.headers.get("ETag"))
                if damage is None:
                    break
                if attempt == 1:
                    raise AttachmentError(damage)
            key = AttachmentStore.key(self.project_id, self.form_id, instance_id, name)
            self.store.put(key, content)
            progress.count("downloads")
        except Exception as exc:
            raise AttachmentError(
                f"attachment {name!r} of submission {submission_id!r} of form {self.form_id!r} failed: {exc}"
            ) from exc
        return _row(
            self.form_id,
            submission_id,
            name,
            field_name,
            key=key,
            size_bytes=len(content),
            sha256=hashlib.sha256(content).hexdigest(),
            content_type=_media_type(response.headers.get("Content-Type")),
            etag=_unquoted(response.headers.get("ETag")),
            downloaded_at=datetime.now(UTC),
        )


def _row(
    form_id: str,
    submission_id: str,
    name: str,
    field_name: str | None,
    *,
    key: str | None = None,
    size_bytes: int | None = None,
    sha256: str | None = None,
    content_type: str | None = None,
    etag: str | None = None,
    downloaded_at: datetime | None = None,
) -> dict[str, Any]:
    return {
        "form_id": form_id,
        "submission_id": submission_id,
        "name": name,
        "field_name": field_name,
        "exists": key is not None,
        "storage_key": key,
        "size_bytes": size_bytes,
        "sha256": sha256,
        "content_type": content_type,
        "etag": etag,
        "downloaded_at": downloaded_at,
    }


def _safe_part(part: str) -> str:
    part = _UNSAFE.sub("_", part)
    if part in ("", ".", ".."):
        return f"_{part}"
    return part


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def _damage(content: bytes, etag: str | None) -> str | None:
    """What is wrong with a downloaded file, or None. Central's ETag for an attachment is the MD5 of its
    bytes (``lib/util/blob.js``): a body cut short or altered on the way no longer matches it. Tags of
    another shape are not checked, nor files Central redirected to its object store (S3's ETag is not
    the MD5 of an encrypted or multipart object)."""
    tag = _unquoted(etag)
    if tag is None or not _MD5.fullmatch(tag):
        return None
    actual = hashlib.md5(content, usedforsecurity=False).hexdigest()
    if actual == tag.lower():
        return None
    return f"the {len(content)} bytes received do not match the file's ETag (MD5 {tag}, got {actual}), twice"


def _quoted(etag: str) -> str:
    """An entity tag as If-None-Match wants it: ``"<tag>"`` (tags stored with their quotes pass as given)."""
    return etag if etag.startswith(('"', "W/")) else f'"{etag}"'


def _unquoted(etag: str | None) -> str | None:
    if not etag:
        return None
    return etag.strip().removeprefix("W/").strip('"') or None


def _media_type(content_type: str | None) -> str | None:
    """``image/png`` from ``image/png; charset=...``."""
    if not content_type:
        return None
    return content_type.split(";", 1)[0].strip().lower() or None
