"""Sales: CSV export folders, the sales REST API and the bulk users CSV, as dlt sources.

Every source writes good records to its table and bad ones to ``raw_sales.rejected_rows`` with where they
came from and why, so loaded + rejected = read. Cursors and the hashes of loaded files live in dlt state,
which dlt keeps in the warehouse.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dlt
import pyarrow as pa
import pyarrow.compute as pc
from dlt.sources.helpers.requests import Client
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.paginators import PageNumberPaginator

from loaders.common.attempts import counted
from loaders.common.files import (
    DEFAULT_SETTLE_SECONDS,
    FileRejected,
    HashingReader,
    byte_order_mark,
    files_to_read,
    header_key,
)
from loaders.common.pipeline import RunOptions
from loaders.common.quarantine import quarantined
from loaders.common.values import row_hash
from loaders.common.warehouse import ROOT, ConfigurationError, Warehouse, register_secret
from loaders.sales.helpers import (
    CsvFile,
    FileSource,
    LoadStats,
    OrdersCopy,
    RecordShape,
    SeenKeys,
    map_columns,
    original_records,
    rejection,
    validate_orders,
)
from loaders.sales.settings import (
    DATASET,
    DEFAULT_ROLES,
    MERGE_KEY,
    ORDER_COLUMNS,
    USER_COLUMNS,
)

ORDERS_HINTS: dict[str, Any] = {
    "write_disposition": {"disposition": "merge", "strategy": "delete-insert"},
    "merge_key": list(MERGE_KEY),
}


def _now() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------------------------------
# The three syncs, as a run builds them (loaders/registry.py names them)
# --------------------------------------------------------------------------------------------------


def build_sales_csv(stats: LoadStats, options: RunOptions, warehouse: Warehouse) -> Any:
    add_line_keys(warehouse)
    # PostgreSQL: the order lines are COPYed into their table as they are read; DuckDB: Arrow tables
    return sales_csv(
        stats=stats,
        full_refresh=options.full_refresh,
        copy_to=warehouse if warehouse.target == "postgres" else None,
    )


def build_sales_api(stats: LoadStats, options: RunOptions, warehouse: Warehouse) -> Any:
    add_line_keys(warehouse)
    return sales_api(stats=stats, days=options.days, full_refresh=options.full_refresh)


def build_sales_users(stats: LoadStats, options: RunOptions, warehouse: Warehouse) -> Any:
    return sales_users(
        stats=stats, existing=existing_user_emails(warehouse), full_refresh=options.full_refresh
    )


def existing_user_emails(warehouse: Warehouse) -> dict[str, str]:
    """email -> username of the users already loaded (none on a new warehouse)."""
    if not warehouse.has_table(DATASET, "users"):
        return {}
    return dict(warehouse.query(f"select email, username from {DATASET}.users"))


def add_line_keys(warehouse: Warehouse) -> None:
    """Give the order lines loaded before sources declared their keys a ``line_key`` (their product
    name, the standard key's), so that what is loaded now merges with them instead of beside them."""
    with warehouse.connect() as conn:
        cur = conn.cursor()
        cur.execute(
            "select column_name from information_schema.columns "
            f"where table_schema = '{DATASET}' and table_name = 'orders'"
        )
        names = {name for (name,) in cur.fetchall()}
        if names and "line_key" not in names:
            cur.execute(f"alter table {DATASET}.orders add column line_key varchar")
            cur.execute(f"update {DATASET}.orders set line_key = product_name")


# --------------------------------------------------------------------------------------------------
# CSV export folders
# --------------------------------------------------------------------------------------------------


@dlt.source(name="sales_csv", max_table_nesting=0)
def sales_csv(
    file_sources: list[dict[str, Any]] = dlt.config.value,
    stats: LoadStats | None = None,
    full_refresh: bool = False,
    copy_to: Any = None,
    settle_seconds: float = DEFAULT_SETTLE_SECONDS,
) -> Any:
    """Order lines from folders of CSV exports, one ``[[sources.sales_csv.file_sources]]`` each.

    With ``copy_to`` (a PostgreSQL ``Warehouse``) the good rows are COPYed into ``raw_sales.orders``
    while the files are read (``OrdersCopy``), committed before dlt loads the run's state; otherwise
    they are yielded as Arrow tables for dlt to merge (Parquet on DuckDB). Rejections and state go
    through dlt either way. A file modified less than ``settle_seconds`` ago is left for the next run
    (it may still be being copied).
    """
    sources = [FileSource.from_config(raw) for raw in file_sources]
    return orders_from_files(sources, stats or LoadStats(), full_refresh, copy_to, settle_seconds)


def orders_from_files(
    sources: Sequence[FileSource],
    stats: LoadStats,
    full_refresh: bool = False,
    copy_to: Any = None,
    settle_seconds: float = DEFAULT_SETTLE_SECONDS,
) -> Any:
    @dlt.resource(name="orders", table_name="orders", **ORDERS_HINTS)
    def orders() -> Iterator[Any]:
        state = dlt.current.resource_state()
        if full_refresh:
            state.clear()
        loaded: dict[str, str] = state.setdefault("files", {})
        seen_keys = SeenKeys()
        loaded_at = _now()
        sink = OrdersCopy(copy_to) if copy_to is not None else contextlib.nullcontext()
        with sink:
            for source in sources:
                files = ((f"{source.name}/{path.name}", path) for path in source.files())
                for file_id, reader in files_to_read(files, loaded, stats, settle_seconds):
                    for item in _orders_from_file(source, reader, file_id, seen_keys, loaded_at, stats):
                        if copy_to is not None and isinstance(item, pa.Table):
                            sink.write(item)
                        else:
                            yield item
        stats.cursor = loaded_at.isoformat()

    return orders


def _orders_from_file(
    source: FileSource,
    reader: HashingReader,
    file_id: str,
    seen_keys: SeenKeys,
    loaded_at: datetime,
    stats: LoadStats,
) -> Iterator[Any]:
    """The order lines and rejections of one file; a file that cannot be read (at all, or past a line)
    is one file-level rejection, and the rows before that line stand."""
    malformed: list[tuple[int, str]] = []
    try:
        opened = CsvFile.open(
            reader, encoding=source.encoding, delimiter=source.delimiter, quote_char=source.quote_char
        )
        columns = opened.resolve(source.shape.columns, source.shape.optional)
        for batch in opened.batches(malformed=malformed):
            table = map_columns(batch.table, columns)
            result = validate_orders(
                table,
                shape=source.shape,
                date_format=source.date_format,
                seen_keys=seen_keys,
                source_name=source.name,
                source_file=file_id,
                lines=batch.lines,
                loaded_at=loaded_at,
            )
            stats.read += table.num_rows
            stats.loaded += result.good.num_rows
            if result.good.num_rows:
                yield result.good
            if result.rejected_index:
                stats.rejected += len(result.rejected_index)
                records = original_records(table, columns, result.rejected_index)
                rows = [
                    rejection(
                        source_name="sales_csv",
                        locator=f"{file_id}:{batch.lines[i].as_py()}",
                        source_file=file_id,
                        source_line=batch.lines[i].as_py(),
                        raw_record=record,
                        reason=reason,
                        rejected_at=loaded_at,
                    )
                    for i, record, reason in zip(result.rejected_index, records, result.reasons, strict=True)
                ]
                yield quarantined(rows)
    except FileRejected as exc:
        stats.read += 1
        stats.rejected += 1
        stats.files_rejected.append(f"{file_id}: {exc}")
        where = f"{file_id}:{exc.line}" if exc.line and exc.line > 1 else file_id
        yield quarantined(
            [
                rejection(
                    source_name="sales_csv",
                    locator=where,
                    source_file=file_id,
                    source_line=exc.line,
                    raw_record=exc.sample,
                    reason=f"file not read{' past this line' if exc.line and exc.line > 1 else ''}: {exc}",
                    rejected_at=loaded_at,
                )
            ]
        )
    if malformed:
        stats.read += len(malformed)
        stats.rejected += len(malformed)
        yield quarantined(
            [
                rejection(
                    source_name="sales_csv",
                    locator=f"{file_id}:{number}",
                    source_file=file_id,
                    source_line=number,
                    raw_record=text,
                    reason="wrong number of fields for the header",
                    rejected_at=loaded_at,
                )
                for number, text in malformed
            ]
        )


# --------------------------------------------------------------------------------------------------
# REST API
# --------------------------------------------------------------------------------------------------


@dlt.source(name="sales_api", max_table_nesting=0)
def sales_api(
    base_url: str = dlt.config.value,
    api_key: str = dlt.secrets.value,
    api_key_header: str = "X-API-Key",
    endpoint: str = "orders",
    page_size: int = 500,
    initial_start_date: str | None = None,
    lookback_days: int = 1,
    days: int | None = None,
    date_format: str = "%Y-%m-%d",
    columns: dict[str, str] | None = None,
    key: list[str] | None = None,
    optional: list[str] | None = None,
    request_timeout: float = 30.0,
    max_attempts: int = 5,
    backoff_factor: float = 1.0,
    max_retry_delay: float = 60.0,
    stats: LoadStats | None = None,
    full_refresh: bool = False,
) -> Any:
    """Order lines from the sales API, windowed by ``days`` or by the stored date cursor.

    The window starts ``lookback_days`` before the cursor so late records of the last day are read
    again; records are merged on the order-line key, so overlapping windows never duplicate.
    """
    register_secret(api_key)
    stats = stats or LoadStats()
    shape = RecordShape.declared("sources.sales_api", columns, key, optional)
    http = Client(
        request_timeout=request_timeout,
        request_max_attempts=max_attempts,
        request_backoff_factor=backoff_factor,
        request_max_retry_delay=max_retry_delay,
        raise_for_status=False,  # RESTClient raises after dlt's retries are spent
    )

    @dlt.resource(name="api_orders", table_name="orders", **ORDERS_HINTS)
    def api_orders() -> Iterator[Any]:
        state = dlt.current.resource_state()
        if full_refresh:
            state.clear()
        session = http.session
        counted(session, stats)  # every attempt, retries included, in the run's counts
        today = _now().date()
        start = _window_start(state.get("cursor"), days, initial_start_date, lookback_days, today)
        client = RESTClient(
            base_url=base_url.rstrip("/") + "/",
            headers={api_key_header: api_key},
            paginator=PageNumberPaginator(base_page=1, page_param="page", total_path="total_pages"),
            data_selector="data",
            session=session,
        )
        params = {
            "start_date": start.isoformat(),
            "end_date": today.isoformat(),
            "page_size": page_size,
        }
        seen_keys = SeenKeys()
        loaded_at = _now()
        max_date: date | None = None
        # The lines loaded from the days a run reads again (the lookback): key -> [order date, content
        # digest]. A line read again unchanged is counted, not loaded, so an API with nothing new costs
        # nothing downstream (no load, no dbt build).
        recent: dict[str, list[str]] = dict(state.get("recent", {}))
        # our hook replaces RESTClient's default one, which raised on an error status: keep that too
        hooks = {"response": [_refuse_a_wrong_key, _raise_for_status]}
        pages = client.paginate(endpoint, params=params, hooks=hooks)
        digests: set[str] = set()  # of the records read in this run
        totals: set[Any] = set()  # total_records as each page gave it
        for page_number, page in enumerate(pages, start=1):
            stats.pages += 1
            totals.add(_total_records(page))
            records = _not_read_before(page, digests, stats)
            table = _records_table(records, shape.columns)
            result = validate_orders(
                table,
                shape=shape,
                date_format=date_format,
                seen_keys=seen_keys,
                source_name="sales_api",
                source_file=None,
                lines=None,
                loaded_at=loaded_at,
            )
            stats.read += table.num_rows
            good = result.good
            if good.num_rows:
                page_max = pc.max(good.column("order_date")).as_py()
                max_date = page_max if max_date is None else max(max_date, page_max)
                good = _changed_lines(good, recent, stats)
            stats.loaded += good.num_rows
            if good.num_rows:
                yield good.set_column(
                    good.schema.get_field_index("_source_file"),
                    "_source_file",
                    pa.array([f"api page {page_number}"] * good.num_rows, pa.string()),
                )
            if result.rejected_index:
                stats.rejected += len(result.rejected_index)
                yield quarantined(
                    [
                        rejection(
                            source_name="sales_api",
                            locator=f"{endpoint} page {page_number}, record {i + 1}",
                            api_page=page_number,
                            raw_record=records[i],
                            reason=reason,
                            rejected_at=loaded_at,
                        )
                        for i, reason in zip(result.rejected_index, result.reasons, strict=True)
                    ]
                )
        _advance_cursor(state, max_date, totals, recent, lookback_days, stats)

    return api_orders


def _not_read_before(page: Any, digests: set[str], stats: LoadStats) -> list[Any]:
    """The page's records not read earlier in this run. A record shifted onto the next page (one added
    above it while the run paged) is read twice: the same record again is not a second line, and is
    counted as unchanged."""
    records = []
    for record in page:
        digest = row_hash({"r": record}, ("r",))
        if digest in digests:
            stats.unchanged += 1
            stats.read += 1
        else:
            digests.add(digest)
            records.append(record)
    return records


def _advance_cursor(
    state: dict[str, Any],
    max_date: date | None,
    totals: set[Any],
    recent: dict[str, list[str]],
    lookback_days: int,
    stats: LoadStats,
) -> None:
    """The next window: the cursor moves to the newest order date read, unless the API's records
    changed while they were read; the lines of the days the next run reads again are kept."""
    cursor = state.get("cursor")
    if len(totals) > 1:
        # Records came or went while the run paged: one may have moved onto a page already read
        # and been missed. The cursor stays, so the next run reads this window again (its lines
        # read again unchanged cost nothing).
        stats.notes.append(
            f"the API's records changed while they were read (total_records {sorted(totals, key=str)}): "
            "the cursor stays where it was, and the next run reads the window again"
        )
    elif max_date is not None and (cursor is None or max_date.isoformat() > cursor):
        state["cursor"] = max_date.isoformat()
    stats.cursor = state.get("cursor")
    # keep the lines of the days the next run reads again (all of them while there is no cursor)
    keep_from = ""
    if state.get("cursor"):
        keep_from = (date.fromisoformat(state["cursor"]) - timedelta(days=lookback_days)).isoformat()
    state["recent"] = {key: line for key, line in recent.items() if line[0] >= keep_from}


def _total_records(page: Any) -> Any:
    """The ``total_records`` a page of the API reported (None when it did not say)."""
    try:
        return page.response.json().get("total_records")
    except (AttributeError, ValueError):
        return None


def _refuse_a_wrong_key(response: Any, *args: Any, **kwargs: Any) -> None:
    """A key the API refuses is a setting to fix: said at once, never retried."""
    if response.status_code in (401, 403):
        raise ConfigurationError(
            f"the sales API refused the API key (HTTP {response.status_code} from {response.request.method} "
            f"{response.request.path_url.split('?')[0]}): fix sources.sales_api.api_key"
        )


def _raise_for_status(response: Any, *args: Any, **kwargs: Any) -> None:
    response.raise_for_status()


def _changed_lines(good: pa.Table, recent: dict[str, list[str]], stats: LoadStats) -> pa.Table:
    """The lines of ``good`` that are new or differ from the version loaded before (by ``recent``, which
    is updated); the others are counted as unchanged."""
    rows = good.select([*ORDER_COLUMNS, "line_key"]).to_pylist()
    keep = []
    for row in rows:
        key = "\x1f".join(str(row[name]) for name in MERGE_KEY)
        line = [row["order_date"].isoformat(), row_hash(row, ORDER_COLUMNS)]
        keep.append(recent.get(key) != line)
        recent[key] = line
    unchanged = keep.count(False)
    stats.unchanged += unchanged
    return good.filter(pa.array(keep)) if unchanged else good


def _window_start(
    cursor: str | None,
    days: int | None,
    initial_start_date: str | None,
    lookback_days: int,
    today: date,
) -> date:
    if days is not None:
        if days < 0:
            raise ConfigurationError("--days must be zero or more")
        return today - timedelta(days=days)
    if cursor:
        return date.fromisoformat(cursor) - timedelta(days=lookback_days)
    if initial_start_date:
        return date.fromisoformat(initial_start_date)
    return today - timedelta(days=30)


def _records_table(records: list[Any], column_map: dict[str, str]) -> pa.Table:
    """API records as canonical string columns (the same checks as the CSV path)."""

    def text(value: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, dict | list):
            return json.dumps(value)
        return str(value)

    columns = {
        canonical: pa.array(
            [text(r.get(field)) if isinstance(r, dict) else None for r in records], pa.string()
        )
        for canonical, field in column_map.items()
    }
    return pa.table(columns)


# --------------------------------------------------------------------------------------------------
# Users CSV
# --------------------------------------------------------------------------------------------------

_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dlt.source(name="sales_users", max_table_nesting=0)
def sales_users(
    users_path: str = dlt.config.value,
    roles: list[str] = dlt.config.value,
    encoding: str = "utf-8",
    delimiter: str = ",",
    existing: dict[str, str] | None = None,
    stats: LoadStats | None = None,
    full_refresh: bool = False,
    settle_seconds: float = DEFAULT_SETTLE_SECONDS,
    argon2_profile: str = "RFC_9106_LOW_MEMORY",
) -> Any:
    """Users from CSV files (``username, email, role, initial_password``).

    Usernames and emails are trimmed and lower-cased and must be unique (also against users already
    in the warehouse, given as ``existing``: email -> username); roles must be in ``roles``. The
    password is never stored as given: it is hashed with Argon2id, with the parameters of the argon2-cffi
    profile ``argon2_profile`` (default RFC 9106's low-memory one: 64 MiB, 3 passes, about 0.15 s a
    password here; ``CHEAPEST`` is for tests only). A rejected row keeps none of its
    values (each shows as ***) and its reason quotes none: a missing field shifts the password into
    another column, an unquoted comma splits it. Headers are
    matched without case and spacing (``Initial_Password``).
    """
    folder = Path(users_path)
    folder = folder if folder.is_absolute() else ROOT / folder
    allowed = {role.strip().lower() for role in roles} or set(DEFAULT_ROLES)
    stats = stats or LoadStats()
    hasher = _password_hasher(argon2_profile)

    @dlt.resource(
        name="users",
        write_disposition={"disposition": "merge", "strategy": "delete-insert"},
        primary_key="username",
        columns={"password_hash": {"data_type": "text", "nullable": True}},
    )
    def users() -> Iterator[Any]:
        state = dlt.current.resource_state()
        if full_refresh:
            state.clear()
        loaded: dict[str, str] = state.setdefault("files", {})
        known = _UserChecks(allowed, dict(existing or {}))
        loaded_at = _now()
        if not folder.exists():
            raise ConfigurationError(
                f"users CSV path {folder} does not exist; fix sources.sales_users.users_path"
            )
        files = [folder] if folder.is_file() else sorted(folder.glob("*.csv"))
        for file_id, reader in files_to_read(((f.name, f) for f in files), loaded, stats, settle_seconds):
            yield from _users_from_file(reader, file_id, encoding, delimiter, known, loaded_at, stats, hasher)
        stats.cursor = loaded_at.isoformat()

    return users


def _password_hasher(profile: str) -> Any:
    """An Argon2id hasher with the parameters of argon2-cffi's profile named ``profile``."""
    from argon2 import PasswordHasher, Type, profiles

    parameters = getattr(profiles, profile, None) if profile.isupper() else None
    if parameters is None or parameters.type is not Type.ID:
        choices = ", ".join(name for name in dir(profiles) if name.isupper())
        raise ConfigurationError(
            f"unknown argon2_profile {profile!r}: fix sources.sales_users.argon2_profile (one of {choices})"
        )
    return PasswordHasher.from_parameters(parameters)


@dataclass
class _UserChecks:
    """What a user row is checked against: the roles allowed, the emails known (warehouse and this
    run), the usernames of this run."""

    allowed: set[str]
    emails: dict[str, str]
    usernames: dict[str, str] = field(default_factory=dict)  # username -> file:line that had it


def _users_from_file(
    reader: HashingReader,
    file_id: str,
    encoding: str,
    delimiter: str,
    known: _UserChecks,
    loaded_at: datetime,
    stats: LoadStats,
    hasher: Any,
) -> Iterator[Any]:
    import csv
    import io

    good: list[dict[str, Any]] = []
    bad: list[dict[str, Any]] = []

    def reject(line: int | None, raw: Any, reason: str, *, locator: str | None = None) -> None:
        bad.append(
            rejection(
                source_name="sales_users",
                locator=locator or f"{file_id}:{line}",
                source_file=file_id,
                source_line=line,
                raw_record=raw,
                reason=reason,
                rejected_at=loaded_at,
            )
        )

    marked, length = byte_order_mark(reader)
    if marked:
        reader.skip(length)
    text = io.TextIOWrapper(reader, encoding=marked or encoding, newline="")
    try:
        rows = csv.reader(text, delimiter=delimiter)
        header = next(rows, None)
        position = _user_header(header)  # canonical column -> index in the file
        for values in rows:
            line = rows.line_num
            if not any(value.strip() for value in values):
                continue  # a blank line is not a record
            stats.read += 1
            if len(values) != len(header or ()):
                reject(
                    line,
                    f"{len(values)} fields (values not stored: one may be a password)",
                    f"{len(values)} fields where the header has {len(header or ())}: a field is missing "
                    "or a value holds an unquoted delimiter",
                )
                continue
            record = {name: values[index] for name, index in position.items()}
            username = record["username"].strip().lower()
            email = record["email"].strip().lower()
            role = record["role"].strip().lower()
            password = record.get("initial_password", "")
            problem = _user_problem(username, email, role, known.allowed, known.emails, known.usernames)
            if problem:
                # no value is kept: a field missing earlier in the row (made up for by an empty one at
                # its end) can put the password in any column; the file and line say where to look
                masked = {name: "***" if value else "" for name, value in zip(header, values, strict=True)}
                reject(line, masked, problem)
                continue
            known.usernames[username] = f"{file_id}:{line}"
            known.emails[email] = username
            good.append(
                {
                    "username": username,
                    "email": email,
                    "role": role,
                    "password_hash": hasher.hash(password) if password else None,
                    "_source_file": file_id,
                    "_source_line": line,
                    "_loaded_at": loaded_at,
                }
            )
    except (FileRejected, UnicodeDecodeError, csv.Error) as exc:
        where = f" (line {rows.line_num + 1})" if isinstance(exc, UnicodeDecodeError | csv.Error) else ""
        stats.read += 1
        stats.files_rejected.append(f"{file_id}: {exc}")
        reject(None, "", f"file not read{where}: {exc}", locator=file_id)
    finally:
        text.detach()  # the reader stays open: its caller finishes the hash
    stats.loaded += len(good)
    stats.rejected += len(bad)
    if good:
        yield good
    if bad:
        yield quarantined(bad)


def _user_header(header: list[str] | None) -> dict[str, int]:
    """Where each user column is in the header (matched without case and spacing); raise
    ``FileRejected`` for a file without the required ones or with a column named twice."""
    if not header or not any(name.strip() for name in header):
        raise FileRejected("the file is empty: no header line")
    columns = {header_key(column): column for column in USER_COLUMNS}
    position: dict[str, int] = {}
    for index, name in enumerate(header):
        column = columns.get(header_key(name))
        if column is not None:
            if column in position:
                raise FileRejected(f"the header names {column} twice: rename one of them")
            position[column] = index
    missing = [name for name in ("username", "email", "role") if name not in position]
    if missing:
        raise FileRejected(
            f"missing header(s) {missing} (the file has {header[:10]}); "
            "expected username, email, role, initial_password"
        )
    return position


def _user_problem(
    username: str,
    email: str,
    role: str,
    allowed: set[str],
    emails: dict[str, str],
    seen_usernames: dict[str, str],
) -> str | None:
    """What is wrong with a user row, without quoting any of its values: after a missing field any
    column may hold the password, so a reason names columns and lines, never contents."""
    problems = []
    if not username:
        problems.append("missing username")
    elif not _USERNAME.match(username):
        problems.append("username may hold only letters, digits, '.', '_' and '-' (2-64)")
    if not email:
        problems.append("missing email")
    elif not _EMAIL.match(email):
        problems.append("email is not an address")
    if role not in allowed:
        problems.append(f"role is not one of {', '.join(sorted(allowed))}")
    if not problems and username in seen_usernames:
        problems.append(f"duplicate username: {seen_usernames[username]} has it")
    if not problems and emails.get(email, username) != username:
        problems.append("email already belongs to another user")
    return "; ".join(problems) or None
