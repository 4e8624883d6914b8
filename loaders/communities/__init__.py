"""Community records: barangay-level figures from CSV files or a source table, incremental on ``updated_at``.

Every ``*.csv`` under ``sources.communities.files_path`` is read (sorted by name; a file whose content is
the same as when it was last read, by SHA-256 in the resource state, and read under the same PSGC
barangays and column settings, is hashed but not parsed again), or, when
``sources.communities.credentials`` (any SQLAlchemy URL, a secret) and ``table`` are set, the table's rows
updated since the cursor (minus ``LAG_SECONDS``) and those without a timestamp; a record is loaded when
its ``updated_at`` is at or after the cursor (dlt state, kept in the warehouse), merged on ``record_id``
(the latest ``updated_at`` wins). Soft-deleted records (``is_deleted``) are loaded as such; the rollups
leave them out. A record whose barangay code is not a PSGC barangay, or whose figures, flag or timestamp
cannot be read, goes to ``rejected_rows`` with the file, line and reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dlt
import sqlalchemy as sa

from loaders.common.files import DEFAULT_SETTLE_SECONDS, FileRejected, files_to_read
from loaders.common.pipeline import RunOptions
from loaders.common.quarantine import LoadStats, quarantined, rejection
from loaders.common.sqlsource import connect_source
from loaders.common.values import row_hash
from loaders.common.warehouse import ROOT, ConfigurationError, Warehouse
from loaders.communities.helpers import barangay_codes, checked_record, read_records
from loaders.communities.settings import DATASET, DEFAULT_FIGURES

MERGE = {"disposition": "merge", "strategy": "delete-insert"}
BATCH = 10_000
LAG_SECONDS = 300  # a source table is read again this far behind the cursor (rows committed late)


def record_columns(figures: Sequence[str]) -> dict[str, dict[str, Any]]:
    columns: dict[str, dict[str, Any]] = {
        "record_id": {"data_type": "text"},
        "barangay_code": {"data_type": "text"},
    }
    columns.update({name: {"data_type": "bigint"} for name in figures})
    columns["is_deleted"] = {"data_type": "bool"}
    columns["updated_at"] = {"data_type": "timestamp", "dedup_sort": "desc"}
    columns["source_file"] = {"data_type": "text"}
    columns["_loaded_at"] = {"data_type": "timestamp"}
    return columns


# locator, file, line, the record, why it cannot be read as one (a row of the wrong width)
Record = tuple[str, str | None, int | None, dict[str, Any], str | None]


@dataclass
class _Versions:
    """The cursor: the latest ``updated_at`` loaded, and the versions (digests) loaded at exactly that
    time, so a record written later with the same timestamp is still read and the same one is not
    loaded again.

    This is dlt.sources.incremental's last_value and boundary dedup, hand-written because
    incremental drops every row behind the cursor, and a record new to the warehouse, or newer than
    its stored version, is loaded here however far behind the cursor its clock is (a field device's
    records arrive days late); the row-by-row verdict also names the record it quarantines.
    """

    cursor: datetime | None
    at_cursor: set[str]
    stored_moments: Callable[[], dict[str, datetime]] | None  # read once, when first needed
    latest: datetime | None = None
    latest_ids: set[str] = field(default_factory=set)
    # record_id -> (updated_at, digest) of the latest version read in this run: two versions with
    # different times are both loaded and the merge keeps the later; two different ones with the
    # same time cannot be ordered, and the second is quarantined
    read_now: dict[str, tuple[datetime, str]] = field(default_factory=dict)
    _stored: dict[str, datetime] | None = None

    def __post_init__(self) -> None:
        self.latest, self.latest_ids = self.cursor, set(self.at_cursor)

    def judge(self, row: dict[str, Any], fingerprint: str) -> tuple[str, str]:
        """("load", ""), ("unchanged", "") or ("reject", why) for a checked record and its digest."""
        moment = row["updated_at"]
        earlier = self.read_now.get(row["record_id"])
        if earlier is not None and earlier[0] == moment:
            if earlier[1] == fingerprint:
                return "unchanged", ""  # the same version again (another file, a repeat)
            return "reject", (
                f"record_id {row['record_id']} was read earlier in this run with the same "
                "updated_at and other values: which one holds cannot be told"
            )
        if earlier is None or moment > earlier[0]:
            self.read_now[row["record_id"]] = (moment, fingerprint)
        if self.cursor is not None and (
            (moment < self.cursor and not self._newer_than_stored(row))
            or (moment == self.cursor and fingerprint in self.at_cursor)
        ):
            # a version the warehouse has, or an older one: a record new to it, or newer than its
            # stored version, is loaded however far behind the cursor its clock is
            return "unchanged", ""
        if self.latest is None or moment > self.latest:
            self.latest, self.latest_ids = moment, {fingerprint}
        elif moment == self.latest:
            self.latest_ids.add(fingerprint)
        return "load", ""

    def _newer_than_stored(self, row: dict[str, Any]) -> bool:
        if self._stored is None:
            self._stored = self.stored_moments() if self.stored_moments else {}
        known_at = self._stored.get(row["record_id"])
        return known_at is None or row["updated_at"] > known_at


def _read_table(
    engine: Any, table: str, schema: str | None, columns: list[str], since: datetime | None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The source table's rows updated since ``since`` (less ``LAG_SECONDS``) or never, with their
    locator; every row without a cursor."""
    source = sa.table(table, *(sa.column(name) for name in columns), schema=schema)
    query = sa.select(*source.c)
    if since is not None:
        query = query.where(
            sa.or_(
                source.c.updated_at >= since - timedelta(seconds=LAG_SECONDS),
                source.c.updated_at.is_(None),
            )
        )
    with engine.connect() as conn:
        for index, row in enumerate(conn.execute(query.execution_options(yield_per=BATCH)).mappings()):
            yield f"{table} row {index + 1}", dict(row)


