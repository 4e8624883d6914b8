"""Write, audit, publish (``flows/publish.py``) on both targets: a run's marts become visible only when
every dbt test and expectation passed on their candidates, all in one step; a failed check changes
nothing a reader sees, keeps the candidate for inspection and the next good run publishes."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.pipeline import RunSummary, run
from loaders.common.warehouse import Warehouse
from tests.sales_fixtures import GOOD_ROWS, write_csv

IMPLAUSIBLE = ("BIG-1", "2026-01-05", "amina.otieno1", "Widget", "500000", "4.50", "2250000.00", "North")
CORRECTED = ("BIG-1", "2026-01-05", "amina.otieno1", "Widget", "5", "4.50", "22.50", "North")
MORE_ROWS = [
    ("O-3", "2026-01-07", "amina.otieno1", "Widget", "3", "4.50", "13.50", "North"),
    ("O-4", "2026-01-07", "brian.santos2", "Gadget", "2", "12.00", "24.00", "South"),
]


@pytest.fixture
def orders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A sales CSV folder, the only file source of the runs."""
    folder = tmp_path / "orders"
    write_csv(folder / "a.csv", GOOD_ROWS)
    monkeypatch.setenv(
        "SOURCES__SALES_CSV__FILE_SOURCES", json.dumps([{"name": "shop", "path": str(folder)}])
    )
    monkeypatch.setenv("SOURCES__SALES_CSV__SETTLE_SECONDS", "0")
    monkeypatch.setenv("ELT_REPORTS_DIR", str(tmp_path / "reports"))
    return folder


def published(warehouse: Warehouse) -> dict[str, str]:
    """Every published mart: a digest of all its rows, every column as text."""
    relations = warehouse.query(
        "select table_schema, table_name from information_schema.tables "
        "where table_schema = 'marts' order by 1, 2"
    )
    found = {}
    for schema, name in relations:
        rows = sorted(
            repr(tuple(str(value) for value in row))
            for row in warehouse.query(f'select * from {schema}."{name}"')
        )
        found[f"{schema}.{name}"] = hashlib.sha256("\n".join(rows).encode()).hexdigest()
    return found


def step(summary: RunSummary, name: str):
    return next(s for s in summary.steps if s.name == name)


def candidate_schemas(warehouse: Warehouse) -> list[str]:
    rows = warehouse.query("select schema_name from information_schema.schemata")
    return sorted(name for (name,) in rows if name.endswith("__candidate"))


def test_a_failed_expectation_publishes_nothing_and_the_next_good_run_publishes(
    warehouse: Warehouse, orders: Path
) -> None:
    first = run(sources=["sales_csv"], target=warehouse.target)
    assert first.success, [(s.name, s.error) for s in first.steps]
    assert step(first, "publish").status == "success"
    before = published(warehouse)
    assert before["marts.fct_sales"] and candidate_schemas(warehouse) == []

    write_csv(orders / "b.csv", [*MORE_ROWS, IMPLAUSIBLE])  # loads: the loader's checks let it by
    failed = CliRunner().invoke(app, ["run", "--source", "sales_csv", "--target", warehouse.target])

    assert failed.exit_code == 1, failed.output
    assert "fct_sales: expect_column_values_to_be_between(total_amount) failed" in failed.output
    assert "nothing was published" in failed.output and "marts__candidate" in failed.output
    assert published(warehouse) == before  # every published relation, every row, as it was
    assert "marts__candidate" in candidate_schemas(warehouse)  # kept for inspection
    assert warehouse.query("select count(*) from marts__candidate.fct_sales")[0][0] == 6
    recorded = warehouse.query(
        "select sync_type, status, error_message from audit.sync_runs "
        "where sync_type in ('expectations', 'publish') order by started_at"
    )
    assert [(kind, status) for kind, status, _ in recorded] == [
        ("expectations", "success"),
        ("publish", "success"),
        ("expectations", "error"),  # and no publish attempt after it
    ]
    assert "marts__candidate" in recorded[-1][2]

    write_csv(orders / "b.csv", [*MORE_ROWS, CORRECTED])  # the file is corrected
    fixed = run(sources=["sales_csv"], target=warehouse.target)

    assert fixed.success, [(s.name, s.error) for s in fixed.steps]
    assert candidate_schemas(warehouse) == []  # the kept candidate went, the new one was published
    lines = len(GOOD_ROWS) + len(MORE_ROWS) + 1
    assert warehouse.query("select count(*) from marts.fct_sales")[0][0] == lines
    publishes = warehouse.query(
        "select status, records_processed, metadata from audit.sync_runs where sync_type = 'publish' "
        "order by started_at"
    )
    assert [status for status, _, _ in publishes] == ["success", "success"]
    swapped = {entry["relation"]: entry for entry in json.loads(publishes[-1][2])["relations"]}
    assert swapped["marts.fct_sales"]["rows_before"] == len(GOOD_ROWS)
    assert swapped["marts.fct_sales"]["rows_after"] == lines
    assert publishes[-1][1] == len(swapped)
    status = warehouse.query("select last_sync_status from audit.sync_status where sync_type = 'publish'")
    assert status == [("success",)]


