"""Helpers for the tests that meet the project as an operator does: ``elt`` run as a process of its own,
killed, run twice at once, started on a fresh machine; and every table compared with a clean run's."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from loaders.common.warehouse import ROOT, Warehouse

ELT = str(Path(sys.executable).with_name("elt"))
KILLPOINTS = Path(__file__).resolve().parent / "killpoints"
# Columns that differ between two runs of the same data: dlt's load ids and row ids (and the parent
# links made of them), the moment a row was loaded or rejected, dbt's snapshot bookkeeping, and
# Argon2 hashes (salted afresh each time a password is hashed).
VOLATILE_PREFIXES = ("_dlt", "dbt_")
VOLATILE_SUFFIXES = ("loaded_at", "rejected_at")
VOLATILE_COLUMNS = ("password_hash",)


def elt_env(warehouse_env: dict[str, str], **extra: str) -> dict[str, str]:
    """The environment of an ``elt`` process: this one's, the warehouse's and ``extra``, with a marker
    that its children inherit (see ``leftover_processes``)."""
    # a heartbeat every 0.2 s, so that even these short runs beat while dlt and dbt hold the warehouse
    marker = {"ELT_TEST_MARKER": uuid.uuid4().hex, "ELT_HEARTBEAT_SECONDS": "0.2"}
    return os.environ | warehouse_env | marker | extra


def start(args: list[str], env: dict[str, str], kill_at: str | None = None) -> subprocess.Popen[str]:
    """``elt ARGS`` in a process of its own; ``kill_at`` makes it SIGKILL itself there
    (``tests/killpoints/sitecustomize.py``)."""
    if kill_at:
        env = env | {"ELT_TEST_KILL_AT": kill_at, "PYTHONPATH": str(KILLPOINTS)}
    return subprocess.Popen(
        [ELT, *args], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(process: subprocess.Popen[str], timeout: float = 600) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def elt(args: list[str], env: dict[str, str], **kwargs: Any) -> tuple[int, str, str]:
    return finish(start(args, env, **kwargs))


def leftover_processes(marker: str) -> list[str]:
    """Processes still alive that inherited ``ELT_TEST_MARKER=marker`` (a Prefect server, a worker...)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes()
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if f"ELT_TEST_MARKER={marker}".encode() in environ.split(b"\0"):
            found.append(f"{proc.name}: {cmdline.strip()}")
    return found


def _volatile(column: str) -> bool:
    return (
        column.startswith(VOLATILE_PREFIXES)
        or column.endswith(VOLATILE_SUFFIXES)
        or column in VOLATILE_COLUMNS
    )


def fingerprint(warehouse: Warehouse) -> dict[str, tuple[int, int, str]]:
    """Every raw and mart table: (rows, distinct rows, digest of its sorted rows), leaving out the columns
    that differ between two loads of the same data (``VOLATILE_*``). Two warehouses with equal
    fingerprints hold the same rows, each as many times."""
    tables = warehouse.query(
        "select table_schema, table_name from information_schema.tables "
        "where (table_schema like 'raw_%' and table_schema not like '%_staging') or table_schema = 'marts' "
        "order by 1, 2"
    )
    result = {}
    for schema, table in tables:
        if table.startswith("_dlt"):
            continue  # dlt's bookkeeping: one row per load, so it differs by design
        columns = [
            name
            for (name,) in warehouse.query(
                "select column_name from information_schema.columns where table_schema = "
                f"{warehouse.paramstyle} and table_name = {warehouse.paramstyle} order by column_name",
                (schema, table),
            )
            if not _volatile(name)
        ]
        selected = ", ".join(f'"{name}"' for name in columns)
        rows = sorted(
            repr(tuple(str(value) for value in row))
            for row in warehouse.query(f'select {selected} from {schema}."{table}"')
        )
        digest = hashlib.sha256("\n".join(rows).encode()).hexdigest()
        result[f"{schema}.{table}"] = (len(rows), len(set(rows)), digest)
    return result


def heartbeat_after_start(warehouse: Warehouse, sync_run_id_of: str) -> float:
    """Seconds from the start of the oldest ``sync_run_id_of`` attempt to its last heartbeat."""
    started, beat = warehouse.query(
        "select started_at, heartbeat_at from audit.sync_runs where sync_type = "
        f"{warehouse.paramstyle} order by started_at limit 1",
        (sync_run_id_of,),
    )[0]
    return (beat - started).total_seconds()


def attempts(warehouse: Warehouse, sync_type: str) -> list[tuple[str, str | None]]:
    """(status, error_message) of each attempt of ``sync_type``, oldest first."""
    return [
        (status, error)
        for status, error in warehouse.query(
            "select status, error_message from audit.sync_runs where sync_type = "
            f"{warehouse.paramstyle} order by started_at",
            (sync_type,),
        )
    ]
