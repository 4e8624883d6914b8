"""ODK Central: submissions (new, edited, reviewed, deleted), repeat groups and attachments, incrementally.

One dlt resource per configured form; see ``README.md`` for the tables, keys and cursors.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import dlt

from loaders.common.pipeline import RunOptions
from loaders.common.quarantine import LoadStats, quarantined, rejection
from loaders.common.warehouse import ConfigurationError, Warehouse
from loaders.odk_central.helpers import CentralError, CentralSession, odata_time, parse_time
from loaders.odk_central.settings import (
    ATTACHMENT_COLUMNS,
    ATTACHMENTS_TABLE,
    DATASET,
    DEFAULT_ATTACHMENTS_STORAGE,
    DEFAULT_OVERLAP_SECONDS,
    DEFAULT_PAGE_SIZE,
    REPEAT_COLUMNS,
    SUBMISSION_COLUMNS,
    SUBMISSIONS_TABLE,
)

MERGE = {"disposition": "merge", "strategy": "delete-insert"}
SUBMISSION_HINTS = dlt.mark.make_hints(
    table_name=SUBMISSIONS_TABLE,
    write_disposition=MERGE,
    primary_key=["form_id", "submission_id"],
    columns=SUBMISSION_COLUMNS,
)
ATTACHMENT_HINTS = dlt.mark.make_hints(
    table_name=ATTACHMENTS_TABLE,
    write_disposition=MERGE,
    primary_key=["form_id", "submission_id", "name"],
    columns=ATTACHMENT_COLUMNS,
)


@dataclass(frozen=True)
class FormConfig:
    """One form to load, from ``[[sources.odk_central.forms]]``."""

    xml_form_id: str
    attachments: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, raw: dict[str, Any] | str) -> FormConfig:
        if isinstance(raw, str):
            return cls(xml_form_id=raw)
        if "xml_form_id" not in raw:
            raise ConfigurationError(
                "every [[sources.odk_central.forms]] entry needs an xml_form_id (see .dlt/config.toml)"
            )
        return cls(xml_form_id=str(raw["xml_form_id"]), attachments=tuple(raw.get("attachments", ())))


def repeat_table_name(form_id: str, odata_table: str) -> str:
    """``Submissions.household.member`` of form ``visits`` -> ``visits__household_member``."""
    path = odata_table.removeprefix("Submissions.")
    return re.sub(r"[^a-z0-9_]+", "_", f"{form_id}__{path.replace('.', '_')}".lower()).strip("_")


def _strip(record: dict[str, Any]) -> dict[str, Any]:
    """A record's own fields: no ``__`` system keys, no navigation links, no emptied groups."""
    clean: dict[str, Any] = {}
    for key, value in record.items():
        if key.startswith("__") or key.endswith("@odata.navigationLink"):
            continue
        if isinstance(value, dict):
            value = _strip(value)
            if not value:
                continue
        clean[key] = value
    return clean


def _binary_fields(record: dict[str, Any], names: tuple[str, ...], prefix: str = "") -> dict[str, str]:
    """File name -> field name for the configured attachment fields (searched in groups too)."""
    found: dict[str, str] = {}
    for key, value in record.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            found |= _binary_fields(value, names, f"{path}/")
        elif isinstance(value, str) and (key in names or path in names):
            found[value] = key
    return found


def _binary_paths(session: CentralSession, project_id: int, form_id: str) -> tuple[tuple[str, ...], ...]:
    """The form's binary fields outside repeats, as OData key paths (``("meta", "audit")``), from
    ``GET .../fields?odata=true``. Their values in a submission row name its files, so a row whose
    names account for all of its ``attachmentsExpected`` needs no attachment listing. A Central that
    does not answer gives no paths: every submission's files are then listed, as before."""
    url = f"{session.api_url}/projects/{project_id}/forms/{quote(form_id, safe='')}/fields"
    try:
        fields = session.get_json(url, {"odata": "true"})
    except CentralError:
        return ()
    if not isinstance(fields, list):
        return ()
    entries = [entry for entry in fields if isinstance(entry, dict) and isinstance(entry.get("path"), str)]
    repeats = [entry["path"] + "/" for entry in entries if entry.get("type") == "repeat"]
    return tuple(
        tuple(part for part in entry["path"].split("/") if part)
        for entry in entries
        if entry.get("binary") and not any(entry["path"].startswith(prefix) for prefix in repeats)
    )


