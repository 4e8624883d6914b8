"""Voter registration on both targets: loader, rollups, reconciliation, demographics, failure modes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from flows.cli import app
from flows.pipeline import RunSummary, run
from loaders.common.quarantine import LoadStats
from loaders.common.values import normalise_code
from loaders.common.warehouse import Warehouse
from loaders.registry import RunOptions, run_sync
from testing.samples import registration as samples

COUNTIES = {"001", "047"}  # Mombasa and Nairobi: 23 constituencies, 115 wards, ~3,800 stations


@pytest.fixture
def source_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'registration.sqlite'}"
    samples.build_source_database(url, counties=COUNTIES)
    monkeypatch.setenv("SOURCES__REGISTRATION__CREDENTIALS", url)
    monkeypatch.setenv("ELT_LOAD_RETRIES", "0")
    return url


def execute(url: str, sql: str, **params: object) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(sql), params)
    engine.dispose()


def step(summary: RunSummary, name: str):
    return next(s for s in summary.steps if s.name == name)


def rollups(warehouse: Warehouse) -> dict[tuple[str, str], int]:
    rows = warehouse.query(
        "select 'ward', ward_code, rolled_up_registered_voters from marts.dim_wards "
        "union all select 'constituency', constituency_code, rolled_up_registered_voters "
        "from marts.dim_constituencies "
        "union all select 'county', county_code, rolled_up_registered_voters from marts.dim_counties"
    )
    return {(level, code): value for level, code, value in rows if value is not None}


@pytest.mark.parametrize(
    ("value", "width", "expected"),
    [
        (1, 3, "001"),
        ("1", 3, "001"),
        ("001", 3, "001"),
        (" 47 ", 3, "047"),
        (47.0, 3, "047"),
        ("0289", 4, "0289"),
    ],
)
def test_integer_and_padded_codes_are_the_same_code(value: object, width: int, expected: str) -> None:
    assert normalise_code(value, width) == expected


@pytest.mark.parametrize("value", [None, "", "4a", "1.5", 1.5, "12345", True])
def test_an_unreadable_code_is_refused_with_a_reason(value: object) -> None:
    with pytest.raises(ValueError, match="code"):
        normalise_code(value, 4)


def test_load_rolls_up_and_a_changed_figure_moves_only_its_ancestors(
    warehouse: Warehouse, source_url: str
) -> None:
    first = run(sources=["registration"], target=warehouse.target)

    assert first.success, [(s.name, s.error) for s in first.steps]
    # codes arrive as integers and still join the zero-padded reference: every ward rolls up
    wards = warehouse.query(
        "select count(*), sum(registered_voters), sum(reference_registered_voters), "
        "sum(rolled_up_registered_voters) from marts.dim_wards where is_in_source"
    )[0]
    assert wards[0] == 115 and wards[1] == wards[2] == wards[3]
    assert warehouse.query("select min(county_code) from marts.dim_counties where is_in_source") == [("001",)]
    before = rollups(warehouse)

    # one polling station's figure changes in the source
    station = warehouse.query(
        "select polling_station_code, ward_code, constituency_code, county_code "
        "from marts.dim_polling_stations order by polling_station_code limit 1"
    )[0]
    execute(
        source_url,
        "update polling_stations set registered_voters_2022 = registered_voters_2022 + 25 where code = :code",
        code=int(station[0]),
    )
    second = run(sources=["registration"], target=warehouse.target)

    assert second.success
    assert step(second, "registration").loaded == 1
    after = rollups(warehouse)
    changed = {key: after[key] - before[key] for key in before if after[key] != before[key]}
    assert changed == {("ward", station[1]): 25, ("constituency", station[2]): 25, ("county", station[3]): 25}

    # the source deletes that station: it leaves the warehouse and the rollups drop by its figure
    figure = warehouse.query(
        "select registered_voters from marts.dim_polling_stations "
        f"where polling_station_code = '{station[0]}'"
    )[0][0]
    execute(source_url, "delete from polling_stations where code = :code", code=int(station[0]))
    third = run(sources=["registration"], target=warehouse.target)

    assert third.success
    assert "1 deleted" in step(third, "registration").detail
    assert warehouse.query(
        f"select count(*) from raw_registration.polling_stations where code = '{station[0]}'"
    ) == [(0,)]
    final = rollups(warehouse)
    dropped = {key: final[key] - after[key] for key in after if final.get(key) != after[key]}
    assert dropped == {
        ("ward", station[1]): -figure,
        ("constituency", station[2]): -figure,
        ("county", station[3]): -figure,
    }

    # nothing changed: nothing is loaded, and nothing downstream is rebuilt or checked again
    fourth = run(sources=["registration"], target=warehouse.target)
    assert step(fourth, "registration").loaded == 0
    assert step(fourth, "dbt_build").status == "skipped"
    assert step(fourth, "dbt_build").detail == "no source changed since the last build"
    assert step(fourth, "expectations").status == "skipped"
    assert rollups(warehouse) == final


def test_reconciliation_reports_exactly_the_planted_faults(warehouse: Warehouse, source_url: str) -> None:
    samples.plant_faults(
        source_url, samples.Faults(zero_constituency="288", missing_ward="0005", mismatched_ward="0010")
    )

    summary = run(sources=["registration"], target=warehouse.target)

    assert summary.success
    # (the other 45 counties are not in this small source: they are all missing_in_source)
    statuses = warehouse.query(
        "select admin_level, area_code, status from audit.rpt_registration_reconciliation "
        "where status <> 'match' and county_code in ('001', '047')"
    )
    assert sorted(statuses) == [
        ("constituency", "288", "value_mismatch"),
        ("ward", "0005", "missing_in_source"),
        ("ward", "0010", "value_mismatch"),
    ]
    # the zero constituency and the missing ward are left out of the demographics, and the run says so
    exceptions = warehouse.query(
        "select admin_level, area_code, reason from audit.rpt_demographics_exceptions "
        "where county_code in ('001', '047') order by 1, 2"
    )
    assert exceptions == [
        ("constituency", "288", "zero_registered_voters"),
        ("ward", "0005", "missing_registered_voters"),
    ]
    rolled = step(summary, "rollups")
    assert rolled.status == "warning" and "areas without registered voters" in rolled.detail
    # allocation keeps each county's figure at every level
    totals = warehouse.query(
        "select admin_level, county_code, round(sum(allocated_population)) "
        "from marts.agg_demographics_by_area group by admin_level, county_code"
    )
    seed = dict(
        warehouse.query("select county_code, sum(population) from seeds.kenya_county_demographics group by 1")
    )
    assert totals and all(total == seed[county] for _, county, total in totals)

    result = CliRunner().invoke(
        app, ["reconcile", "registration", "--county", "47", "--target", warehouse.target]
    )
    assert result.exit_code == 1
    assert "KAMUKUNJI" in result.output and "value_mismatch" in result.output  # constituency 288
    assert "areas do not reconcile" in result.output


def test_an_unreachable_source_fails_clearly_and_changes_nothing(
    warehouse: Warehouse, source_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert run(sources=["registration"], target=warehouse.target).success
    before = warehouse.query("select code, registered_voters_2022 from raw_registration.wards order by code")
    marts = warehouse.query("select * from marts.dim_counties order by county_code")
    monkeypatch.setenv(
        "SOURCES__REGISTRATION__CREDENTIALS", "postgresql://reader:s3cret-pass-42@127.0.0.1:9/registration"
    )

    failed = run(sources=["registration"], target=warehouse.target)

    assert failed.failed == ["registration"]
    error = step(failed, "registration").error or ""
    assert "cannot reach the registration source database" in error
    assert "s3cret-pass-42" not in error
    assert (
        warehouse.query("select code, registered_voters_2022 from raw_registration.wards order by code")
        == before
    )
    assert warehouse.query("select * from marts.dim_counties order by county_code") == marts
    history = warehouse.query(
        "select status, error_message from audit.sync_history "
        "where sync_type = 'registration' order by finished_at"
    )
    assert [status for status, _ in history] == ["success", "error"]
    assert "s3cret-pass-42" not in history[-1][1]


def test_bad_rows_are_quarantined_with_their_reason(warehouse: Warehouse, source_url: str) -> None:
    execute(
        source_url,
        "insert into wards (code, constituency_code, name, registered_voters_2022) "
        "values (9999999, 1, 'TOO LONG', 10)",
    )
    execute(source_url, "update wards set registered_voters_2022 = -5 where code = 2")
    stats = LoadStats()

    run_sync("registration", warehouse, RunOptions(levels=("wards",)), stats)

    assert stats.read == 116 and stats.rejected == 2 and stats.loaded == 114
    reasons = sorted(r for (r,) in warehouse.query("select reason from raw_registration.rejected_rows"))
    assert reasons == [
        "code '9999999' is longer than 4 digits",
        "registered_voters_2022 '-5' is not a whole number at least 0",
    ]
    assert warehouse.query("select count(*) from raw_registration.wards") == [(114,)]
    tables = {
        name
        for (name,) in warehouse.query(
            "select table_name from information_schema.tables where table_schema = 'raw_registration'"
        )
    }
    assert "counties" not in tables  # --levels wards read only the wards


def test_a_changed_ward_figure_changes_that_ward_only(warehouse: Warehouse, source_url: str) -> None:
    assert run(sources=["registration"], target=warehouse.target).success
    before_rollups = rollups(warehouse)
    figures = "select ward_code, registered_voters from marts.dim_wards where is_in_source order by 1"
    before = dict(warehouse.query(figures))
    execute(
        source_url,
        "update wards set registered_voters_2022 = registered_voters_2022 + 40, "
        "updated_at = '2026-02-01 00:00:00' where code = 10",
    )

    second = run(sources=["registration"], target=warehouse.target)

    assert step(second, "registration").loaded == 1
    after = dict(warehouse.query(figures))
    assert {code: after[code] - before[code] for code in before if after[code] != before[code]} == {
        "0010": 40
    }
    # rollups come from the lowest level (the polling stations): no ancestor moves, the ward now
    # disagrees with the reference and with its stations, and the reconciliation says so
    assert rollups(warehouse) == before_rollups
    assert warehouse.query(
        "select admin_level, area_code, status, difference from audit.rpt_registration_reconciliation "
        "where county_code = '001' and status <> 'match'"
    ) == [("ward", "0010", "value_mismatch", 40)]


SPACED_WARDS = [
    ("wards", "Ward List"),
    ("code", "Ward Code"),
    ("constituency_code", "Constituency Code"),
    ("name", "Ward Name"),
    ("registered_voters_2022", "Registered Voters 2022"),
    ("updated_at", "Last Updated"),
]


def test_a_level_whose_table_and_columns_have_spaces_loads(
    warehouse: Warehouse, source_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Names from configuration are quoted wherever they reach SQL: a ward table called "Ward List" with
    "Registered Voters 2022" loads like the plain one, its figure under its snake_case name."""
    expected = dict(
        (code, voters)
        for code, voters in sa.create_engine(source_url)
        .connect()
        .execute(sa.text("select code, registered_voters_2022 from wards"))
        .all()
    )
    execute(source_url, 'alter table wards rename to "Ward List"')
    for old, new in SPACED_WARDS[1:]:
        execute(source_url, f'alter table "Ward List" rename column {old} to "{new}"')
    execute(source_url, 'update "Ward List" set "Registered Voters 2022" = -1 where "Ward Code" = 2')
    monkeypatch.setenv(
        "SOURCES__REGISTRATION__LEVELS",
        json.dumps(
            [
                {
                    "name": "wards",
                    "table": "Ward List",
                    "code_column": "Ward Code",
                    "code_width": 4,
                    "parent_code_column": "Constituency Code",
                    "parent_code_width": 3,
                    "name_column": "Ward Name",
                    "figures": ["Registered Voters 2022"],
                    "updated_at_column": "Last Updated",
                },
            ]
        ),
    )
    stats = LoadStats()

    run_sync("registration", warehouse, RunOptions(), stats)
    again = LoadStats()
    run_sync("registration", warehouse, RunOptions(), again)

    loaded = dict(warehouse.query("select code, registered_voters_2022 from raw_registration.wards"))
    assert loaded == {normalise_code(code, 4): voters for code, voters in expected.items() if code != 2}
    assert (stats.read, stats.loaded, stats.rejected) == (len(expected), len(expected) - 1, 1)
    (reason,) = warehouse.query("select reason from raw_registration.rejected_rows")[0]
    assert reason == "Registered Voters 2022 '-1' is not a whole number at least 0"
    assert again.loaded == 0  # incremental on "Last Updated", and nothing changed


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ({"name": "Ward List"}, "a level's name names its warehouse table"),
        ({"figures": ["Voters", "voters"]}, "figure(s) ['Voters', 'voters'] would land in the same"),
        ({"code_column": "code\n; drop table wards"}, "is not a table or column name"),
    ],
)
def test_a_level_that_cannot_work_is_a_setting_to_fix(entry: dict, says: str) -> None:
    from loaders.common.warehouse import ConfigurationError
    from loaders.registration.helpers import LevelConfig

    with pytest.raises(ConfigurationError) as caught:
        LevelConfig.from_config({"name": "wards", "code_width": 4} | entry)
    assert says in str(caught.value)
