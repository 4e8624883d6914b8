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


STATUS_SQL = """
select
    sync_type,
    last_sync_status,
    last_sync_timestamp,
    last_attempt_timestamp,
    successful_sync_count,
    failed_sync_count,
    abandoned_sync_count,
    last_records_processed,
    last_error_message
from audit.sync_status
order by sync_type
"""


def print_status(warehouse: Warehouse) -> bool:
    """Print audit.sync_status; False when there is nothing to show yet."""
    try:
        rows = warehouse.query(STATUS_SQL)
    except Exception as exc:  # the view does not exist before the first dbt build
        if "abandoned_sync_count" in str(exc):
            typer.echo(
                "audit.sync_status was built by an older version: run `elt run` once to rebuild it.",
                err=True,
            )
            return False
        if "sync_status" in str(exc) or "does not exist" in str(exc).lower():
            typer.echo("No sync status yet: run `elt run` (or `elt demo`) first.", err=True)
            return False
        raise
    typer.echo(f"Sync status ({warehouse.describe()}):")
    typer.echo(
        _table(
            [
                "sync_type",
                "status",
                "last_sync",
                "last_attempt",
                "ok",
                "failed",
                "abandoned",
                "records",
                "last_error",
            ],
            [[*row[:2], _ts(row[2]), _ts(row[3]), *row[4:8], (row[8] or "")[:60]] for row in rows],
        )
    )
    return True


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
