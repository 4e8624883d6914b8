"""What the command line prints: the run summary and the sync status table."""

from __future__ import annotations

from typing import Any

import typer

from flows.pipeline import RunSummary
from loaders.common.warehouse import ConfigurationError, Warehouse


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[("" if value is None else str(value)) for value in row] for row in rows]
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row in cells:
        lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def print_summary(summary: RunSummary) -> None:
    rows = [
        [
            step.name,
            step.status,
            step.read,
            step.loaded,
            step.rejected,
            step.error if step.error else step.detail,
        ]
        for step in summary.steps
    ]
    typer.echo(f"Run on {summary.target}: {'success' if summary.success else 'FAILED'}")
    if summary.abandoned:
        typer.echo(
            f"({summary.abandoned} attempts of an earlier run that died were marked abandoned: `elt status`)"
        )
    typer.echo(_table(["step", "status", "read", "loaded", "rejected", "detail"], rows))
    for warning in summary.warnings:
        typer.echo(f"warning: {warning}", err=True)
    if summary.report:
        typer.echo(f"Dashboard: {summary.report}")


def print_status(states: list[Any], *, verbose: bool = False, width: int | None = None) -> None:
    """One line per sync type (``flows.status.SyncState``): the last attempt, the last success and its
    age against what its schedule allows, success rates and average durations over 7 and 30 days, the
    records of the last attempt and its error, cut to the terminal's width unless ``verbose``."""
    import shutil

    def rate(value: float | None, attempts: int) -> str:
        return "" if value is None else f"{value:.0%} of {attempts}"

    rows = []
    for state in states:
        flag = "" if state.healthy else "!"
        rows.append(
            [
                f"{flag}{state.sync_type}",
                state.last_sync_status,
                _ts(state.last_success_finished_at),
                _age(state.age_hours) + (" STALE" if state.stale else ""),
                _age(state.max_age_hours),
                rate(state.success_rate_7d, state.attempts_7d),
                rate(state.success_rate_30d, state.attempts_30d),
                "" if state.avg_duration_seconds_7d is None else f"{state.avg_duration_seconds_7d:.1f}",
                state.last_records_processed,
                state.last_records_rejected,
                " ".join((state.last_error_message or "").split()),
            ]
        )
    headers = ["sync_type", "status", "last_success", "age", "allowed", "ok_7d", "ok_30d", "avg_s_7d"]
    headers += ["records", "rejected", "last_error"]
    if not verbose:
        # the error takes what the terminal has left, and at least 20 characters
        width = width or shutil.get_terminal_size((160, 24)).columns
        used = sum(
            max(len(h), *(len(str(row[i] if row[i] is not None else "")) for row in rows)) + 2
            for i, h in enumerate(headers[:-1])
        )
        room = max(20, width - used)
        for row in rows:
            row[-1] = row[-1] if len(row[-1]) <= room else row[-1][: room - 3] + "..."
    typer.echo(_table(headers, rows))
    unhealthy = [state for state in states if not state.healthy]
    if unhealthy:
        typer.echo(f"{len(unhealthy)} of {len(states)} sync types need attention (marked !):")
        for state in unhealthy:
            typer.echo(f"  {state.sync_type}: {'; '.join(state.problems())}")


def _age(hours: float | None) -> str:
    from flows.status import format_hours

    return "" if hours is None else format_hours(hours)