def _file_names(record: dict[str, Any], paths: tuple[tuple[str, ...], ...]) -> dict[str, str]:
    """File name -> field name of the files ``record`` references in the binary fields at ``paths``."""
    found: dict[str, str] = {}
    for path in paths:
        value: Any = record
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, str) and value:
            found.setdefault(value, path[-1])
    return found


@dataclass
class _FormRun:
    """What one run learnt about one form, shared by its steps."""

    changed: set[str] = field(default_factory=set)  # ids of the submissions this run loads
    binary_paths: tuple[tuple[str, ...], ...] | None = None  # None until the form's fields are asked
    known: dict[str, dict[str, str]] | None = None  # submission id -> file name -> stored ETag
    downloads: Any = None  # the AttachmentSync, from the first submission with files


def _listing(system: dict[str, Any], names: dict[str, str]) -> list[tuple[str, bool]] | None:
    """A submission's files as ``(name, present)`` when its row names them all (``names``, from its
    binary fields), else None (they are listed): every expected file is named, all or none present."""
    expected, present = system.get("attachmentsExpected"), system.get("attachmentsPresent")
    if not isinstance(expected, int) or len(names) != expected:
        return None
    if present == expected:
        return [(name, True) for name in sorted(names)]
    if present == 0:
        return [(name, False) for name in sorted(names)]
    return None


@dlt.source(name="odk_central", max_table_nesting=0)
def odk_central(
    base_url: str = dlt.config.value,
    project_id: int = dlt.config.value,
    forms: list[Any] = dlt.config.value,
    username: str = dlt.secrets.value,
    password: str = dlt.secrets.value,
    page_size: int = DEFAULT_PAGE_SIZE,
    overlap_seconds: int = DEFAULT_OVERLAP_SECONDS,
    attachments_storage: str = DEFAULT_ATTACHMENTS_STORAGE,
    attachment_workers: int = 4,
    request_timeout: float = 60.0,
    max_attempts: int = 5,
    backoff_factor: float = 1.0,
    max_retry_delay: float = 60.0,
    known_etags: dict[tuple[str, str, str], str] | None = None,
    stats: LoadStats | None = None,
    full_refresh: bool = False,
) -> Any:
    """Submissions, repeat rows and attachments of each configured form of one Central project.

    ``known_etags`` maps (form, submission, file name) to the ETag of the file already stored, so
    unchanged attachments are not downloaded again (the registry reads it from the warehouse).
    """
    stats = stats or LoadStats()
    session = CentralSession(
        base_url,
        username,
        password,
        request_timeout=request_timeout,
        max_attempts=max_attempts,
        backoff_factor=backoff_factor,
        max_retry_delay=max_retry_delay,
        pool_size=max(attachment_workers, 2),
    )
    settings = _Settings(
        project_id=int(project_id),
        page_size=int(page_size),
        overlap=timedelta(seconds=int(overlap_seconds)),
        attachments_storage=attachments_storage,
        attachment_workers=int(attachment_workers),
        known_etags=known_etags or {},
        full_refresh=full_refresh,
    )
    configs = [FormConfig.from_config(raw) for raw in forms]
    if not configs:
        raise ConfigurationError("sources.odk_central.forms is empty: name at least one form")
    session.expect_users(len(configs))
    return [_form_resource(session, settings, config, stats) for config in configs]


@dataclass(frozen=True)
class _Settings:
    project_id: int
    page_size: int
    overlap: timedelta
    attachments_storage: str
    attachment_workers: int
    known_etags: dict[tuple[str, str, str], str]
    full_refresh: bool