def test_a_failed_dbt_test_publishes_nothing_and_names_the_test(warehouse: Warehouse, orders: Path) -> None:
    assert run(sources=["sales_csv"], target=warehouse.target).success
    before = published(warehouse)
    # a line without a region slips into the raw table past the loader (a test-only path), with a
    # good new file that makes the next run build
    columns = [
        name
        for (name,) in warehouse.query(
            "select column_name from information_schema.columns "
            "where table_schema = 'raw_sales' and table_name = 'orders' order by ordinal_position"
        )
    ]
    planted = {"order_id": "'PLANTED-1'", "region": "null", "_dlt_id": "'planted'"}
    listed = ", ".join(f'"{name}"' for name in columns)
    chosen = ", ".join(planted.get(name, f'"{name}"') for name in columns)
    with warehouse.connect() as conn:
        conn.cursor().execute(
            f"insert into raw_sales.orders ({listed}) select {chosen} from raw_sales.orders "
            "where order_id = 'O-2'"
        )
    write_csv(orders / "b.csv", MORE_ROWS)

    failed = run(sources=["sales_csv"], target=warehouse.target)

    assert failed.failed == ["dbt_build"]
    error = step(failed, "dbt_build").error or ""
    assert "not_null_fct_sales_region" in error and "nothing was published" in error
    assert [s.status for s in failed.steps if s.name in ("expectations", "publish")] == ["skipped"]
    assert published(warehouse) == before

    with warehouse.connect() as conn:
        conn.cursor().execute("delete from raw_sales.orders where order_id = 'PLANTED-1'")
    write_csv(
        orders / "c.csv", [("O-5", "2026-01-08", "amina.otieno1", "Widget", "1", "4.50", "4.50", "East")]
    )
    fixed = run(sources=["sales_csv"], target=warehouse.target)

    assert fixed.success, [(s.name, s.error) for s in fixed.steps]
    assert warehouse.query("select count(*) from marts.fct_sales")[0][0] == len(GOOD_ROWS) + 3


@pytest.mark.parametrize("target", ["postgres"])
def test_a_reader_never_sees_old_and_new_marts_together(warehouse: Warehouse, orders: Path) -> None:
    """A session reading both sales marts in one statement, in a loop, while runs publish: the lines
    and the revenue of ``fct_sales`` always reconcile with ``agg_sales_daily_by_region``. (On DuckDB
    no other process can open the file while a run holds it.)"""
    assert run(sources=["sales_csv"], target=warehouse.target).success
    reconcile = (
        "select (select count(*) from marts.fct_sales), "
        "(select sum(order_line_count) from marts.agg_sales_daily_by_region), "
        "(select sum(total_amount) from marts.fct_sales), "
        "(select sum(revenue) from marts.agg_sales_daily_by_region)"
    )
    seen: list[tuple] = []
    problems: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        try:
            with warehouse.connect() as conn:
                conn.autocommit = True
                cursor = conn.cursor()
                while not done.is_set():
                    cursor.execute(reconcile)
                    seen.append(cursor.fetchone())
        except BaseException as exc:  # (reported by the test's thread)
            problems.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for index in range(3):
            write_csv(
                orders / f"more{index}.csv",
                [
                    (f"R{index}-{n}", "2026-01-09", "amina.otieno1", "Widget", "1", "4.50", "4.50", "West")
                    for n in range(50)
                ],
            )
            assert run(sources=["sales_csv"], target=warehouse.target).success
    finally:
        done.set()
        reader.join()

    assert problems == []
    mixed = [row for row in seen if row[0] != row[1] or abs(row[2] - row[3]) > 0.01]
    assert mixed == []
    assert {row[0] for row in seen} >= {len(GOOD_ROWS), len(GOOD_ROWS) + 150}  # it read before and after


def test_a_first_run_that_fails_its_checks_publishes_no_mart_but_its_status(
    warehouse: Warehouse, orders: Path
) -> None:
    """The audit's own views are built in place (meta live): an operator reads what happened."""
    write_csv(orders / "a.csv", [*GOOD_ROWS, IMPLAUSIBLE])

    failed = run(sources=["sales_csv"], target=warehouse.target)

    assert failed.failed == ["expectations"]
    assert not warehouse.has_table("marts", "fct_sales")
    status = dict(warehouse.query("select sync_type, last_sync_status from audit.sync_status"))
    assert status["sales_csv"] == "success" and status["expectations"] == "error"


def test_an_analysts_dbt_build_builds_in_place(warehouse: Warehouse, orders: Path, tmp_path: Path) -> None:
    """``dbt build`` run directly (no candidate var) builds the published relations as it always did,
    unit tests included."""
    from dbt.cli.main import dbtRunner

    from flows.build_plan import ROOT

    assert run(sources=["sales_csv"], target=warehouse.target).success
    write_csv(orders / "b.csv", MORE_ROWS)
    assert run(sources=["sales_csv"], target=warehouse.target).success  # (published: 5 lines)
    with warehouse.connect() as conn:
        conn.cursor().execute("delete from raw_sales.orders where order_id = 'O-4'")

    result = dbtRunner().invoke(
        [
            "build",
            *("--project-dir", str(ROOT), "--profiles-dir", str(ROOT / "profiles")),
            *("--target", warehouse.target, "--target-path", str(tmp_path / "analyst")),
            *("--select", "source:sales+", "source:audit+"),
            *("--exclude", "source:sales.users+", "source:sales.rejected_rows+"),
            "--quiet",
        ]
    )

    assert result.success
    assert warehouse.query("select count(*) from marts.fct_sales")[0][0] == len(GOOD_ROWS) + 1
    assert candidate_schemas(warehouse) == []
    assert any(str(node.node.resource_type) == "unit_test" for node in result.result)
