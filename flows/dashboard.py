"""``elt report``: the status dashboard, one self-contained HTML page (``<reports>/status.html``) that
opens from the file system with no server and no network. A run refreshes it at its end, and so does
the health check.

Every figure on it is read from a dbt model, not computed here:

* ``audit.sync_status``: the status table, with the staleness ``elt status`` adds (``flows.status``);
* ``audit.rpt_sync_timeline``: the run timeline of the last 7 days and the charts of duration and of
  records processed and rejected per sync type;
* the models whose YAML declares a ``finding`` (``flows.manifest``): the open reconciliation
  mismatches and the demographics exceptions, as their ``count_where`` selects them;
* ``audit.rpt_coverage_changes``: the coverage changes of the last snapshot run;
* ``audit.rpt_expectation_results``: the expectations of the last check and their results.

Charts are Vega-Lite specifications drawn to inline SVG by vl-convert when the page is written: the
page carries no script. A chart whose specification is the one drawn before is not drawn again (its
SVG is kept under ``<reports>/.charts`` by the specification's digest), and a source's attempt that
found nothing (a success that read and rejected no record, as an hourly schedule's quiet runs are) is
in the status table, not in the charts: a run that finds nothing starts no V8.

The page links to the dbt docs site (``dbt docs generate --static``, written by a run that rebuilt
models, :func:`write_dbt_docs`) and to the Great Expectations Data Docs of the last check
(``flows.expectations``), both under the same folder (``ELT_REPORTS_DIR``, ``data/reports`` by
default).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from loaders.common.warehouse import ROOT, Warehouse

REPORTS_DIR = ROOT / "data" / "reports"
PAGE = "status.html"
DBT_DOCS = Path("dbt") / "index.html"
GX_DOCS = Path("gx") / "index.html"
TIMELINE_DAYS = 7
FINDING_ROWS = 100  # rows shown per finding; the count says how many there are
VEGA_LITE = "https://vega.github.io/schema/vega-lite/v6.json"  # the version of the specs (never fetched)
CHART_CACHE = ".charts"  # drawn charts by their specification's digest, under the reports folder
CACHED_CHARTS = 20
STATUS_COLOURS = {"success": "#2e7d32", "error": "#c62828", "abandoned": "#ef6c00", "running": "#1565c0"}


def reports_dir() -> Path:
    """``ELT_REPORTS_DIR`` (relative to the project), ``data/reports`` by default."""
    folder = Path(os.environ.get("ELT_REPORTS_DIR") or REPORTS_DIR)
    return folder if folder.is_absolute() else ROOT / folder


@dataclass
class Table:
    """Rows of a model, as the page shows them."""

    title: str
    relation: str
    columns: list[str]
    rows: list[list[Any]]
    total: int  # rows selected, of which ``rows`` are the first
    note: str = ""
    failed: list[bool] = field(default_factory=list)  # per row: shown as a failure


@dataclass
class Dashboard:
    warehouse: str
    generated_at: datetime
    states: list[Any]  # flows.status.SyncState
    charts: dict[str, str]  # title -> inline SVG
    findings: list[Table]
    coverage: Table | None
    expectations: Table | None
    links: dict[str, str] = field(default_factory=dict)  # title -> relative path
    missing: list[str] = field(default_factory=list)  # models not built yet

    @property
    def attention(self) -> int:
        return sum(1 for state in self.states if not state.healthy)


def write_report(warehouse: Warehouse, folder: Path | None = None, now: datetime | None = None) -> Path:
    """Read the report models, draw the charts and write ``status.html`` under ``folder`` (the reports
    folder by default), replacing the previous page in one step; return its path. Raises
    ``flows.status.StatusUnavailable`` before the first attempt."""
    folder = folder or reports_dir()
    dashboard = read_dashboard(warehouse, folder, now or datetime.now(UTC))
    page = folder / PAGE
    folder.mkdir(parents=True, exist_ok=True)
    partial = page.with_suffix(f".{os.getpid()}.partial")
    partial.write_text(render(dashboard), encoding="utf-8")
    partial.replace(page)  # a reader sees the old page or the new one, never half of one
    return page


def read_dashboard(warehouse: Warehouse, folder: Path, now: datetime) -> Dashboard:
    """Everything the page shows, from the warehouse's report models."""
    from flows.manifest import declaring
    from flows.status import sync_states

    states = sync_states(warehouse, now)
    findings = declaring(warehouse, "finding")
    with warehouse.connect() as conn:
        read = _Reader(conn.cursor())
        attempts = read.select("audit.rpt_sync_timeline", order="started_at")
        expectations = read.table(
            "Expectations of the last check",
            "audit.rpt_expectation_results",
            columns=["suite", "expectation", "column_name", "is_success", "details"],
            order="is_success, suite, expectation",
        )
        coverage = read.table(
            "Coverage changes of the last snapshot run",
            "audit.rpt_coverage_changes",
            where="changed_at = (select max(changed_at) from audit.rpt_coverage_changes)",
            order="admin_level",
        )
        tables = [
            read.table(
                model.meta["finding"]["what"].capitalize(),
                model.relation,
                where=model.meta["finding"].get("count_where", "true"),
                limit=FINDING_ROWS,
                note=f"see {model.meta['finding'].get('where', model.relation)}",
            )
            for model in findings
        ]
    if expectations is not None:
        passed = expectations.columns.index("is_success")
        expectations.failed = [not row[passed] for row in expectations.rows]
    return Dashboard(
        warehouse=warehouse.describe(),
        generated_at=now,
        states=states,
        charts=charts(attempts[1], attempts[0], now, cache=folder / CHART_CACHE),
        findings=[table for table in tables if table is not None],
        coverage=coverage,
        expectations=expectations,
        links={
            title: str(path)
            for title, path in (("dbt docs", DBT_DOCS), ("Great Expectations Data Docs", GX_DOCS))
            if (folder / path).exists()
        },
        missing=read.missing,
    )


