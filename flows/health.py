"""``elt health``: is the warehouse being fed as it should? One check per line, each ``ok`` or ``fail``
with what it saw; exit 0 healthy, 1 unhealthy, 2 cannot check (the warehouse unreachable or busy).

The checks:

- ``warehouse``: it answers a query.
- ``sync <type>``, one per sync type of ``audit.sync_status`` (``flows.status``): its last attempt did
  not fail and was not abandoned, its last success is no older than ``[health.max_age_hours]`` allows,
  and its last attempt rejected at most ``health.max_rejected_rate`` of the records it read.
- ``freshness <source.table>``: ``dbt source freshness`` for every declared source (an ``error`` fails,
  a ``warn`` passes with the warning in its detail).
- ``sales yesterday``: ``fct_sales`` has lines for the previous day (UTC), in each of
  ``health.sales_regions`` when configured; only where the sales marts exist.
- ``disk <place>``: at least ``health.min_free_gb`` free where backups, attachments and the DuckDB file
  are kept.

Every check is one ``health_check`` attempt in ``audit.sync_runs``, failed when a check failed, with the
checks in its metadata. The health check's own attempts are not among the sync types it checks.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from loaders.common.warehouse import ROOT, ConfigurationError, Warehouse, WarehouseBusy

SYNC_TYPE = "health_check"
ERROR_CHARS = 300  # of a failed attempt's error, in a check's detail (the whole one: elt status -v)
DEFAULTS: dict[str, Any] = {"max_rejected_rate": 0.05, "min_free_gb": 1.0, "sales_regions": []}
EXIT_HEALTHY, EXIT_UNHEALTHY, EXIT_CANNOT_CHECK = 0, 1, 2


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class HealthReport:
    warehouse: str
    checked_at: datetime
    checks: list[Check] = field(default_factory=list)
    cannot_check: str | None = None  # why nothing could be checked

    @property
    def healthy(self) -> bool:
        return self.cannot_check is None and all(check.ok for check in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [check for check in self.checks if not check.ok]

    @property
    def exit_code(self) -> int:
        if self.cannot_check is not None:
            return EXIT_CANNOT_CHECK
        return EXIT_HEALTHY if self.healthy else EXIT_UNHEALTHY

    def conditions(self) -> list[Any]:
        """Each check as an alert condition (``flows.alerts``), keyed by its name."""
        from flows.alerts import Condition

        return [Condition(check.name, not check.ok, check.detail) for check in self.checks]

    def as_json(self) -> dict[str, Any]:
        return {
            "warehouse": self.warehouse,
            "checked_at": self.checked_at.isoformat(),
            "healthy": self.healthy,
            "cannot_check": self.cannot_check,
            "checks": [asdict(check) for check in self.checks],
        }


def settings() -> dict[str, Any]:
    """``[health]`` of the project's configuration (``HEALTH__<NAME>`` overrides), with defaults."""
    from flows.config import section

    return section("health", DEFAULTS)


def check_health(warehouse: Warehouse, *, freshness: bool = True, record: bool = True) -> HealthReport:
    """Run every check against ``warehouse``; record the outcome as a ``health_check`` attempt unless
    ``record`` is False (or the warehouse cannot be reached)."""
    from loaders.common import audit

    report = HealthReport(warehouse=warehouse.describe(), checked_at=datetime.now(UTC))
    try:
        warehouse.query("select 1")
    except (ConfigurationError, WarehouseBusy) as exc:
        report.cannot_check = str(exc)
        return report
    report.checks.append(Check("warehouse", True, "answers"))
    config = settings()
    steps: list[Callable[[], list[Check]]] = [
        lambda: _sync_checks(warehouse, config),
        *([lambda: _freshness_checks(warehouse)] if freshness else []),
        lambda: _sales_checks(warehouse, config, report.checked_at.date()),
        lambda: _disk_checks(warehouse, config),
    ]
    for step in steps:
        report.checks.extend(step())
    if record:
        run = audit.SyncRun(sync_type=SYNC_TYPE, started_at=report.checked_at)
        run.records_processed = len(report.checks)
        run.records_rejected = len(report.failed)
        run.metadata = {
            "failed": [asdict(c) for c in report.failed],
            "checks": [asdict(c) for c in report.checks],
        }
        if report.healthy:
            run.succeed()
        else:
            run.fail("; ".join(f"{check.name}: {check.detail}" for check in report.failed))
        audit.record(warehouse, run)
    return report


