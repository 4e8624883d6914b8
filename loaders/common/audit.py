"""``audit.sync_runs``: one row per sync attempt, written on a connection of its own.

An attempt is written as ``running`` when it starts and completed (``success`` or ``error``) when it
ends, so a run killed half-way still shows. While it runs, its process refreshes ``heartbeat_at``. The
next run, once it holds the warehouse (``loaders.common.lock``: no other run can be alive then), marks
the attempts still ``running`` as ``abandoned``.

dbt builds the views users query (``audit.sync_history``, ``audit.sync_status``) on top of this table.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from loaders.common.warehouse import Warehouse, number_setting, redact

logger = logging.getLogger(__name__)

SYNC_RUNS_DDL = """
create table if not exists audit.sync_runs (
    sync_run_id varchar(64) primary key,
    flow_run_id varchar(64),
    sync_type varchar(128) not null,
    started_at timestamp with time zone not null,
    finished_at timestamp with time zone,
    status varchar(16) not null,
    records_processed bigint,
    records_rejected bigint,
    error_message text,
    service_instance varchar(256),
    cursor_value varchar(64),
    metadata text,
    load_id varchar(64),
    heartbeat_at timestamp with time zone
)
"""
# Warehouses created before attempts were written at their start.
MIGRATIONS = (
    "alter table audit.sync_runs add column if not exists heartbeat_at timestamp with time zone",
    "alter table audit.sync_runs alter column finished_at drop not null",
)

COLUMNS = (
    "sync_run_id",
    "flow_run_id",
    "sync_type",
    "started_at",
    "finished_at",
    "status",
    "records_processed",
    "records_rejected",
    "error_message",
    "service_instance",
    "cursor_value",
    "metadata",
    "load_id",
    "heartbeat_at",
)
HEARTBEAT_SECONDS = 30.0

# One audit write at a time per process: the heartbeat thread and the run never race on a row (DuckDB
# would fail one of two concurrent updates of the same row).
_write_lock = threading.Lock()
_ensured: set[str] = set()


def utcnow() -> datetime:
    return datetime.now(UTC)


def service_instance() -> str:
    """Host and process, so operators can tell which worker made an attempt."""
    return f"{socket.gethostname()}:{os.getpid()}"


def describe_error(exc: BaseException) -> str:
    """The innermost error, which says what went wrong (dlt wraps errors in step errors), on one line
    and redacted; an error raised ``from None`` already says it (its context is a detail it replaces)."""
    inner: BaseException = exc
    seen = set()
    while id(inner) not in seen:
        seen.add(id(inner))
        following = inner.__cause__ or (None if inner.__suppress_context__ else inner.__context__)
        if following is None:
            break
        inner = following
    text = str(inner).strip()
    first = text.splitlines()[0] if text else ""
    return redact(f"{type(inner).__name__}: {first}" if first else type(inner).__name__)


@dataclass
class SyncRun:
    """What one attempt did; ``start`` and ``finish`` (or ``record``) write it to ``audit.sync_runs``."""

    sync_type: str
    flow_run_id: str | None = None
    started_at: datetime = field(default_factory=utcnow)
    finished_at: datetime | None = None
    status: str = "running"
    records_processed: int = 0
    records_rejected: int = 0
    error_message: str | None = None
    cursor_value: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    load_id: str | None = None
    sync_run_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def succeed(self) -> SyncRun:
        self.status = "success"
        self.finished_at = utcnow()
        return self

    def fail(self, error: BaseException | str) -> SyncRun:
        self.status = "error"
        self.finished_at = utcnow()
        message = error if isinstance(error, str) else describe_error(error)
        self.error_message = redact(message)[:4000]
        return self

    @property
    def duration_seconds(self) -> float:
        end = self.finished_at or utcnow()
        return (end - self.started_at).total_seconds()

    def row(self) -> tuple[Any, ...]:
        return (
            self.sync_run_id,
            self.flow_run_id,
            self.sync_type,
            self.started_at,
            self.finished_at,
            self.status,
            self.records_processed,
            self.records_rejected,
            self.error_message,
            service_instance(),
            self.cursor_value,
            json.dumps(self.metadata, default=str, sort_keys=True),
            self.load_id,
            utcnow(),
        )


def ensure_audit_table(warehouse: Warehouse) -> None:
    """Create (or bring up to date) ``audit.sync_runs``; once per process and warehouse."""
    if warehouse.key() in _ensured:
        return
    with _write_lock, warehouse.connect() as conn:
        cur = conn.cursor()
        cur.execute("create schema if not exists audit")
        cur.execute(SYNC_RUNS_DDL)
        cur.execute(
            "select count(*) from information_schema.columns where table_schema = 'audit' "
            "and table_name = 'sync_runs' and column_name = 'heartbeat_at'"
        )
        if not cur.fetchone()[0]:
            if warehouse.target == "postgres":
                # an ALTER waits for readers of the table and then blocks the ones behind it: not for long
                cur.execute("set local lock_timeout = '10s'")
            for statement in MIGRATIONS:
                cur.execute(statement)
    _ensured.add(warehouse.key())


def _execute(warehouse: Warehouse, sql: str, params: tuple[Any, ...]) -> None:
    ensure_audit_table(warehouse)
    try:
        with _write_lock, warehouse.connect() as conn:
            conn.cursor().execute(sql, params)
    except Exception:
        if warehouse.key() not in _ensured:
            raise
        # the table went away under this process (a restore, a new file at the same path): once more
        _ensured.discard(warehouse.key())
        ensure_audit_table(warehouse)
        with _write_lock, warehouse.connect() as conn:
            conn.cursor().execute(sql, params)


def record(warehouse: Warehouse, run: SyncRun) -> None:
    """Write one whole attempt on a connection of its own, so it survives a failed load."""
    placeholders = ", ".join([warehouse.paramstyle] * len(COLUMNS))
    _execute(
        warehouse, f"insert into audit.sync_runs ({', '.join(COLUMNS)}) values ({placeholders})", run.row()
    )


def start(warehouse: Warehouse, run: SyncRun) -> SyncRun:
    """Write the attempt as ``running``, started now (``finish`` completes it)."""
    run.status, run.started_at, run.finished_at = "running", utcnow(), None
    record(warehouse, run)
    return run


def finish(warehouse: Warehouse, run: SyncRun) -> None:
    """Complete an attempt written by ``start`` with its outcome."""
    updated = COLUMNS[1:]
    assignments = ", ".join(f"{column} = {warehouse.paramstyle}" for column in updated)
    _execute(
        warehouse,
        f"update audit.sync_runs set {assignments} where sync_run_id = {warehouse.paramstyle}",
        (*run.row()[1:], run.sync_run_id),
    )


@contextmanager
def attempt(warehouse: Warehouse, run: SyncRun) -> Iterator[SyncRun]:
    """``run`` written as ``running`` now and completed on exit: ``success`` unless the block marked it
    otherwise, ``error`` with the reason when the block raised (and the error goes on)."""
    start(warehouse, run)
    try:
        yield run
    except BaseException as exc:
        if run.status == "running":
            run.fail(exc)
        finish(warehouse, run)
        raise
    if run.status == "running":
        run.succeed()
    finish(warehouse, run)


def beat(warehouse: Warehouse) -> None:
    """Refresh ``heartbeat_at`` of this process's running attempts."""
    _execute(
        warehouse,
        f"update audit.sync_runs set heartbeat_at = {warehouse.paramstyle} "
        f"where status = 'running' and service_instance = {warehouse.paramstyle}",
        (utcnow(), service_instance()),
    )