def _records_folder(files_path: str | None) -> Path:
    if not files_path:
        raise ConfigurationError(
            "set sources.communities.files_path (a folder of CSV files) or credentials and table"
        )
    folder = Path(files_path)
    folder = folder if folder.is_absolute() else ROOT / folder
    if not folder.is_dir():
        raise ConfigurationError(
            f"community records folder {folder} does not exist: set sources.communities.files_path"
        )
    return folder


@dlt.source(name="communities", max_table_nesting=0)
def communities(
    files_path: str | None = dlt.config.value,
    credentials: str | None = dlt.secrets.value,
    table: str | None = None,
    schema: str | None = None,
    key_column: str = "record_id",
    barangay_code_column: str = "barangay_code",
    figures: list[str] | None = None,
    stats: LoadStats | None = None,
    full_refresh: bool = False,
    settle_seconds: float = DEFAULT_SETTLE_SECONDS,
    stored_moments: Callable[[], dict[str, datetime]] | None = None,
) -> Any:
    """The community records resource. ``stored_moments`` returns record_id -> ``updated_at`` of the
    records in the warehouse (``stored_record_moments``); it is called only when a record is behind the
    cursor, to tell a version the warehouse has from one new to it."""
    names = tuple(figures or DEFAULT_FIGURES)
    required = (key_column, barangay_code_column, *names, "updated_at")
    if credentials:
        if not table:
            raise ConfigurationError("set sources.communities.table: the table to read the records from")
        engine = connect_source(
            credentials, "the community records database", "sources.communities.credentials"
        )
        columns = [key_column, barangay_code_column, *names, "is_deleted", "updated_at"]
        paths: list[Path] = []
    else:
        folder = _records_folder(files_path)
        paths = sorted(folder.glob("*.csv"))
    stats = stats if stats is not None else LoadStats()
    known = barangay_codes()
    hashed = ("record_id", "barangay_code", *names, "is_deleted", "updated_at")
    # what decides a record's fate besides its file's bytes: a file is skipped only while these are the
    # same as when it was read (a new PSGC publication may accept a record quarantined before)
    context = hashlib.sha256(
        "\x1f".join([key_column, barangay_code_column, *names, *sorted(known)]).encode()
    ).hexdigest()

    @dlt.resource(
        name="records",
        table_name="records",
        write_disposition=MERGE,
        primary_key="record_id",
        columns=record_columns(names),
    )
    def records() -> Iterator[Any]:
        state = dlt.current.resource_state()
        versions = _Versions(
            cursor=None
            if full_refresh or not state.get("cursor")
            else datetime.fromisoformat(state["cursor"]),
            at_cursor=set() if full_refresh else set(state.get("at_cursor", [])),
            stored_moments=stored_moments,
        )
        # the files read whole before, by content digest (only the files still present are kept)
        same_context = not full_refresh and state.get("files_context") == context
        files_read = dict(state.get("files", {})) if same_context else {}
        loaded_at = datetime.now(UTC)

        def sources() -> Iterator[tuple[str, Iterator[Record]]]:
            """(name, its records) of the table, or of each CSV file to read (the others are left out
            and counted; a file is marked as read once its records are consumed)."""
            if credentials:
                rows = _read_table(engine, str(table), schema, columns, versions.cursor)
                yield str(table), ((locator, None, None, row, None) for locator, row in rows)
                return
            by_name = {path.name: path for path in paths}
            for name, reader in files_to_read(by_name.items(), files_read, stats, settle_seconds):
                where = str(by_name[name])
                rows = read_records(reader, required=required, optional=("is_deleted",))
                yield name, ((f"{name}:{line}", where, line, row, problem) for line, row, problem in rows)

        def rejected(locator: str, source_file: str | None, line: int | None, raw: Any, reason: str) -> dict:
            return rejection(
                source_name="communities",
                locator=locator,
                raw_record=raw,
                reason=reason,
                rejected_at=loaded_at,
                source_file=source_file,
                source_line=line,
            )

        for source_name, found in sources():
            good: list[dict[str, Any]] = []
            bad: list[dict[str, Any]] = []

            try:
                for locator, source_file, line, record, problem in found:
                    stats.read += 1
                    if problem:
                        bad.append(rejected(locator, source_file, line, record, problem))
                        continue
                    try:
                        row = checked_record(
                            record,
                            key_column=key_column,
                            code_column=barangay_code_column,
                            figures=names,
                            known=known,
                        )
                    except ValueError as exc:
                        bad.append(rejected(locator, source_file, line, record, str(exc)))
                        continue
                    verdict, reason = versions.judge(row, row_hash(row, hashed))
                    if verdict == "unchanged":
                        stats.unchanged += 1
                        continue
                    if verdict == "reject":
                        bad.append(rejected(locator, source_file, line, record, reason))
                        continue
                    row["source_file"] = source_name
                    row["_loaded_at"] = loaded_at
                    good.append(row)
                    if len(good) >= BATCH:
                        stats.loaded += len(good)
                        yield good
                        good = []
            except FileRejected as exc:
                stats.read += 1
                stats.files_rejected.append(f"{source_name}: {exc}")
                past = exc.line is not None and exc.line > 1
                bad.append(
                    rejected(
                        f"{source_name}:{exc.line}" if past else source_name,
                        str(folder / source_name),
                        exc.line,
                        exc.sample,
                        f"file not read{' past this line' if past else ''}: {exc}",
                    )
                )
            stats.loaded += len(good)
            if good:
                yield good
            if bad:
                stats.rejected += len(bad)
                yield quarantined(bad)
        if not credentials:
            state["files"] = {path.name: files_read[path.name] for path in paths if path.name in files_read}
            state["files_context"] = context
        stats.part("communities.records", processed=stats.read, rejected=stats.rejected)
        if versions.latest is not None:
            state["cursor"] = versions.latest.isoformat()
            state["at_cursor"] = sorted(versions.latest_ids)
            stats.cursor = versions.latest.isoformat()

    return records


def stored_record_moments(warehouse: Warehouse) -> dict[str, datetime]:
    """record_id -> ``updated_at`` (UTC) of the community records in the warehouse; empty before the
    first load."""
    if not warehouse.has_table(DATASET, "records"):
        return {}
    rows = warehouse.query(f"select record_id, updated_at from {DATASET}.records")
    return {
        record_id: (moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC))
        for record_id, moment in rows
        if moment is not None
    }


def build(stats: LoadStats, options: RunOptions, warehouse: Warehouse) -> Any:
    """The ``communities`` sync as a run builds it."""
    return communities(
        stats=stats,
        full_refresh=options.full_refresh,
        stored_moments=lambda: stored_record_moments(warehouse),
    )
