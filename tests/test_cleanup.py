"""``elt cleanup``: planted old backups, audit attempts, working folders of dead runs and orphaned
attachments go; recent and referenced ones stay; ``--dry-run`` removes nothing. Both targets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cleanup import cleanup
from flows.cli import app
from loaders.common.warehouse import Warehouse
from tests.test_status import plant

runner = CliRunner()
DAY = 86400.0


def aged(path: Path, days: float) -> Path:
    moment = time.time() - days * DAY
    os.utime(path, (moment, moment))
    return path


def dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(done.stdout)


@pytest.fixture
def planted(warehouse: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    backups, storage, temp = tmp_path / "backups", tmp_path / "attachments", tmp_path / "tmp"
    monkeypatch.setenv("ELT_BACKUP_DIR", str(backups))
    monkeypatch.setenv("SOURCES__ODK_CENTRAL__ATTACHMENTS_STORAGE", str(storage))
    backups.mkdir()
    (backups / "warehouse-20250101T000000Z").mkdir()
    (backups / "warehouse-20250101T000000Z" / "orders.parquet").write_bytes(b"x" * 1000)
    aged(backups / "warehouse-20250101T000000Z", 60)
    for name, days, size in (("elt-20251001T000000Z.dump", 40, 500), ("elt-20261130T000000Z.dump", 1, 10)):
        (backups / name).write_bytes(b"y" * size)
        aged(backups / name, days)
    (backups / "notes.txt").write_text("not a backup")
    aged(backups / "notes.txt", 90)

    # attempts: sales_csv has an old success and an old failure behind a recent success (both go);
    # odk_central's only attempt, registration's latest attempt and latest success, a running one stay
    plant(warehouse, "sales_csv", "success", 200 * 24)
    plant(warehouse, "sales_csv", "error", 190 * 24, error_message="ValueError: old")
    plant(warehouse, "sales_csv", "success", 24)
    plant(warehouse, "odk_central", "success", 300 * 24)
    plant(warehouse, "registration", "success", 250 * 24)
    plant(warehouse, "registration", "error", 200 * 24, error_message="ValueError: still the latest")
    plant(warehouse, "elt_run", "running", 400 * 24)

    temp.mkdir()
    dead = temp / f"elt-sales_csv-{dead_pid()}-abc"
    (dead / "load").mkdir(parents=True)
    (dead / "load" / "package.parquet").write_bytes(b"p" * 300)
    (temp / f"elt-odk_central-{os.getpid()}-xyz").mkdir()  # this process: alive

    for name, days in (("a.png", 30), ("b.png", 10), ("c.png", 1)):
        path = storage / "1" / "rental_survey" / "uuid-s1" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"i" * 100)
        aged(path, days)
    with warehouse.connect() as conn:
        cur = conn.cursor()
        cur.execute("create schema if not exists raw_odk_central")
        cur.execute("create table raw_odk_central.attachments (storage_key text)")
        cur.execute(
            "insert into raw_odk_central.attachments values ('1/rental_survey/uuid-s1/a.png'), (null)"
        )
        # a failed run's candidate, kept for inspection (flows/publish.py)
        cur.execute("create schema marts__candidate")
        cur.execute("create table marts__candidate.fct_sales (order_line_id text)")
    return {"backups": backups, "storage": storage, "temp": temp, "dead": dead}


def state(warehouse: Warehouse, places: dict[str, Path]) -> dict[str, object]:
    return {
        "backups": sorted(path.name for path in places["backups"].iterdir()),
        "attachments": sorted(path.name for path in places["storage"].rglob("*.png")),
        "workdirs": sorted(path.name for path in places["temp"].iterdir()),
        "attempts": sorted(
            warehouse.query("select sync_type, status from audit.sync_runs where sync_type <> 'cleanup'")
        ),
        "schemas": sorted(
            name
            for (name,) in warehouse.query("select schema_name from information_schema.schemata")
            if name.endswith("__candidate")
        ),
    }


def test_a_dry_run_lists_and_removes_nothing_then_cleanup_removes_only_what_is_past_retention(
    warehouse: Warehouse, planted: dict[str, Path]
) -> None:
    before = state(warehouse, planted)

    dry = cleanup(warehouse, dry_run=True, temp_root=planted["temp"])

    assert state(warehouse, planted) == before
    assert dry.totals() == {
        "backup": {"count": 2, "bytes": 1500},
        "audit attempts": {"count": 2, "bytes": 0},
        "workdir": {"count": 1, "bytes": 300},
        "attachment": {"count": 1, "bytes": 100},
        "candidate": {"count": 1, "bytes": 0},
    }
    assert {r.what for r in dry.removals if r.kind == "attachment"} == {"1/rental_survey/uuid-s1/b.png"}

    done = cleanup(warehouse, temp_root=planted["temp"])

    assert done.totals() == dry.totals()
    after = state(warehouse, planted)
    assert after["backups"] == ["elt-20261130T000000Z.dump", "notes.txt"]
    assert after["attachments"] == ["a.png", "c.png"]  # referenced, and too recent to judge
    assert after["workdirs"] == [f"elt-odk_central-{os.getpid()}-xyz"]
    assert before["schemas"] == ["marts__candidate"] and after["schemas"] == []
    assert after["attempts"] == sorted(
        [
            ("sales_csv", "success"),
            ("odk_central", "success"),
            ("registration", "success"),
            ("registration", "error"),
            ("elt_run", "running"),
        ]
    )
    recorded = warehouse.query(
        "select status, records_processed, metadata from audit.sync_runs where sync_type = 'cleanup'"
    )
    assert [(status, count) for status, count, _ in recorded] == [("success", 7)]
    assert json.loads(recorded[0][2])["removed"]["backup"] == {"count": 2, "bytes": 1500}

    again = cleanup(warehouse, temp_root=planted["temp"])
    assert again.totals() == {}


def test_the_newest_backup_is_kept_however_old(warehouse: Warehouse, tmp_path: Path, monkeypatch) -> None:
    backups = tmp_path / "backups"
    monkeypatch.setenv("ELT_BACKUP_DIR", str(backups))
    for name, days in (("w-20240101T000000Z", 400), ("w-20240201T000000Z", 370)):
        (backups / name).mkdir(parents=True)
        aged(backups / name, days)

    cleanup(warehouse, temp_root=tmp_path / "none")

    assert [path.name for path in backups.iterdir()] == ["w-20240201T000000Z"]


def test_the_command_dry_run_and_limits_from_configuration(
    warehouse: Warehouse, planted: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETENTION__BACKUP_DAYS", "50")  # the 40-day-old dump stays
    monkeypatch.setenv("TMPDIR", str(planted["temp"]))

    dry = runner.invoke(app, ["cleanup", "--dry-run", "--target", warehouse.target])

    assert dry.exit_code == 0, dry.output
    assert dry.output.startswith("Would remove:")
    assert "warehouse-20250101T000000Z" in dry.output and "elt-20251001T000000Z.dump" not in dry.output
    assert len(list(planted["backups"].iterdir())) == 4

    monkeypatch.setenv("RETENTION__AUDIT_DAYS", "-1")
    refused = runner.invoke(app, ["cleanup", "--target", warehouse.target])
    assert refused.exit_code == 2 and "retention.audit_days must be 0 or more days" in refused.output
