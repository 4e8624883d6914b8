"""Attempts are written when they start, kept alive by a heartbeat, and marked abandoned once their
process is gone; the warehouse lock lets one run at a time in and names the one holding it."""

from __future__ import annotations

import os
import socket
import time

import pytest

from loaders.common import audit
from loaders.common.lock import WarehouseLock
from loaders.common.warehouse import Warehouse, WarehouseBusy


def _row(warehouse: Warehouse, run: audit.SyncRun) -> tuple:
    return warehouse.query(
        "select status, finished_at, heartbeat_at, error_message from audit.sync_runs "
        f"where sync_run_id = {warehouse.paramstyle}",
        (run.sync_run_id,),
    )[0]


def test_an_attempt_is_running_until_it_ends_and_its_heartbeat_moves(warehouse: Warehouse) -> None:
    run = audit.SyncRun(sync_type="sales_csv")
    with audit.heartbeat(warehouse, every_seconds=0.1), audit.attempt(warehouse, run):
        status, finished_at, first_beat, _ = _row(warehouse, run)
        assert (status, finished_at) == ("running", None)
        time.sleep(0.5)
        assert _row(warehouse, run)[2] > first_beat

    status, finished_at, _, error = _row(warehouse, run)
    assert status == "success" and finished_at is not None and error is None


def test_an_attempt_that_raises_is_recorded_as_an_error(warehouse: Warehouse) -> None:
    run = audit.SyncRun(sync_type="dbt_build")
    with pytest.raises(ModuleNotFoundError), audit.attempt(warehouse, run):
        raise ModuleNotFoundError("No module named 'dbt.cli'")

    status, finished_at, _, error = _row(warehouse, run)
    assert status == "error" and finished_at is not None
    assert error == "ModuleNotFoundError: No module named 'dbt.cli'"


def test_attempts_left_running_are_marked_abandoned_with_their_process(warehouse: Warehouse) -> None:
    dead = audit.start(warehouse, audit.SyncRun(sync_type="odk_central"))
    done = audit.SyncRun(sync_type="sales_api")
    with audit.attempt(warehouse, done):
        pass

    assert audit.mark_abandoned(warehouse) == 1

    status, finished_at, _, error = _row(warehouse, dead)
    assert status == "abandoned" and finished_at is None
    assert f"{socket.gethostname()}:{os.getpid()} ended without finishing" in error
    assert "last heartbeat" in error
    assert _row(warehouse, done)[0] == "success"
    assert audit.mark_abandoned(warehouse) == 0


def test_the_lock_lets_one_run_in_and_names_it_to_the_next(warehouse: Warehouse) -> None:
    first = WarehouseLock(warehouse, "run-one")
    with first.held(0):
        second = WarehouseLock(warehouse, "run-two")
        started = time.monotonic()
        with pytest.raises(WarehouseBusy) as busy:
            second.acquire(0.6)
        assert time.monotonic() - started >= 0.5  # it waited before giving up
        message = str(busy.value)
        assert f"run run-one (host {socket.gethostname()}, pid {os.getpid()}, started 20" in message
        assert "waited 0.6 s" in message
    with WarehouseLock(warehouse, "run-two").held(0):
        pass  # free again once the first let go


def test_an_audit_table_of_an_earlier_version_is_brought_up_to_date(warehouse: Warehouse) -> None:
    """Warehouses made before attempts were written at their start: finished_at was required and there
    was no heartbeat column."""
    earlier = audit.SYNC_RUNS_DDL.replace(
        "finished_at timestamp with time zone,", "finished_at timestamp with time zone not null,"
    ).replace(",\n    heartbeat_at timestamp with time zone", "")
    assert "heartbeat_at" not in earlier and "not null," in earlier
    with warehouse.connect() as conn:
        cur = conn.cursor()
        cur.execute("create schema audit")
        cur.execute(earlier)
        cur.execute(
            "insert into audit.sync_runs (sync_run_id, sync_type, started_at, finished_at, status) "
            "values ('old', 'sales_csv', current_timestamp, current_timestamp, 'success')"
        )
    columns = "select column_name from information_schema.columns where table_name = 'sync_runs'"
    audit._ensured.discard(warehouse.key())

    run = audit.start(warehouse, audit.SyncRun(sync_type="sales_csv"))

    assert "heartbeat_at" in {name for (name,) in warehouse.query(columns)}
    assert _row(warehouse, run)[:2] == ("running", None)
    assert warehouse.query("select status from audit.sync_runs where sync_run_id = 'old'") == [("success",)]


@pytest.mark.parametrize("target", ["postgres"])
def test_a_run_whose_lock_session_ends_takes_it_again_or_says_it_lost_it(warehouse: Warehouse) -> None:
    lock = WarehouseLock(warehouse, "run-one")
    with lock.held(0):
        warehouse.query(f"select pg_terminate_backend({lock._conn.get_backend_pid()})")
        assert lock.verify() is None  # taken again: nobody else had it meanwhile

        warehouse.query(f"select pg_terminate_backend({lock._conn.get_backend_pid()})")
        other = WarehouseLock(warehouse, "run-two")
        other.acquire(0)
        try:
            problem = lock.verify()
        finally:
            other.release()

    assert problem is not None and "run run-two" in problem


@pytest.mark.parametrize("target", ["duckdb"])
def test_heartbeats_wait_while_dbt_holds_the_duckdb_file(warehouse: Warehouse) -> None:
    """dbt-duckdb attaches the file in an instance of its own, which fails if a heartbeat of the same
    process has it open at that moment ("Unique file handle conflict"): heartbeats wait for dbt."""
    from flows.dbt_runner import invoke

    results = []
    with audit.heartbeat(warehouse, every_seconds=0.002):
        for _ in range(5):
            results.append(invoke(warehouse, "seed", ["kenya_county_demographics"]))
    assert [r.error for r in results if not r.success] == []
