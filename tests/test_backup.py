"""elt backup and elt restore on both targets: a restore brings back exactly what was backed up."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from loaders.common import audit
from loaders.common.lock import WarehouseLock
from loaders.common.quarantine import LoadStats
from loaders.common.warehouse import Warehouse
from loaders.registry import RunOptions, run_sync
from testing.samples import communities as samples
from tests.test_cleanup import aged


def test_a_backup_restores_what_was_there(
    warehouse: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    samples.generate(tmp_path / "records")
    monkeypatch.setenv("SOURCES__COMMUNITIES__FILES_PATH", str(tmp_path / "records"))
    loaded = LoadStats()
    run_sync("communities", warehouse, RunOptions(), loaded)
    query = "select record_id, estimated_population, is_deleted from raw_communities.records order by 1"
    before = warehouse.query(query)
    backup = tmp_path / ("backup.dump" if warehouse.target == "postgres" else "backup")
    cli = CliRunner()

    written = cli.invoke(app, ["backup", "--output", str(backup), "--target", warehouse.target])

    assert written.exit_code == 0, written.output
    assert backup.exists()
    with warehouse.connect() as conn:
        conn.cursor().execute("delete from raw_communities.records where record_id like 'CR-10%'")
    assert len(warehouse.query(query)) < len(before)

    refused = cli.invoke(app, ["restore", str(backup), "--target", warehouse.target])
    assert refused.exit_code == 2 and "--yes" in refused.output
    restored = cli.invoke(app, ["restore", str(backup), "--yes", "--target", warehouse.target])

    assert restored.exit_code == 0, restored.output
    assert warehouse.query(query) == before
    # the dlt state came back too: the next load knows the files and skips them unread
    stats = LoadStats()
    run_sync("communities", warehouse, RunOptions(), stats)
    files = sorted(path.name for path in (tmp_path / "records").glob("*.csv"))
    assert (stats.read, stats.loaded) == (0, 0) and stats.files_skipped == files
    assert stats.cursor == loaded.cursor is not None


def test_a_backup_into_the_backup_folder_rotates_it(
    warehouse: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``elt backup`` keeps its own rotation: what is older than retention.backup_days goes, the rest
    and anything that is not a backup stay."""
    folder = tmp_path / "backups"
    monkeypatch.setenv("ELT_BACKUP_DIR", str(folder))
    monkeypatch.setenv("RETENTION__BACKUP_DAYS", "10")
    folder.mkdir()
    planted = {"w-20250101T000000Z": 40, "w-20261101T000000Z.dump": 20, "w-20261130T000000Z.dump": 2}
    for name, days in planted.items():
        (folder / name).write_bytes(b"x")
        aged(folder / name, days)
    (folder / "notes.txt").write_text("not a backup")
    aged(folder / "notes.txt", 90)
    audit.ensure_audit_table(warehouse)

    written = CliRunner().invoke(app, ["backup", "--target", warehouse.target])

    assert written.exit_code == 0, written.output
    kept = sorted(path.name for path in folder.iterdir())
    assert len(kept) == 3 and "w-20261130T000000Z.dump" in kept and "notes.txt" in kept
    (metadata,) = warehouse.query("select metadata from audit.sync_runs where sync_type = 'backup'")[0]
    assert sorted(Path(gone).name for gone in json.loads(metadata)["rotated"]) == [
        "w-20250101T000000Z",
        "w-20261101T000000Z.dump",
    ]


def test_a_backup_waits_for_the_run_that_holds_the_warehouse(warehouse: Warehouse, tmp_path: Path) -> None:
    from flows.backup import backup_held

    audit.ensure_audit_table(warehouse)
    holding, released = threading.Event(), []

    def a_run() -> None:
        with WarehouseLock(warehouse, "a-run").held(0):
            holding.set()
            time.sleep(2)
            released.append(time.time())

    runner = threading.Thread(target=a_run)
    runner.start()
    holding.wait(30)
    written = backup_held(
        warehouse, tmp_path / ("b.dump" if warehouse.target == "postgres" else "b"), wait_seconds=60
    )
    runner.join()

    assert written.stat().st_mtime >= released[0]  # it waited for the run to let go, then wrote
    (status,) = warehouse.query("select status from audit.sync_runs where sync_type = 'backup'")[0]
    assert status == "success"