def _form_resource(session: CentralSession, settings: _Settings, config: FormConfig, stats: LoadStats) -> Any:
    form_id = config.xml_form_id

    @dlt.resource(name=form_id, write_disposition=MERGE, max_table_nesting=0)
    def form() -> Iterator[Any]:
        run = _FormRun()
        try:
            yield from rows(run)
        finally:
            if run.downloads is not None:
                run.downloads.close()  # after a failure: downloads under way finish, queued ones are dropped
            session.release()  # the last form to finish logs out: the token does not outlive the run

    def rows(run: _FormRun) -> Iterator[Any]:
        # The cursors are hand-written, not dlt.sources.incremental: the next cursor is Central's clock
        # when the read began (the Date of its first answer), not the newest value in the rows, which
        # incremental's last_value would be; deletions have a cursor of their own on another endpoint;
        # and a clock set back must move the cursor backwards. What incremental's lag and boundary
        # dedup give the other sources, the overlap window and the "recent" timestamps give here.
        state = dlt.current.resource_state()
        if settings.full_refresh:
            state.clear()
        cursor = parse_time(state.get("cursor"))
        deleted_cursor = parse_time(state.get("deleted_cursor"))
        loaded_at = datetime.now(UTC)
        odata = session.odata_url(settings.project_id, form_id)
        service = session.get_json(odata)  # the form's tables; its answer also says Central's time
        clock = session.server_time
        if clock is not None and cursor is not None and clock < cursor - settings.overlap:
            # Central's clock was set back since the last run: what it stamps now is older than the
            # cursor. Read from its clock instead, so that nothing stamped since is skipped.
            stats.notes.append(
                f"{form_id}: Central's clock ({clock.isoformat()}) is behind the cursor "
                f"({cursor.isoformat()}), as if it was set back; read from its clock instead"
            )
            cursor = clock
            deleted_cursor = min(deleted_cursor, clock) if deleted_cursor else None
        window = cursor - settings.overlap if cursor else None

        # 1. Submissions created or changed (edits, review states) since the cursor.
        params: dict[str, Any] = {"$top": settings.page_size}
        if window:
            moment = odata_time(window)
            params["$filter"] = f"__system/submissionDate gt {moment} or __system/updatedAt gt {moment}"
        # Rows inside the overlap were read last time: skip those whose timestamp has not moved.
        recent: dict[str, str] = state.get("recent", {})
        seen_at: dict[str, datetime] = {}
        # The next cursor is when this read began by Central's clock (its first answer's Date), not
        # the newest timestamp seen: a submission created or edited while the pages are read has a
        # later timestamp than that, so the next run reads it, however Central orders its pages.
        newest = None
        asked_at = datetime.now(UTC)
        for page in session.paginate(f"{odata}/Submissions", params):
            if newest is None:
                newest = session.server_time or asked_at
            stats.pages += 1
            rows = []
            for record in page:
                row = _submission_row(form_id, record, loaded_at)
                moment = max(filter(None, (row["updated_at"], row["submission_date"])), default=None)
                sid = row["submission_id"]
                if moment and recent.get(sid) == moment.isoformat():
                    continue
                if moment and moment >= newest - settings.overlap:
                    seen_at[sid] = moment  # the next run's overlap reads it again (only those are kept)
                rows.append(row)
                system = record.get("__system") or {}
                run.changed.add(sid)
                if system.get("attachmentsPresent") or system.get("attachmentsExpected"):
                    _add_files(session, settings, config, record, system, run)
            stats.read += len(rows)
            stats.loaded += len(rows)
            stats.part(f"odk_central.{form_id}.submissions", processed=len(rows))
            if rows:
                yield dlt.mark.with_hints(rows, SUBMISSION_HINTS, create_table_variant=True)

        # 2. Deletions: Central hides soft-deleted submissions unless a filter names deletedAt.
        deleted_filter = (
            f"__system/deletedAt gt {odata_time(deleted_cursor - settings.overlap)}"
            if deleted_cursor
            else "__system/deletedAt ne null"
        )
        recent_deleted: dict[str, str] = state.get("recent_deleted", {})
        newest_deleted = None
        deleted_at: dict[str, datetime] = {}
        asked_at = datetime.now(UTC)
        for page in session.paginate(
            f"{odata}/Submissions", {"$top": settings.page_size, "$filter": deleted_filter}
        ):
            if newest_deleted is None:
                newest_deleted = session.server_time or asked_at  # as for the cursor above
            rows = []
            for record in page:
                row = _submission_row(form_id, record, loaded_at)
                sid, moment = row["submission_id"], row["deleted_at"]
                run.changed.discard(sid)
                if moment is None or recent_deleted.get(sid) == moment.isoformat():
                    continue
                deleted_at[sid] = moment
                rows.append(row)
            stats.read += len(rows)
            stats.loaded += len(rows)
            stats.part(f"odk_central.{form_id}.deletions", processed=len(rows))
            if rows:
                yield dlt.mark.with_hints(rows, SUBMISSION_HINTS, create_table_variant=True)
        stats.part(f"odk_central.{form_id}.submissions")
        stats.part(f"odk_central.{form_id}.deletions")

        # 3. Repeat rows of the submissions that changed, table by table (parents first).
        tables = sorted(
            (entry["name"] for entry in service.get("value", []) if entry.get("name") != "Submissions"),
            key=lambda name: name.count("."),
        )
        root_of: dict[str, str] = {}  # row id -> submission id, for the rows of tables that have children
        for odata_table in tables:
            has_children = any(other.startswith(odata_table + ".") for other in tables)
            yield from _repeat_rows(
                session,
                settings,
                form_id,
                odata,
                odata_table,
                window,
                run,
                root_of,
                has_children,
                loaded_at,
                stats,
            )

        # 4. Attachments of the changed submissions that have files, new or changed files only, as
        # downloaded while the steps above went on. Expected files too: a file not uploaded yet gets a
        # row saying so (exists = false).
        if run.downloads is not None:
            result = run.downloads.finish()
            rows = [row | {"_loaded_at": loaded_at} for row in result.rows]
            stats.part(f"odk_central.{form_id}.attachments", processed=result.listed)
            stored = [f"{row['submission_id']}/{row['name']}" for row in rows if row.get("storage_key")]
            stats.files_loaded += stored
            stats.attachments_downloaded = (stats.attachments_downloaded or 0) + len(stored)
            if rows:
                yield dlt.mark.with_hints(rows, ATTACHMENT_HINTS, create_table_variant=True)
        stats.part(f"odk_central.{form_id}.attachments")  # a sync type even when nothing changed
        stats.attachments_downloaded = stats.attachments_downloaded or 0

        stats.requests, stats.http_errors = session.stats.requests, session.stats.http_errors
        if newest:
            state["cursor"] = newest.isoformat()
            state["recent"] = _within(recent, seen_at, newest - settings.overlap)
        if newest_deleted:
            state["deleted_cursor"] = newest_deleted.isoformat()
            state["recent_deleted"] = _within(recent_deleted, deleted_at, newest_deleted - settings.overlap)
        stats.cursor = state.get("cursor")

    return form