def _ts(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if hasattr(value, "strftime") else str(value or "")


DEMO_TABLES = (
    "raw_sales.orders",
    "raw_sales.users",
    "raw_sales.rejected_rows",
    "marts.fct_sales",
    "marts.agg_sales_daily_by_region",
    "marts.dim_users",
    "raw_odk_central.submissions",
    "raw_odk_central.rental_survey__person_details",
    "raw_odk_central.attachments",
    "marts.fct_rental_submissions_unified",
    "raw_registration.polling_stations",
    "marts.dim_wards",
    "audit.rpt_registration_reconciliation",
    "raw_communities.records",
    "raw_communities.rejected_rows",
    "marts.agg_municipality_coverage",
    "marts.agg_province_coverage",
)


def row_counts(warehouse: Warehouse, tables: tuple[str, ...] = DEMO_TABLES) -> dict[str, int | None]:
    """Rows per table (None where the table does not exist yet)."""
    counts: dict[str, int | None] = {}
    for table in tables:
        try:
            counts[table] = int(warehouse.query(f"select count(*) from {table}")[0][0])
        except Exception:  # not built yet
            counts[table] = None
    return counts


def print_row_counts(before: dict[str, int | None], after: dict[str, int | None]) -> None:
    rows = []
    for table, count in after.items():
        previous = before.get(table)
        change = "new" if previous is None else f"{(count or 0) - previous:+d}"
        rows.append([table, count, change])
    typer.echo("Warehouse rows:")
    typer.echo(_table(["table", "rows", "change"], rows))


RECONCILIATION_ORDER = (
    "case admin_level when 'county' then 1 when 'constituency' then 2 else 3 end, area_code"
)


def print_reconciliation(warehouse: Warehouse, limit: int = 50, county: str | None = None) -> int:
    """Print the areas that do not reconcile (in ``county`` when given); return how many there are."""
    where, params = ("where county_code = " + warehouse.paramstyle, (county,)) if county else ("", ())
    try:
        checked = int(
            warehouse.query(f"select count(*) from audit.rpt_registration_reconciliation {where}", params)[0][
                0
            ]
        )
        rows = warehouse.query(
            "select admin_level, area_code, area_name, source_value, warehouse_value, rolled_up_value, "
            f"status from audit.rpt_registration_reconciliation {where} "
            f"{'and' if where else 'where'} status <> 'match' order by {RECONCILIATION_ORDER}",
            params,
        )
    except Exception as exc:
        if "rpt_registration_reconciliation" in str(exc) or "does not exist" in str(exc).lower():
            raise ConfigurationError(
                "no reconciliation yet: load the registration source first (elt run --source registration)"
            ) from None
        raise
    if not rows:
        typer.echo(f"Registration reconciles: {checked} areas checked, every one a match.")
        return 0
    typer.echo(f"Registration: {len(rows)} of {checked} areas do not reconcile ({warehouse.describe()}):")
    headers = ["level", "code", "name", "source", "warehouse", "rolled_up", "status"]
    typer.echo(_table(headers, [list(row) for row in rows[:limit]]))
    if len(rows) > limit:
        typer.echo(f"... and {len(rows) - limit} more (audit.rpt_registration_reconciliation)")
    return len(rows)


def print_coverage_changes(changes: list[Any]) -> None:
    """Per level: rows created, updated, removed and unchanged, then a sample of the changed rows."""
    typer.echo(
        _table(
            ["level", "created", "updated", "removed", "unchanged"],
            [[c.admin_level, c.created, c.updated, c.removed, c.unchanged] for c in changes],
        )
    )
    sample = [[c.admin_level, *row] for c in changes for row in c.sample]
    if sample:
        typer.echo("Sample of the changes (estimated population):")
        typer.echo(_table(["level", "change", "code", "published", "new"], sample))


def print_health(report: Any) -> None:
    """The checks of ``flows.health.HealthReport``, failed ones first, then the verdict."""
    if report.cannot_check:
        typer.echo(f"Cannot check {report.warehouse}: {report.cannot_check}", err=True)
        return
    checks = sorted(report.checks, key=lambda check: check.ok)
    rows = [[check.name, "ok" if check.ok else "FAIL", check.detail] for check in checks]
    typer.echo(f"Health of {report.warehouse} at {_ts(report.checked_at)} UTC:")
    typer.echo(_table(["check", "result", "detail"], rows))
    verdict = (
        "healthy"
        if report.healthy
        else f"UNHEALTHY: {len(report.failed)} of {len(report.checks)} checks failed"
    )
    typer.echo(verdict)


def print_cleanup(report: Any, listed: int = 20) -> None:
    """What a cleanup removed (or would remove): per kind how many and how many bytes, then the items."""
    totals = report.totals()
    verb = "Would remove" if report.dry_run else "Removed"
    if not totals:
        typer.echo(f"{verb} nothing: everything is within its retention.")
        return
    typer.echo(f"{verb}:")
    typer.echo(
        _table(
            ["kind", "count", "bytes"], [[kind, t["count"], f"{t['bytes']:,}"] for kind, t in totals.items()]
        )
    )
    for removal in report.removals[:listed]:
        typer.echo(
            f"  {removal.kind}: {removal.what}" + (f" ({removal.bytes:,} bytes)" if removal.bytes else "")
        )
    if len(report.removals) > listed:
        typer.echo(f"  ... and {len(report.removals) - listed} more (--json lists them all)")