class _Reader:
    """Reads models on one connection; a model not built yet (a source never loaded) reads as nothing
    and is noted in ``missing``."""

    def __init__(self, cursor: Any) -> None:
        self.cursor = cursor
        cursor.execute("select table_schema, table_name from information_schema.tables")
        self.present = {f"{schema}.{name}" for schema, name in cursor.fetchall()}
        self.missing: list[str] = []

    def select(
        self,
        relation: str,
        *,
        columns: list[str] | None = None,
        where: str = "true",
        order: str = "1",
        limit: int | None = None,
    ) -> tuple[list[str], list[list[Any]], int]:
        """(columns, rows, how many match) of a model."""
        if relation not in self.present:
            self.missing.append(relation)
            return [], [], 0
        self.cursor.execute(f"select count(*) from {relation} where {where}")
        total = int(self.cursor.fetchone()[0])
        self.cursor.execute(
            f"select {', '.join(columns) if columns else '*'} from {relation} where {where} "
            f"order by {order}" + (f" limit {int(limit)}" if limit else "")
        )
        names = [description[0] for description in self.cursor.description]
        return names, [list(row) for row in self.cursor.fetchall()], total

    def table(self, title: str, relation: str, note: str = "", **select: Any) -> Table | None:
        names, rows, total = self.select(relation, **select)
        return Table(title, relation, names, rows, total, note) if names else None


# --- charts ---------------------------------------------------------------------------------------


def charts(
    rows: list[list[Any]], columns: list[str], now: datetime, cache: Path | None = None
) -> dict[str, str]:
    """Title -> inline SVG: the timeline of the last days' attempts, and duration, records processed
    and records rejected per source and step over the last 30 days (``audit.rpt_sync_timeline``),
    leaving out the attempts that found nothing (``_found_nothing``).

    The charts are Vega-Lite specifications, drawn by vl-convert (Vega in an embedded V8, no network);
    with ``cache`` (a folder), a specification drawn before is read back instead of drawn again: V8's
    start is most of a quiet run's page. They are written as plain dicts rather than with Altair:
    importing Altair cost a run 0.35 s."""
    attempts = [_json_ready(dict(zip(columns, row, strict=True))) for row in rows]
    attempts = [attempt for attempt in attempts if not _found_nothing(attempt)]
    if not attempts:
        return {}
    since = (now - timedelta(days=TIMELINE_DAYS)).isoformat()
    recent = [attempt for attempt in attempts if attempt["started_at"] >= since]
    # the series are per source and step: a part (``odk_central.rental_survey.submissions``) is in the
    # status table and the timeline, where 25 series would not be read
    whole = [attempt for attempt in attempts if "." not in attempt["sync_type"]]
    when = {
        "field": "started_at",
        "type": "temporal",
        "title": None,
        "scale": {"type": "utc"},
        "axis": {"labelExpr": f"utcFormat(datum.value, '{_tick_format(attempts)}')"},
    }
    specs = {
        f"Run timeline, last {TIMELINE_DAYS} days (UTC)": _timeline(recent, when),
        "Duration of successful attempts (seconds)": _series(
            [a for a in whole if a["status"] == "success"], "duration_seconds", when
        ),
        "Records processed per attempt": _series(whole, "records_processed", when),
        "Records rejected per attempt": _series(whole, "records_rejected", when),
    }
    return {title: _drawn(spec, cache) for title, spec in specs.items()}


def _found_nothing(attempt: dict[str, Any]) -> bool:
    """A source's (or a whole run's) successful attempt that read and rejected no record."""
    from loaders.registry import SYNCS

    source = attempt["sync_type"].split(".")[0]
    return (
        (source in SYNCS or source == "elt_run")
        and attempt["status"] == "success"
        and not attempt["records_processed"]
        and not attempt["records_rejected"]
    )


def _drawn(spec: dict[str, Any], cache: Path | None) -> str:
    """The SVG of ``spec``, from ``cache`` when it was drawn before (the newest 20 are kept)."""
    text = json.dumps(spec, sort_keys=True)
    path = None
    if cache is not None:
        path = cache / f"{hashlib.sha256(text.encode()).hexdigest()[:32]}.svg"
        if path.exists():
            os.utime(path)
            return path.read_text(encoding="utf-8")
    import vl_convert

    svg = vl_convert.vegalite_to_svg(text)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.partial")
        partial.write_text(svg, encoding="utf-8")
        partial.replace(path)
        drawn = sorted(path.parent.glob("*.svg"), key=lambda old: old.stat().st_mtime, reverse=True)
        for old in drawn[CACHED_CHARTS:]:
            old.unlink(missing_ok=True)
    return svg