def _sync_checks(warehouse: Warehouse, config: dict[str, Any]) -> list[Check]:
    from flows.status import StatusUnavailable, format_hours, sync_states

    try:
        states = sync_states(warehouse)
    except StatusUnavailable as exc:
        return [Check("sync status", False, str(exc))]
    checks = []
    for state in states:
        if state.sync_type == SYNC_TYPE:
            continue
        problems = state.problems()
        processed, rejected = state.last_records_processed or 0, state.last_records_rejected or 0
        if processed and rejected / processed > config["max_rejected_rate"]:
            problems.append(
                f"rejected {rejected} of {processed} records ({rejected / processed:.1%}, "
                f"more than {config['max_rejected_rate']:.1%})"
            )
        if state.abandoned_sync_count and state.last_sync_status == "abandoned":
            problems.append(f"{state.abandoned_sync_count} abandoned attempts in all")
        if problems and state.last_sync_status == "error" and state.last_error_message:
            error = " ".join(state.last_error_message.split())  # what an alert says failed
            problems.append(error if len(error) <= ERROR_CHARS else error[: ERROR_CHARS - 3] + "...")
        detail = (
            "; ".join(problems)
            or f"{state.last_sync_status}, last success {format_hours(state.age_hours)} ago"
        )
        checks.append(Check(f"sync {state.sync_type}", not problems, detail))
    return checks


def _freshness_checks(warehouse: Warehouse) -> list[Check]:
    """``dbt source freshness`` for the declared source tables the warehouse has (a deployment without
    a source, or a table no load has created yet, is not stale: the sync checks see what never ran)."""
    from flows.build_plan import declared_source_tables, missing_source_tables
    from flows.dbt_runner import invoke
    from flows.status import format_hours

    declared = declared_source_tables()
    missing = set(missing_source_tables(warehouse, list(declared)))
    present = [
        f"source:{source}.{table}"
        for source, (_, tables) in declared.items()
        for table in tables
        if f"{source}.{table}" not in missing
    ]
    if not present:
        return []
    result = invoke(warehouse, "source freshness", present)
    if not result.statuses:
        return [Check("freshness", False, result.message())]
    checks = []
    for unique_id, status in sorted(result.statuses.items()):
        table = unique_id.split(".", 2)[-1]  # source.<project>.<source>.<table>
        age = result.ages.get(unique_id)
        newest = "" if age is None else f": newest row {format_hours(age / 3600)} old"
        said = {
            "pass": "fresh",
            "warn": "warn (older than warn_after)",
            "error": "error (older than error_after)",
        }
        checks.append(
            Check(f"freshness {table}", status in ("pass", "warn"), said.get(status, status) + newest)
        )
    return checks


def _sales_checks(warehouse: Warehouse, config: dict[str, Any], today: date) -> list[Check]:
    """Lines for yesterday (UTC) in ``fct_sales``, in total or per configured region."""
    if not warehouse.has_table("marts", "fct_sales"):
        return []
    yesterday = today - timedelta(days=1)
    rows = warehouse.query(
        "select region, count(*) from marts.fct_sales "
        f"where order_date = {warehouse.paramstyle} group by region",
        (yesterday,),
    )
    by_region = {str(region): int(count) for region, count in rows}
    if not config["sales_regions"]:
        total = sum(by_region.values())
        return [Check("sales yesterday", total > 0, f"{total} lines on {yesterday}")]
    return [
        Check(
            f"sales yesterday {region}",
            by_region.get(region, 0) > 0,
            f"{by_region.get(region, 0)} lines on {yesterday}",
        )
        for region in config["sales_regions"]
    ]


def _disk_checks(warehouse: Warehouse, config: dict[str, Any]) -> list[Check]:
    from flows.backup import backup_dir

    places: dict[str, Path] = {"backups": backup_dir()}
    storage = _attachments_storage()
    if storage is not None:
        places["attachments"] = storage
    if warehouse.duckdb_path is not None:
        places["warehouse"] = warehouse.duckdb_path.parent
    checks = []
    for name, path in places.items():
        existing = path
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent  # not created yet: the disk it will be on
        free_gb = shutil.disk_usage(existing).free / 1024**3
        ok = free_gb >= config["min_free_gb"]
        checks.append(
            Check(
                f"disk {name}", ok, f"{free_gb:.1f} GiB free at {path} (at least {config['min_free_gb']:g})"
            )
        )
    return checks


def _attachments_storage() -> Path | None:
    """The ODK Central attachments folder when it is a local path (an object store has no disk here)."""
    import dlt

    storage = dlt.config.get("sources.odk_central.attachments_storage")
    if not storage or "://" in str(storage) and not str(storage).startswith("file://"):
        return None
    path = Path(str(storage).removeprefix("file://"))
    return path if path.is_absolute() else ROOT / path
