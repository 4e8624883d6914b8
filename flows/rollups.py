"""After dbt build: each rollup is a sync type of its own in the audit, and the findings users must see
(reconciliation mismatches, areas left out of the demographics) are counted in the run summary."""

from __future__ import annotations

from dataclasses import dataclass

from loaders.common import audit
from loaders.common.warehouse import Warehouse


@dataclass(frozen=True)
class Rollup:
    sync_type: str
    relation: str


@dataclass(frozen=True)
class Finding:
    what: str
    sql: str
    where: str  # where a user reads the rows


ROLLUPS: dict[str, tuple[Rollup, ...]] = {
    "registration": (
        Rollup("registration.rollup.wards", "marts.dim_wards"),
        Rollup("registration.rollup.constituencies", "marts.dim_constituencies"),
        Rollup("registration.rollup.counties", "marts.dim_counties"),
        Rollup("registration.demographics", "marts.agg_demographics_by_area"),
    ),
}
FINDINGS: dict[str, tuple[Finding, ...]] = {
    "registration": (
        Finding(
            "areas do not reconcile",
            "select count(*) from audit.rpt_registration_reconciliation where status <> 'match'",
            "elt reconcile registration",
        ),
        Finding(
            "areas without registered voters left out of the demographics",
            "select count(*) from audit.rpt_demographics_exceptions",
            "audit.rpt_demographics_exceptions",
        ),
    ),
}


def record_rollups(
    warehouse: Warehouse, sources: list[str], flow_run_id: str | None = None
) -> tuple[int, list[str]]:
    """Audit one row per rollup of the ``sources`` (records = its rows); return the rollups' rows and
    the findings as sentences (``3 areas do not reconcile (elt reconcile registration)``)."""
    rows = 0
    findings: list[str] = []
    for source in sources:
        for rollup in ROLLUPS.get(source, ()):
            run = audit.SyncRun(sync_type=rollup.sync_type, flow_run_id=flow_run_id)
            try:
                run.records_processed = int(warehouse.query(f"select count(*) from {rollup.relation}")[0][0])
            except Exception as exc:
                audit.record(warehouse, run.fail(f"{rollup.relation}: {exc}"))
                raise
            run.metadata = {"relation": rollup.relation}
            audit.record(warehouse, run.succeed())
            rows += run.records_processed
        for finding in FINDINGS.get(source, ()):
            count = int(warehouse.query(finding.sql)[0][0])
            if count:
                findings.append(f"{count} {finding.what} ({finding.where})")
    return rows, findings