def _tick_format(attempts: list[dict[str, Any]]) -> str:
    """Time labels for the span of ``attempts``, on a 24-hour clock (Vega's own has AM/PM, and
    vl-convert ignores an axis ``format``)."""
    starts = [datetime.fromisoformat(attempt["started_at"]) for attempt in attempts]
    span = max(starts) - min(starts)
    if span < timedelta(hours=1):
        return "%H:%M:%S"
    return "%H:%M" if span < timedelta(days=1) else "%d %b %H:%M"


def _timeline(attempts: list[dict[str, Any]], when: dict[str, Any]) -> dict[str, Any]:
    """One lane per sync type: a bar from start to end of each attempt, and a tick at its start (most
    attempts are too short for their bar to show at this scale)."""
    return {
        "$schema": VEGA_LITE,
        "data": {"values": attempts},
        "width": 760,
        "encoding": {
            "x": when,
            "y": {"field": "sync_type", "type": "nominal", "title": None},
            "color": {
                "field": "status",
                "type": "nominal",
                "scale": {"domain": list(STATUS_COLOURS), "range": list(STATUS_COLOURS.values())},
                "legend": {"orient": "top", "title": None},
            },
        },
        "layer": [
            {"mark": {"type": "bar", "height": 10}, "encoding": {"x2": {"field": "ended_at"}}},
            {"mark": {"type": "tick", "thickness": 2}},
        ],
    }


def _series(attempts: list[dict[str, Any]], measure: str, when: dict[str, Any]) -> dict[str, Any]:
    """One line per sync type of ``measure`` over time."""
    return {
        "$schema": VEGA_LITE,
        "data": {"values": [a for a in attempts if a[measure] is not None]},
        "width": 520,
        "height": 200,
        "mark": {"type": "line", "point": True},
        "encoding": {
            "x": when,
            "y": {"field": measure, "type": "quantitative", "title": None},
            "color": {
                "field": "sync_type",
                "type": "nominal",
                "legend": {"orient": "right", "title": None, "symbolLimit": 60},
            },
        },
    }


def _json_ready(row: dict[str, Any]) -> dict[str, Any]:
    """Timestamps as ISO text in UTC, decimals as floats: what a Vega-Lite spec carries."""
    from flows.status import as_utc

    ready = {}
    for key, value in row.items():
        if isinstance(value, datetime):
            value = as_utc(value).isoformat()
        elif value is not None and not isinstance(value, str | int | float | bool):
            value = float(value)
        ready[key] = value
    return ready


# --- the page -------------------------------------------------------------------------------------


def render(dashboard: Dashboard) -> str:
    """The page's HTML (``flows/templates/status.html``)."""
    import jinja2

    from flows.status import format_hours

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.filters["hours"] = format_hours
    environment.filters["when"] = lambda value: value.strftime("%Y-%m-%d %H:%M") if value else ""
    environment.filters["cell"] = _cell
    return environment.get_template(PAGE).render(d=dashboard, colours=STATUS_COLOURS)


def _cell(value: Any) -> str:
    """A table cell's text: empty for null, yes/no, timestamps to the second in UTC."""
    from flows.status import as_utc

    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return as_utc(value).strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def write_dbt_docs(warehouse: Warehouse, folder: Path | None = None, *, after_build: bool = False) -> Path:
    """``dbt docs generate --static`` for ``warehouse``: one self-contained page, copied to
    ``<reports>/dbt/index.html``; return its path. ``after_build``: the manifest of a build just made
    is current, so it is not compiled again (about 2 s less). Raises ``RuntimeError`` when dbt fails."""
    from flows.dbt_runner import artifacts_path, invoke

    command = "docs generate --static" + (" --no-compile" if after_build else "")
    result = invoke(warehouse, command, [])
    if not result.success:
        raise RuntimeError(f"dbt docs generate failed: {result.message()}")
    target = (folder or reports_dir()) / DBT_DOCS
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    shutil.copyfile(artifacts_path(warehouse) / "static_index.html", partial)
    partial.replace(target)
    return target


def refresh(warehouse: Warehouse, *, dbt_docs: bool = False) -> tuple[Path | None, list[str]]:
    """The dbt docs (when ``dbt_docs``: right after a build) and the page, for the end of a run or a
    health check: never raises, since the data the run published stays good when its picture fails.
    Returns the page (None when it could not be written) and what went wrong, in words."""
    from loaders.common.audit import describe_error

    problems = []
    if dbt_docs:
        try:
            write_dbt_docs(warehouse, after_build=True)
        except Exception as exc:
            problems.append(f"the dbt docs were not generated: {describe_error(exc)}")
    try:
        return write_report(warehouse), problems
    except Exception as exc:
        problems.append(f"the status dashboard was not refreshed: {describe_error(exc)}")
        return None, problems
