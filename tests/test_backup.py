"""elt backup and elt restore on both targets: a restore brings back exactly what was backed up."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from loaders.common.quarantine import LoadStats
from loaders.common.warehouse import Warehouse
from loaders.registry import RunOptions, run_sync
from testing.samples import communities as samples


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