@contextmanager
def paused() -> Iterator[None]:
    """No audit write from this process (heartbeats wait) until the block ends. On DuckDB, dlt and dbt
    open the file in instances of their own, and DuckDB (1.4 and later) can fail an open of a file that
    another thread of the process opens or closes at that moment ("Unique file handle conflict",
    duckdb/duckdb-python#392), as a heartbeat does."""
    with _write_lock:
        yield


def heartbeat_seconds() -> float:
    """``ELT_HEARTBEAT_SECONDS``: how often a running attempt says it is alive (30 s by default)."""
    return number_setting("ELT_HEARTBEAT_SECONDS", HEARTBEAT_SECONDS, minimum=0.05)


@contextmanager
def heartbeat(
    warehouse: Warehouse,
    every_seconds: float | None = None,
    also: Callable[[], None] | None = None,
) -> Iterator[None]:
    """Refresh the heartbeat of this process's running attempts every ``every_seconds``
    (``ELT_HEARTBEAT_SECONDS``) until the block ends, calling ``also`` at each beat."""
    interval = every_seconds or heartbeat_seconds()
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval):
            if also is not None:
                also()
            try:
                beat(warehouse)
            except Exception as exc:  # a missed beat is not worth failing a run for
                logger.warning("heartbeat not written: %s", describe_error(exc))

    thread = threading.Thread(target=loop, name="elt-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def mark_abandoned(warehouse: Warehouse) -> int:
    """Mark every attempt still ``running`` as ``abandoned``; call it only while holding the warehouse
    lock (then no other run is alive, so those attempts' processes are gone). Returns how many."""
    ensure_audit_table(warehouse)
    rows = warehouse.query(
        "select sync_run_id, service_instance, started_at, heartbeat_at from audit.sync_runs "
        "where status = 'running'"
    )
    for run_id, instance, started_at, heartbeat_at in rows:
        last = heartbeat_at or started_at
        message = (
            f"abandoned: process {instance} ended without finishing (killed or lost); "
            f"started {_stamp(started_at)}, last heartbeat {_stamp(last)}"
        )
        _execute(
            warehouse,
            f"update audit.sync_runs set status = 'abandoned', error_message = {warehouse.paramstyle} "
            f"where sync_run_id = {warehouse.paramstyle} and status = 'running'",
            (message, run_id),
        )
    return len(rows)


def _stamp(value: Any) -> str:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return str(value)
