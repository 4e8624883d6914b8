"""``audit.sync_runs``: one row per sync attempt, written on a connection of its own.

dbt builds the views users query (``audit.sync_history``, ``audit.sync_status``) on top of this table.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from loaders.common.warehouse import Warehouse, redact

SYNC_RUNS_DDL = """
create table if not exists audit.sync_runs (
    sync_run_id varchar(64) primary key,
    flow_run_id varchar(64),
    sync_type varchar(128) not null,
    started_at timestamp with time zone not null,
    finished_at timestamp with time zone not null,
    status varchar(16) not null,
    records_processed bigint,
    records_rejected bigint,
    error_message text,
    service_instance varchar(256),
    cursor_value varchar(64),
    metadata text,
    load_id varchar(64)
)
"""

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
)


def utcnow() -> datetime:
    return datetime.now(UTC)


def service_instance() -> str:
    """Host and process, so operators can tell which worker made an attempt."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class SyncRun:
    """What one attempt did; ``record`` writes it to ``audit.sync_runs``."""

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
        message = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
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
            self.finished_at or utcnow(),
            self.status,
            self.records_processed,
            self.records_rejected,
            self.error_message,
            service_instance(),
            self.cursor_value,
            json.dumps(self.metadata, default=str, sort_keys=True),
            self.load_id,
        )


def ensure_audit_table(warehouse: Warehouse) -> None:
    with warehouse.connect() as conn:
        cur = conn.cursor()
        cur.execute("create schema if not exists audit")
        cur.execute(SYNC_RUNS_DDL)


def record(warehouse: Warehouse, run: SyncRun) -> None:
    """Write one attempt on a connection of its own, so it survives a failed load."""
    placeholders = ", ".join([warehouse.paramstyle] * len(COLUMNS))
    with warehouse.connect() as conn:
        cur = conn.cursor()
        cur.execute("create schema if not exists audit")
        cur.execute(SYNC_RUNS_DDL)
        cur.execute(
            f"insert into audit.sync_runs ({', '.join(COLUMNS)}) values ({placeholders})",
            run.row(),
        )
