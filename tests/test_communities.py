"""Community coverage on both targets: rollups, soft deletes, overrides, dry run, independent cities."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.pipeline import RunSummary, run
from loaders.common.quarantine import LoadStats
from loaders.common.warehouse import Warehouse
from loaders.registry import RunOptions, run_sync
from testing.samples import communities as samples

ILIGAN = "1030900000"
LANAO_DEL_NORTE = "1003500000"
ALAMADA = "1204701000"  # overridden in seeds/communities/coverage_overrides.csv


@pytest.fixture
def records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "communities"
    samples.generate(folder)
    monkeypatch.setenv("SOURCES__COMMUNITIES__FILES_PATH", str(folder))
    monkeypatch.setenv("ELT_LOAD_RETRIES", "0")
    return folder


def step(summary: RunSummary, name: str):
    return next(s for s in summary.steps if s.name == name)


def write_batch(folder: Path, name: str, rows: list[list[str]]) -> None:
    with (folder / name).open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(samples.HEADER)
        writer.writerows(rows)


def published(warehouse: Warehouse) -> list[tuple]:
    return warehouse.query(
        "select 'm', municipality_code, estimated_population, households "
        "from marts.agg_municipality_coverage "
        "union all select 'p', province_code, estimated_population, households "
        "from marts.agg_province_coverage "
        "union all select 'r', region_code, estimated_population, households "
        "from marts.agg_region_coverage order by 1, 2"
    )


def live_total(warehouse: Warehouse, where: str = "") -> int:
    return int(
        warehouse.query(
            "select coalesce(sum(estimated_population), 0) from raw_communities.records "
            f"where not is_deleted {where}"
        )[0][0]
    )


def test_rollups_add_up_and_a_soft_delete_lowers_them(warehouse: Warehouse, records: Path) -> None:
    first = run(sources=["communities"], target=warehouse.target)

    assert first.success, [(s.name, s.error) for s in first.steps]
    loaded = step(first, "communities")
    assert loaded.rejected == 3 and loaded.loaded + loaded.rejected == loaded.read
    reasons = sorted(r for (r,) in warehouse.query("select reason from raw_communities.rejected_rows"))
    assert reasons[0] == "estimated_population 'n/a' is not a number"
    assert reasons[1:] == [
        "unknown barangay code 1030900000 (not a barangay in the PSGC 2025 Q2)",  # a city, not a barangay
        "unknown barangay code 1099999999 (not a barangay in the PSGC 2025 Q2)",
    ]
    # every province: the sum of its municipalities and of its live barangay records
    provinces = warehouse.query(
        "select province_code, computed_estimated_population from marts.agg_province_coverage"
    )
    assert len(provinces) == 9
    for province, total in provinces:
        municipalities = warehouse.query(
            "select sum(computed_estimated_population) from marts.agg_municipality_coverage "
            f"where province_code = '{province}'"
        )[0][0]
        assert total == municipalities
    regions = dict(
        warehouse.query("select region_code, computed_estimated_population from marts.agg_region_coverage")
    )
    assert regions["1000000000"] == live_total(warehouse, "and barangay_code like '10%'")
    assert regions["1200000000"] == live_total(warehouse, "and barangay_code like '12%'")

    # one live record is soft-deleted in a later batch: its municipality, province and region drop by it
    code, figure = warehouse.query(
        "select barangay_code, estimated_population from raw_communities.records "
        "where not is_deleted and barangay_code like '1001301%' order by barangay_code limit 1"
    )[0]
    before = {key: value for _, key, value, _ in published(warehouse)}
    write_batch(
        records, "records_z.csv", [[f"CR-{code}", code, str(figure), "1", "true", "2026-03-01T00:00:00Z"]]
    )

    second = run(sources=["communities"], target=warehouse.target)

    # the files read before are skipped unread (same content); only the new batch is read
    assert step(second, "communities").loaded == 1 and step(second, "communities").read == 1
    assert "files loaded 1, unchanged 2" in step(second, "communities").detail
    after = {key: value for _, key, value, _ in published(warehouse)}
    changed = {key: after[key] - before[key] for key in before if after.get(key) != before[key]}
    assert changed == {"1001301000": -figure, "1001300000": -figure, "1000000000": -figure}
    assert "municipality 0/1/0, province 0/1/0, region 0/1/0" in step(second, "rollups").detail


def test_an_override_is_published_with_the_computed_figure_beside_it(
    warehouse: Warehouse, records: Path
) -> None:
    assert run(sources=["communities"], target=warehouse.target).success

    row = warehouse.query(
        "select estimated_population, households, computed_estimated_population, is_overridden, "
        f"override_reason from marts.agg_municipality_coverage where municipality_code = '{ALAMADA}'"
    )[0]
    computed = live_total(warehouse, f"and barangay_code like '{ALAMADA[:7]}%'")
    assert row[:4] == (70000, 15500, computed, True) and computed != 70000
    assert "by hand" in row[4]
    # the province computes from the records, not from the override
    cotabato = warehouse.query(
        "select computed_estimated_population, is_overridden from marts.agg_province_coverage "
        "where province_code = '1204700000'"
    )[0]
    assert cotabato == (live_total(warehouse, "and barangay_code like '12047%'"), False)


def test_an_independent_city_rolls_up_to_the_province_of_its_correspondence_code(
    warehouse: Warehouse, records: Path
) -> None:
    assert run(sources=["communities"], target=warehouse.target).success

    iligan = warehouse.query(
        "select province_code, is_independent_city, computed_estimated_population "
        f"from marts.agg_municipality_coverage where municipality_code = '{ILIGAN}'"
    )[0]
    assert iligan[0] == LANAO_DEL_NORTE and iligan[1] is True
    assert iligan[2] == live_total(warehouse, f"and barangay_code like '{ILIGAN[:7]}%'")
    lanao = warehouse.query(
        "select computed_estimated_population, independent_city_estimated_population "
        f"from marts.agg_province_coverage where province_code = '{LANAO_DEL_NORTE}'"
    )[0]
    assert lanao[1] == iligan[2]
    assert lanao[0] == live_total(warehouse, "and barangay_code like '10035%'") + iligan[2]


def test_a_dry_run_changes_nothing_and_apply_publishes(warehouse: Warehouse, records: Path) -> None:
    assert run(sources=["communities"], target=warehouse.target).success
    before = published(warehouse)
    snapshot_rows = warehouse.query("select count(*) from snapshots.snp_coverage")
    # new records are loaded, not yet published
    code = "1001301002"
    write_batch(
        records, "records_z.csv", [[f"CR-{code}", code, "99999", "999", "false", "2026-03-01T00:00:00Z"]]
    )
    assert run(sources=["communities"], target=warehouse.target).success  # publishes: the baseline moves
    before = published(warehouse)
    write_batch(
        records, "records_zz.csv", [[f"CR-{code}", code, "12345", "999", "false", "2026-03-02T00:00:00Z"]]
    )
    from flows.pipeline import load_source
    from loaders.registry import RunOptions

    assert load_source("communities", warehouse, RunOptions()).loaded == 1
    snapshot_rows = warehouse.query("select count(*) from snapshots.snp_coverage")
    cli = CliRunner()

    dry = cli.invoke(app, ["coverage", "--dry-run", "--region", "10", "--target", warehouse.target])

    assert dry.exit_code == 0, dry.output
    assert "municipality  0        1        0" in dry.output
    assert "1001301000" in dry.output and "Nothing was published" in dry.output
    assert published(warehouse) == before
    assert warehouse.query("select count(*) from snapshots.snp_coverage") == snapshot_rows
    schemas = {s for (s,) in warehouse.query("select schema_name from information_schema.schemata")}
    assert "scratch_coverage" not in schemas
    other_region = cli.invoke(app, ["coverage", "--dry-run", "--region", "12", "--target", warehouse.target])
    assert "municipality  0        0        0" in other_region.output

    applied = cli.invoke(app, ["coverage", "--target", warehouse.target])

    assert applied.exit_code == 0, applied.output
    assert "municipality  0        1        0" in applied.output
    after = dict(((kind, key), value) for kind, key, value, _ in published(warehouse))
    assert (
        after[("m", "1001301000")]
        == dict(((k, c), v) for k, c, v, _ in before)[("m", "1001301000")] - 99999 + 12345
    )
    latest = warehouse.query(
        "select admin_level, created_count, updated_count, removed_count from audit.rpt_coverage_changes "
        "where changed_at = (select max(changed_at) from audit.rpt_coverage_changes) order by 1"
    )
    assert latest == [("municipality", 0, 1, 0), ("province", 0, 1, 0), ("region", 0, 1, 0)]


def test_a_production_warehouse_needs_yes(
    warehouse: Warehouse, records: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ELT_PRODUCTION", "true")
    cli = CliRunner()

    refused = cli.invoke(app, ["run", "--source", "communities", "--target", warehouse.target])
    refused_coverage = cli.invoke(app, ["coverage", "--target", warehouse.target])

    assert refused.exit_code == 2 and "marked production" in refused.output and "--yes" in refused.output
    assert refused_coverage.exit_code == 2 and "marked production" in refused_coverage.output
    tables = warehouse.query(
        "select count(*) from information_schema.tables where table_schema = 'raw_communities'"
    )
    assert tables == [(0,)]
    accepted = cli.invoke(app, ["run", "--source", "communities", "--yes", "--target", warehouse.target])
    assert accepted.exit_code == 0, accepted.output
    assert live_total(warehouse) > 0


def test_records_from_a_source_table_incrementally(
    warehouse: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path / 'community.sqlite'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "create table community_records (record_id text, barangay_code integer, "
                "estimated_population integer, households integer, is_deleted boolean, updated_at timestamp)"
            )
        )
        conn.execute(
            sa.text("insert into community_records values (:id, :code, :pop, :hh, :deleted, :at)"),
            [
                {
                    "id": "A",
                    "code": 1001301001,
                    "pop": 700,
                    "hh": 150,
                    "deleted": False,
                    "at": "2026-02-01 08:00:00",
                },
                {
                    "id": "B",
                    "code": 1001301002,
                    "pop": 650,
                    "hh": 140,
                    "deleted": False,
                    "at": "2026-02-01 09:00:00",
                },
                {
                    "id": "C",
                    "code": 1099999999,
                    "pop": 10,
                    "hh": 2,
                    "deleted": False,
                    "at": "2026-02-01 09:00:00",
                },
            ],
        )
    monkeypatch.setenv("SOURCES__COMMUNITIES__CREDENTIALS", url)
    monkeypatch.setenv("SOURCES__COMMUNITIES__TABLE", "community_records")
    monkeypatch.setenv("ELT_LOAD_RETRIES", "0")

    first = run(sources=["communities"], target=warehouse.target)

    assert first.success, [(s.name, s.error) for s in first.steps]
    assert (step(first, "communities").loaded, step(first, "communities").rejected) == (2, 1)
    assert warehouse.query("select reason from raw_communities.rejected_rows") == [
        ("unknown barangay code 1099999999 (not a barangay in the PSGC 2025 Q2)",)
    ]
    assert live_total(warehouse) == 1350
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "update community_records set is_deleted = 1, updated_at = '2026-03-01 00:00:00' "
                "where record_id = 'A'"
            )
        )
    engine.dispose()

    second = run(sources=["communities"], target=warehouse.target)

    assert step(second, "communities").loaded == 1  # only A; B is behind the cursor
    assert live_total(warehouse) == 650
    coverage = warehouse.query(
        "select computed_estimated_population from marts.agg_municipality_coverage "
        "where municipality_code = '1001301000'"
    )
    assert coverage == [(650,)]


def test_unchanged_files_are_skipped_until_the_psgc_changes(
    warehouse: Warehouse, records: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import loaders.communities as source

    first, second, third = LoadStats(), LoadStats(), LoadStats()
    run_sync("communities", warehouse, RunOptions(), first)
    run_sync("communities", warehouse, RunOptions(), second)
    # a new PSGC publication (here: one more barangay) can accept a record quarantined before
    published = source.barangay_codes()
    monkeypatch.setattr(source, "barangay_codes", lambda: published | {"1099999999"})
    run_sync("communities", warehouse, RunOptions(), third)

    files = sorted(path.name for path in records.glob("*.csv"))
    assert first.files_loaded == files and first.read > 0
    assert (second.read, second.loaded, second.files_skipped) == (0, 0, files)
    assert third.files_loaded == files and third.read == first.read


@pytest.mark.parametrize("target", ["duckdb"])
def test_a_community_file_that_changes_while_read_is_read_again(
    warehouse: Warehouse, records: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    import loaders.communities as module

    first_file = sorted(records.glob("*.csv"))[0]
    real_read = module.read_records

    def touched_while_read(stream, **columns):
        yield from real_read(stream, **columns)
        moment = first_file.stat().st_mtime + 5
        os.utime(first_file, (moment, moment))  # a writer touched it before the read ended

    monkeypatch.setattr(module, "read_records", touched_while_read)
    changed = LoadStats()
    run_sync("communities", warehouse, RunOptions(), changed)
    monkeypatch.setattr(module, "read_records", real_read)
    again, then = LoadStats(), LoadStats()
    run_sync("communities", warehouse, RunOptions(), again)
    run_sync("communities", warehouse, RunOptions(), then)

    assert first_file.name in changed.files_changed and first_file.name not in changed.files_loaded
    assert first_file.name in again.files_loaded  # read again, now that it held still
    assert first_file.name in then.files_skipped
