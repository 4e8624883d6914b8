"""The status dashboard (``elt report``, ``data/reports/status.html``), read as a person reads it: opened
from disk in headless Chromium (Debian's ``chromium``; ``.ci/run`` installs it), its DOM compared with
the audit's dbt models. On both targets from planted attempts, and after a whole demo run."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.dbt_runner import invoke
from loaders.common.warehouse import ROOT, Warehouse
from tests.test_status import plant

runner = CliRunner()
# screenshots are kept here, outside the session's temporary folder, for a person to look at
OUTPUT = ROOT / "test-output"
REPORT_MODELS = ["stg_audit__sync_runs", "sync_status", "sync_history", "rpt_sync_timeline"]
REPORT_MODELS += ["rpt_expectation_results"]
CHROMIUM_FLAGS = [  # no background traffic: every request the page makes is one the test sees
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    assert executable, "Chromium is missing: install Debian's chromium package (.ci/run does)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


def open_page(
    browser: Any, page_path: Path, screenshot: str | None = None
) -> tuple[dict[str, Any], list[str]]:
    """Open ``page_path`` from disk; return what its DOM shows and every request it made. Requests
    that would leave the file system are refused and reported."""
    page = browser.new_page(viewport={"width": 1400, "height": 1300})
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.route(lambda url: not url.startswith("file://"), lambda route: route.abort())
    page.goto(page_path.as_uri())
    shown = page.evaluate(
        """() => ({
        verdict: document.querySelector('#verdict').textContent.trim(),
        status: Object.fromEntries([...document.querySelectorAll('#status tbody tr')].map(row => [
            row.dataset.syncType,
            Object.fromEntries([...row.querySelectorAll('td[data-field]')].map(
                cell => [cell.dataset.field, cell.textContent.trim()])),
        ])),
        rowClass: Object.fromEntries([...document.querySelectorAll('#status tbody tr')].map(
            row => [row.dataset.syncType, row.className])),
        charts: [...document.querySelectorAll('figure.chart')].map(figure => ({
            title: figure.querySelector('figcaption').textContent,
            marks: figure.querySelectorAll('svg path, svg rect, svg line').length,
            width: figure.querySelector('svg')?.getBoundingClientRect().width ?? 0,
        })),
        tables: Object.fromEntries([...document.querySelectorAll('table[data-relation]')].map(table => [
            table.dataset.relation,
            [...table.querySelectorAll('tbody tr')].map(row => ({
                failed: row.classList.contains('failed'),
                cells: [...row.querySelectorAll('td')].map(cell => cell.textContent),
            })),
        ])),
        links: [...document.querySelectorAll('#links a')].map(a => a.getAttribute('href')),
        text: document.body.innerText,
    })"""
    )
    if screenshot:
        OUTPUT.mkdir(exist_ok=True)
        page.screenshot(path=str(OUTPUT / screenshot), full_page=True)
    page.close()
    return shown, requests


def report(warehouse: Warehouse, folder: Path) -> Any:
    return runner.invoke(app, ["report", "--target", warehouse.target], env={"ELT_REPORTS_DIR": str(folder)})


def test_the_page_shows_audit_sync_status(warehouse: Warehouse, tmp_path: Path, browser: Any) -> None:
    plant(warehouse, "sales_csv", "success", 50, records_processed=10, records_rejected=0)
    plant(warehouse, "sales_csv", "success", 2, records_processed=12, records_rejected=1)
    plant(
        warehouse, "sales_api", "error", 1, error_message="HTTPError: 503 <Service> Unavailable " + "x" * 300
    )
    plant(warehouse, "odk_central", "abandoned", 0.5)
    checked = [
        {"suite": "fct_sales", "expectation": "expect_table_row_count_to_be_between"},
        {"suite": "fct_sales", "expectation": "expect_column_values_to_be_between"},
    ]
    checked[0] |= {"column": None, "success": True, "details": "observed 12; expected min_value=1"}
    checked[1] |= {"column": "quantity", "success": False, "details": "1 unexpected value(s) (e.g. -3)"}
    # as the version before numbered them recorded a check: the report model numbers them itself
    plant(warehouse, "expectations", "error", 1.9, metadata={"checked": checked}, records_processed=2)
    result = invoke(warehouse, "build", REPORT_MODELS)  # their tests too: the planted rows are sound
    assert result.success, result.message()

    written = report(warehouse, tmp_path)
    shown, requests = open_page(browser, tmp_path / "status.html")

    assert written.exit_code == 0, written.output
    assert requests == [(tmp_path / "status.html").as_uri()]
    columns = "sync_type, last_sync_status, last_records_processed, last_records_rejected, last_error_message"
    rows = warehouse.query(f"select {columns} from audit.sync_status order by sync_type")
    assert sorted(shown["status"]) == [row[0] for row in rows]
    for sync_type, last_status, processed, rejected, error in rows:
        cells = shown["status"][sync_type]
        assert cells["last_sync_status"] == last_status
        assert cells["last_records_processed"] == ("" if processed is None else str(processed))
        assert cells["last_records_rejected"] == ("" if rejected is None else str(rejected))
        assert cells["last_error_message"] == (error or "")  # in full, escaped as text
        assert shown["rowClass"][sync_type] == last_status
    assert shown["status"]["sales_csv"]["success_rate_7d"] == "100% of 2"
    assert shown["status"]["sales_csv"]["avg_duration_seconds_7d"] == "30.0"
    assert shown["verdict"].startswith("3 of 4 sync types need attention")
    assert [chart["title"] for chart in shown["charts"]][0].startswith("Run timeline")
    assert all(chart["marks"] > 0 and chart["width"] > 0 for chart in shown["charts"])
    expectations = shown["tables"]["audit.rpt_expectation_results"]
    assert [(row["failed"], row["cells"][2], row["cells"][3]) for row in expectations] == [
        (True, "quantity", "no"),
        (False, "", "yes"),
    ]
    # models no source has built yet are named, not an error
    assert "Not built yet" in shown["text"] and "audit.rpt_coverage_changes" in shown["text"]


def test_report_before_any_run_says_what_to_do(warehouse: Warehouse, tmp_path: Path) -> None:
    written = report(warehouse, tmp_path)

    assert written.exit_code == 2
    assert "run `elt run`" in written.output
    assert not (tmp_path / "status.html").exists()


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Warehouse, Path, str]]:
    """One ``elt demo`` into a DuckDB file of its own; its reports folder and its output."""
    folder = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ELT_DUCKDB_PATH", str(folder / "demo.duckdb"))
        patch.setenv("ELT_REPORTS_DIR", str(folder / "reports"))
        result = runner.invoke(app, ["demo", "--samples", str(folder / "samples")])
        assert result.exit_code == 0, result.output
        yield Warehouse.from_env("duckdb"), folder / "reports", result.output


def test_after_a_demo_the_page_opens_from_disk_with_the_run_figures(demo_run, browser: Any) -> None:
    warehouse, reports, output = demo_run
    page = reports / "status.html"

    shown, requests = open_page(browser, page, screenshot="status.png")

    assert output.rstrip().endswith(str(page))  # make demo ends by printing where the page is
    assert requests == [page.as_uri()]  # no stylesheet, script, font or image fetched, from anywhere
    states = warehouse.query(
        "select sync_type, last_sync_status, last_records_processed, last_records_rejected, attempts_7d, "
        "success_rate_7d, avg_duration_seconds_7d from audit.sync_status order by sync_type"
    )
    assert len(states) > 20 and sorted(shown["status"]) == [state[0] for state in states]
    for sync_type, status, processed, rejected, attempts, rate, seconds in states:
        cells = shown["status"][sync_type]
        assert cells["last_sync_status"] == status == "success"
        assert cells["last_records_processed"] == str(processed)
        assert cells["last_records_rejected"] == str(rejected)
        assert cells["success_rate_7d"] == f"{float(rate):.0%} of {attempts}"
        assert cells["avg_duration_seconds_7d"] == f"{float(seconds):.1f}"
    assert len(shown["charts"]) == 4
    assert all(chart["marks"] > 10 and chart["width"] > 200 for chart in shown["charts"]), shown["charts"]
    # the findings and the expectations, as their models hold them
    mismatches = warehouse.query(
        "select count(*) from audit.rpt_registration_reconciliation where status <> 'match'"
    )
    assert len(shown["tables"]["audit.rpt_registration_reconciliation"]) == mismatches[0][0] == 3
    evaluated = warehouse.query(
        "select count(*), sum(case when is_success then 1 else 0 end) from audit.rpt_expectation_results"
    )
    expectations = shown["tables"]["audit.rpt_expectation_results"]
    assert len(expectations) == evaluated[0][0] == evaluated[0][1] > 30
    assert shown["tables"]["audit.rpt_coverage_changes"]  # the later batch the demo applied
    # the dbt docs and the Data Docs the run generated, linked relative to the page
    assert shown["links"] == ["dbt/index.html", "gx/index.html"]
    assert (reports / "dbt" / "index.html").stat().st_size > 100_000
    gx_index = (reports / "gx" / "index.html").read_text()
    assert all(f"{suite}" in gx_index for suite in {row["cells"][0] for row in expectations})


def test_the_page_is_rewritten_whole(demo_run) -> None:
    """A reader never sees half a page: it is written beside and renamed over the old one."""
    warehouse, reports, _ = demo_run
    before = (reports / "status.html").stat().st_ino

    written = runner.invoke(app, ["report", "--target", "duckdb"], env={"ELT_REPORTS_DIR": str(reports)})

    assert written.exit_code == 0, written.output
    assert (reports / "status.html").stat().st_ino != before
    assert not list(reports.glob("*.partial"))


def test_dbt_source_freshness_passes_after_a_demo(demo_run) -> None:
    warehouse, _, _ = demo_run

    result = invoke(warehouse, "source freshness", [])

    assert result.success, result.message()
    assert result.statuses and set(result.statuses.values()) == {"pass"}, result.statuses


def test_a_quiet_run_is_not_charted_and_a_chart_drawn_before_is_not_drawn_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An hourly schedule that finds nothing must not start V8 (about a second) at every run."""
    import vl_convert

    from flows.dashboard import charts

    columns = ["sync_type", "status", "started_at", "ended_at", "duration_seconds"]
    columns += ["records_processed", "records_rejected"]
    now = datetime(2026, 12, 2, 12, tzinfo=UTC)

    def attempt(sync_type: str, hours_ago: int, processed: int, status: str = "success") -> list[Any]:
        started = now - timedelta(hours=hours_ago)
        return [sync_type, status, started, started + timedelta(seconds=3), 3.0, processed, 0]

    loads = [attempt("sales_csv", 5, 120), attempt("backup", 4, 0), attempt("elt_run", 5, 120)]
    quiet = [attempt("sales_csv", 1, 0), attempt("elt_run", 1, 0), attempt("odk_central.f.submissions", 1, 0)]
    failed = [attempt("sales_api", 1, 0, status="error")]
    drawn: list[str] = []
    draw = vl_convert.vegalite_to_svg
    monkeypatch.setattr(vl_convert, "vegalite_to_svg", lambda spec: drawn.append(spec) or draw(spec))
    cache = tmp_path / ".charts"

    first = charts(loads, columns, now, cache=cache)
    assert len(drawn) == 4 and all("<svg" in svg for svg in first.values())
    assert charts(loads + quiet, columns, now, cache=cache) == first  # the quiet run: nothing drawn
    assert len(drawn) == 4
    assert '"backup"' in drawn[0] and '"sales_csv"' in drawn[0]  # work done is charted, 0 records or not

    charts(loads + quiet + failed, columns, now, cache=cache)  # a failure is charted...
    assert len(drawn) == 7 and '"sales_api"' in drawn[4]  # ...except among the successes' durations
    assert len(list(cache.glob("*.svg"))) == 7