def _within(old: dict[str, str], new: dict[str, datetime], since: datetime) -> dict[str, str]:
    """The rows (id -> timestamp) at or after ``since``: the next run's overlap will read them again."""
    merged = {sid: moment for sid, moment in old.items() if datetime.fromisoformat(moment) >= since}
    merged |= {sid: moment.isoformat() for sid, moment in new.items() if moment >= since}
    return merged


def _submission_row(form_id: str, record: dict[str, Any], loaded_at: datetime) -> dict[str, Any]:
    system = record.get("__system") or {}
    deleted_at = parse_time(system.get("deletedAt"))
    meta = record.get("meta") if isinstance(record.get("meta"), dict) else {}
    return {
        "form_id": form_id,
        "submission_id": record["__id"],
        "instance_id": meta.get("instanceID") or record["__id"],
        "submission_date": parse_time(system.get("submissionDate")),
        "updated_at": parse_time(system.get("updatedAt")),
        "deleted_at": deleted_at,
        "is_deleted": deleted_at is not None,
        "review_state": system.get("reviewState"),
        "submitter_id": _text(system.get("submitterId")),
        "submitter_name": system.get("submitterName"),
        "device_id": system.get("deviceId"),
        "form_version": system.get("formVersion"),
        "edits": system.get("edits"),
        "status": system.get("status"),
        "attachments_present": system.get("attachmentsPresent"),
        "attachments_expected": system.get("attachmentsExpected"),
        "data": json.dumps(_strip(record), sort_keys=True, ensure_ascii=False),
        "_loaded_at": loaded_at,
    }


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _repeat_rows(
    session: CentralSession,
    settings: _Settings,
    form_id: str,
    odata: str,
    odata_table: str,
    window: datetime | None,
    run: _FormRun,
    root_of: dict[str, str],
    has_children: bool,
    loaded_at: datetime,
    stats: LoadStats,
) -> Iterator[Any]:
    """The rows of one repeat table. ``root_of`` maps the rows of the tables read before to their
    submission, for nested repeats; this table's rows are added only when it ``has_children`` (the
    rows of a table without nested repeats are never anyone's parent)."""
    table = repeat_table_name(form_id, odata_table)
    hints = dlt.mark.make_hints(
        table_name=table,
        write_disposition=MERGE,
        merge_key=["form_id", "submission_id"],
        columns=REPEAT_COLUMNS,
    )
    part = f"odk_central.{form_id}.{table.removeprefix(form_id + '__')}"
    if window or settings.full_refresh:
        # Every changed submission's old child rows go (an edit may have removed them all);
        # its current rows, read below, are inserted in the same merge.
        # In batches: a million changed submissions are not a million rows in memory at once.
        changed = list(run.changed)
        for start in range(0, len(changed), 10_000):
            batch = changed[start : start + 10_000]
            tombstones = [
                {
                    "form_id": form_id,
                    "submission_id": sid,
                    "row_id": f"tombstone:{sid}",
                    "_is_tombstone": True,
                    "_loaded_at": loaded_at,
                }
                for sid in batch
            ]
            yield dlt.mark.with_hints(tombstones, hints, create_table_variant=True)
    params: dict[str, Any] = {"$top": settings.page_size}
    if window:
        moment = odata_time(window)
        params["$filter"] = (
            f"$root/Submissions/__system/submissionDate gt {moment} "
            f"or $root/Submissions/__system/updatedAt gt {moment}"
        )
    for page_number, page in enumerate(session.paginate(f"{odata}/{odata_table}", params), start=1):
        rows, rejected = [], []
        for position, record in enumerate(page, start=1):
            link = next((key for key in record if key.startswith("__") and key.endswith("-id")), None)
            parent_id = record.get(link) if link else None
            root = parent_id if link == "__Submissions-id" else root_of.get(parent_id or "")
            if root is not None and has_children:
                root_of[record["__id"]] = root  # (its own children, in nested repeats, follow it)
            if window and root is not None and root not in run.changed:
                continue  # a submission inside the overlap that has not changed since last time
            if root is None:
                rejected.append(
                    rejection(
                        source_name="odk_central",
                        locator=f"{form_id} {odata_table} page {page_number}, row {position}",
                        api_page=page_number,
                        raw_record=record,
                        reason=f"parent row {link}={parent_id!r} was not read in this run",
                        rejected_at=loaded_at,
                    )
                )
                continue
            rows.append(
                {
                    "form_id": form_id,
                    "submission_id": root,
                    "row_id": record["__id"],
                    "parent_id": parent_id,
                    "parent_link": link,
                    "data": json.dumps(_strip(record), sort_keys=True, ensure_ascii=False),
                    "_is_tombstone": False,
                    "_loaded_at": loaded_at,
                }
            )
        stats.read += len(rows) + len(rejected)
        stats.loaded += len(rows)
        stats.rejected += len(rejected)
        stats.part(part, processed=len(rows) + len(rejected), rejected=len(rejected))
        if rows:
            yield dlt.mark.with_hints(rows, hints, create_table_variant=True)
        if rejected:
            yield quarantined(rejected)
    stats.part(part)  # a sync type even when nothing changed


