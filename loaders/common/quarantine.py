"""Run statistics and the quarantine: every record read is loaded or rejected with a reason.

Rejected records go to ``rejected_rows`` in the source's raw dataset with where they came from (file
and line, API page, form and table), the raw record and the reason.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import dlt
import pyarrow as pa

REJECTED_SCHEMA = pa.schema(
    [
        pa.field("rejection_id", pa.string(), nullable=False),
        ("source_name", pa.string()),
        ("source_locator", pa.string()),
        ("source_file", pa.string()),
        ("source_line", pa.int64()),
        ("api_page", pa.int64()),
        ("raw_record", pa.string()),
        ("reason", pa.string()),
        ("rejected_at", pa.timestamp("us", tz="UTC")),
    ]
)


@dataclass
class LoadStats:
    """Counts for the run summary and the audit: loaded + rejected + unchanged = read (``unchanged``:
    records identical to what the warehouse already holds, not loaded again)."""

    read: int = 0
    loaded: int = 0
    rejected: int = 0
    unchanged: int = 0
    deleted: int = 0  # records the source no longer has, deleted from the warehouse
    files_loaded: list[str] = field(default_factory=list)
    files_skipped: list[str] = field(default_factory=list)  # read before and unchanged
    files_pending: list[str] = field(default_factory=list)  # still being written: the next run's
    files_changed: list[str] = field(default_factory=list)  # changed while read: read again next run
    files_rejected: list[str] = field(default_factory=list)  # "name: reason", quarantined whole
    attachments_downloaded: int | None = None  # None for a source without attachments
    requests: int = 0
    http_errors: int = 0
    pages: int = 0
    cursor: str | None = None
    notes: list[str] = field(default_factory=list)  # what the operator should know of this read
    # Parts of a source that are sync types of their own (e.g. a form's repeat tables):
    # name -> {"processed": n, "rejected": n}
    parts: dict[str, dict[str, int]] = field(default_factory=dict)

    def count(self, *, failed: bool = False) -> None:
        """One HTTP attempt (``loaders.common.attempts.counted``), failed when retried."""
        self.requests += 1
        self.http_errors += int(failed)

    def part(self, name: str, processed: int = 0, rejected: int = 0) -> None:
        counts = self.parts.setdefault(name, {"processed": 0, "rejected": 0})
        counts["processed"] += processed
        counts["rejected"] += rejected

    def as_dict(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "loaded": self.loaded,
            "rejected": self.rejected,
            "unchanged": self.unchanged,
            "deleted": self.deleted,
            "files_loaded": self.files_loaded,
            "files_skipped": self.files_skipped,
            "files_pending": self.files_pending,
            "files_changed": self.files_changed,
            "files_rejected": self.files_rejected,
            "requests": self.requests,
            "http_errors": self.http_errors,
            "pages": self.pages,
            "cursor": self.cursor,
            "notes": self.notes,
            "parts": self.parts,
        }


def rejection_id(source_name: str, locator: str, raw_record: str) -> str:
    """The identity of a rejected input row: where it was read (file and line, API page and record,
    table and row) and what it held. Two identical rows read from two places are two rejections; the
    same row read again (a rerun of the same file) is the same one, its reason brought up to date."""
    text = "\x1f".join([source_name, locator, raw_record])
    return hashlib.sha256(text.encode()).hexdigest()


def rejected_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Quarantine rows as an Arrow table of ``REJECTED_SCHEMA``."""
    return pa.Table.from_pylist(rows, schema=REJECTED_SCHEMA)


def rejection(
    *,
    source_name: str,
    locator: str,
    raw_record: dict[str, Any] | str,
    reason: str,
    rejected_at: datetime,
    source_file: str | None = None,
    source_line: int | None = None,
    api_page: int | None = None,
) -> dict[str, Any]:
    raw = raw_record if isinstance(raw_record, str) else json.dumps(raw_record, default=str)
    return {
        "rejection_id": rejection_id(source_name, locator, raw),
        "source_name": source_name,
        "source_locator": locator,
        "source_file": source_file,
        "source_line": source_line,
        "api_page": api_page,
        "raw_record": raw,
        "reason": reason,
        "rejected_at": rejected_at,
    }


REJECTED_HINTS = dlt.mark.make_hints(
    table_name="rejected_rows",
    write_disposition={"disposition": "merge", "strategy": "delete-insert"},
    primary_key="rejection_id",
    merge_key="",  # the variant must not inherit the resource's merge key
    columns={},  # nor its columns (the Arrow schema has them): no stray e.g. password_hash column
)


def quarantined(rows: list[dict[str, Any]]) -> Any:
    """Quarantine rows (from ``rejection``) as an item for ``rejected_rows``, yielded from any resource."""
    return dlt.mark.with_hints(rejected_table(rows), REJECTED_HINTS, create_table_variant=True)
