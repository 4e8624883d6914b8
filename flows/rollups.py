"""After dbt build: each rollup is a sync type of its own in the audit, and the findings users must see
(reconciliation mismatches, areas left out of the demographics) are counted in the run summary."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

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
    relation: str  # what the count reads


def audited(warehouse: Warehouse) -> dict[str, tuple[list[Rollup], list[Finding]]]:
    """dbt source -> (its rollups, its findings), as the models' YAML declares them (``meta: {rollup:
    <sync type>}``, ``meta: {finding: {what, where, count_where}}``; see ``flows.manifest``)."""
    from flows.manifest import declaring

    by_source: dict[str, tuple[list[Rollup], list[Finding]]] = {}
    for model in declaring(warehouse, "rollup"):
        for source in model.sources:
            by_source.setdefault(source, ([], []))[0].append(Rollup(model.meta["rollup"], model.relation))
    for model in declaring(warehouse, "finding"):
        finding = model.meta["finding"]
        sql = f"select count(*) from {model.relation} where {finding.get('count_where', 'true')}"
        for source in model.sources:
            by_source.setdefault(source, ([], []))[1].append(
                Finding(finding["what"], sql, finding.get("where", model.relation), model.relation)
            )
    return by_source


def coverage_mark(warehouse: Warehouse) -> Any:
    """The latest coverage change recorded so far (None before the first), read before dbt build so the
    run can report its own changes afterwards."""
    try:
        return warehouse.query("select max(changed_at) from audit.rpt_coverage_changes")[0][0]
    except Exception:  # not built yet
        return None


def coverage_changes(warehouse: Warehouse, since: Any) -> str | None:
    """``coverage rows created/updated/removed: municipality 3/5/0, ...`` for the changes after ``since``."""
    try:
        sql = (
            "select admin_level, sum(created_count), sum(updated_count), sum(removed_count) "
            "from audit.rpt_coverage_changes"
        )
        params: tuple[Any, ...] = ()
        if since is not None:
            sql += f" where changed_at > {warehouse.paramstyle}"
            params = (since,)
        rows = warehouse.query(sql + " group by admin_level", params)
    except Exception:  # the snapshot was not built
        return None
    counts = {level: (int(c), int(u), int(r)) for level, c, u, r in rows}
    parts = [
        f"{level} {'/'.join(map(str, counts.get(level, (0, 0, 0))))}"
        for level in ("municipality", "province", "region")
    ]
    return "coverage rows created/updated/removed: " + ", ".join(parts)


def record_rollups(
    warehouse: Warehouse,
    sources: list[str],
    flow_run_id: str | None = None,
    coverage_since: Any = None,
    waiting: Collection[str] = (),
) -> tuple[int, list[str], list[str]]:
    """Audit one row per rollup of the ``sources`` (records = its rows); return the rollups' rows, the
    findings as sentences (``3 areas do not reconcile (elt reconcile registration)``) and notes (the
    coverage changes of this run). A source ``waiting`` for a table no load has created yet has
    rollups dbt did not build: those are noted, not audited."""
    rows = 0
    findings: list[str] = []
    notes: list[str] = []
    declared = audited(warehouse)
    for source in sources:
        source_rollups, source_findings = declared.get(source, ([], []))
        if source in waiting:
            unbuilt = [
                r.relation for r in source_rollups if not warehouse.has_table(*r.relation.split(".", 1))
            ]
            unbuilt += [
                f.where for f in source_findings if not warehouse.has_table(*f.relation.split(".", 1))
            ]
            if unbuilt:
                notes.append(f"not built until {source} has all its tables: {', '.join(unbuilt)}")
                continue
        for rollup in source_rollups:
            run = audit.SyncRun(sync_type=rollup.sync_type, flow_run_id=flow_run_id)
            try:
                run.records_processed = int(warehouse.query(f"select count(*) from {rollup.relation}")[0][0])
            except Exception as exc:
                audit.record(warehouse, run.fail(f"{rollup.relation}: {exc}"))
                raise
            run.metadata = {"relation": rollup.relation}
            audit.record(warehouse, run.succeed())
            rows += run.records_processed
        for finding in source_findings:
            count = int(warehouse.query(finding.sql)[0][0])
            if count:
                findings.append(f"{count} {finding.what} ({finding.where})")
        if source == "communities":
            changed = coverage_changes(warehouse, coverage_since)
            if changed:
                notes.append(changed)
    return rows, findings, notes