def _add_files(
    session: CentralSession,
    settings: _Settings,
    config: FormConfig,
    record: dict[str, Any],
    system: dict[str, Any],
    run: _FormRun,
) -> None:
    """Start syncing the files of a changed submission while its form's pages are still being read."""
    from loaders.odk_central.attachments import AttachmentStore, AttachmentSync

    form_id = config.xml_form_id
    if run.downloads is None:  # the first submission with files of this run: set up, ask the fields
        run.binary_paths = _binary_paths(session, settings.project_id, form_id)
        run.known = {}
        for (form, sid, name), etag in settings.known_etags.items():
            if form == form_id:
                run.known.setdefault(sid, {})[name] = etag
        store = AttachmentStore(settings.attachments_storage)
        run.downloads = AttachmentSync(
            session, settings.project_id, form_id, store, settings.attachment_workers
        )
    sid = record["__id"]
    in_row = _file_names(record, run.binary_paths or ())
    run.downloads.add(
        sid,
        known=(run.known or {}).get(sid),
        field_names=in_row | _binary_fields(record, config.attachments),
        listing=_listing(system, in_row) if run.binary_paths else None,
    )


def build(stats: LoadStats, options: RunOptions, warehouse: Warehouse) -> Any:
    """The ``odk_central`` sync as a run builds it."""
    return odk_central(stats=stats, known_etags=stored_etags(warehouse), full_refresh=options.full_refresh)


def stored_etags(warehouse: Warehouse) -> dict[tuple[str, str, str], str]:
    """(form, submission, file name) -> ETag of the attachments already stored, so that an unchanged
    file is not downloaded again."""
    if not warehouse.has_table(DATASET, ATTACHMENTS_TABLE):
        return {}
    rows = warehouse.query(
        f"select form_id, submission_id, name, etag from {DATASET}.{ATTACHMENTS_TABLE} "
        "where etag is not null and storage_key is not null"
    )
    return {(form, sid, name): etag for form, sid, name, etag in rows}
