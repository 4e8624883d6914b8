"""The main flow: load each selected source (isolated) -> dbt build -> expectations -> record outcome.

Every step writes its attempt to ``audit.sync_runs`` (success or failure) on a connection of its own.
The flow runs in-process (``elt run``) or as a scheduled deployment (``prefect.yaml``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from prefect import flow, task
from prefect.runtime import flow_run
from prefect.states import Failed, State

from loaders.common import audit
from loaders.common.quarantine import LoadStats
from loaders.common.warehouse import ROOT, Warehouse, redact
from loaders.registry import RunOptions, resolve, run_sync


@dataclass
class StepOutcome:
    """What one step did, for the run summary."""

    name: str
    status: str  # success | warning (done, with findings to read) | error | skipped
    read: int | None = None
    loaded: int | None = None
    rejected: int | None = None
    detail: str = ""
    error: str | None = None
    duration_seconds: float = 0.0


@dataclass
class RunSummary:
    target: str
    steps: list[StepOutcome] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return all(step.status != "error" for step in self.steps)

    @property
    def failed(self) -> list[str]:
        return [step.name for step in self.steps if step.status == "error"]


@contextmanager
def warehouse_env(warehouse: Warehouse) -> Iterator[None]:
    """Point dbt's profile (and anything else reading ELT_*) at ``warehouse`` for the duration."""
    with scoped_env(warehouse.env()):
        yield


@contextmanager
def scoped_env(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of the block, then restore them."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _flow_run_id() -> str | None:
    run_id = flow_run.get_id()
    return str(run_id) if run_id else None


def _record(warehouse: Warehouse, run: audit.SyncRun) -> None:
    audit.record(warehouse, run)


@task(name="load-source", retries=1, retry_delay_seconds=10, timeout_seconds=3600)
def load_source(name: str, warehouse: Warehouse, options: RunOptions) -> StepOutcome:
    """Load one source; its attempt (each retry too) is audited whatever happens."""
    stats = LoadStats()
    run = audit.SyncRun(sync_type=name, flow_run_id=_flow_run_id())
    try:
        info = run_sync(name, warehouse, options, stats)
    except BaseException as exc:
        run.metadata = stats.as_dict()
        run.records_processed, run.records_rejected = stats.read, stats.rejected
        _record(warehouse, run.fail(_root_cause(exc)))
        _record_parts(warehouse, run, stats)
        raise
    run.records_processed, run.records_rejected = stats.read, stats.rejected
    run.cursor_value = _cursor_timestamp(stats.cursor)
    run.metadata = stats.as_dict()
    run.load_id = info.loads_ids[-1] if getattr(info, "loads_ids", None) else None
    _record(warehouse, run.succeed())
    _record_parts(warehouse, run, stats)
    return StepOutcome(
        name=name,
        status="success",
        read=stats.read,
        loaded=stats.loaded,
        rejected=stats.rejected,
        detail=_load_detail(stats),
        duration_seconds=run.duration_seconds,
    )


def _record_parts(warehouse: Warehouse, run: audit.SyncRun, stats: LoadStats) -> None:
    """The parts of a source that are sync types of their own (a form's submissions, each repeat
    table, attachments) share the source's attempt: same outcome, their own counts."""
    for part, counts in stats.parts.items():
        part_run = audit.SyncRun(
            sync_type=part,
            flow_run_id=run.flow_run_id,
            started_at=run.started_at,
            finished_at=run.finished_at,
            status=run.status,
            records_processed=counts["processed"],
            records_rejected=counts["rejected"],
            error_message=run.error_message,
            cursor_value=run.cursor_value,
            metadata={"source": run.sync_type},
            load_id=run.load_id,
        )
        _record(warehouse, part_run)


def _cursor_timestamp(cursor: str | None) -> str | None:
    """Cursors are kept as ISO timestamps in UTC; a date cursor is that day's midnight."""
    if cursor and len(cursor) == 10:
        return f"{cursor}T00:00:00+00:00"
    return cursor


def _load_detail(stats: LoadStats) -> str:
    parts = []
    downloads = any(name.endswith(".attachments") for name in stats.parts)
    if downloads:
        parts.append(f"{len(stats.files_loaded)} attachments downloaded")
    elif stats.files_loaded or stats.files_skipped:
        parts.append(f"files loaded {len(stats.files_loaded)}, unchanged {len(stats.files_skipped)}")
    if stats.unchanged:
        parts.append(f"{stats.unchanged} unchanged")
    if stats.deleted:
        parts.append(f"{stats.deleted} deleted")
    if stats.requests:
        parts.append(f"{stats.requests} requests, {stats.http_errors} retried errors")
    if stats.cursor and stats.requests:
        parts.append(f"cursor {stats.cursor}")
    return "; ".join(parts)


def _root_cause(exc: BaseException) -> str:
    """The innermost error, which says what went wrong (dlt wraps errors in step errors); an error raised
    ``from None`` already says it (its context is a detail it replaces)."""
    inner: BaseException = exc
    seen = set()
    while id(inner) not in seen:
        seen.add(id(inner))
        following = inner.__cause__ or (None if inner.__suppress_context__ else inner.__context__)
        if following is None:
            break
        inner = following
    text = f"{type(inner).__name__}: {inner}"
    return redact(text.strip().splitlines()[0] if text.strip() else type(inner).__name__)


def available_dbt_sources(warehouse: Warehouse) -> list[str]:
    """dbt sources whose raw schema holds tables: a warehouse that never loaded a source (a sales-only
    deployment) builds the models of the sources it has instead of failing on the missing ones."""
    from loaders.registry import SYNCS

    schemas = sorted({sync.dataset for sync in SYNCS.values()}) + ["audit"]
    placeholders = ", ".join([warehouse.paramstyle] * len(schemas))
    rows = warehouse.query(
        f"select distinct table_schema from information_schema.tables where table_schema in ({placeholders})",
        tuple(schemas),
    )
    present = {schema for (schema,) in rows}
    return [schema.removeprefix("raw_") for schema in schemas if schema in present]


@task(name="dbt-build", timeout_seconds=3600)
def dbt_build(warehouse: Warehouse, full_refresh: bool = False) -> tuple[StepOutcome, list[str]]:
    """``dbt build`` of the sources whose raw data changed since their last build (and their seeds),
    in-process; returns the outcome and the sources built."""
    from flows.build_plan import plan
    from flows.dbt import invoke

    run = audit.SyncRun(sync_type="dbt_build", flow_run_id=_flow_run_id())
    build = plan(warehouse, available_dbt_sources(warehouse), full_refresh)
    if not build.sources:
        return StepOutcome(name="dbt_build", status="skipped", detail=build.reason), []
    # a source's seeds with the models built from them (e.g. dim_psgc_areas, from the PSGC alone)
    seeds = [f"path:seeds/{name}+" for name in build.seeds() if (ROOT / "seeds" / name).is_dir()]
    result = invoke(
        warehouse,
        "build",
        [*(f"source:{name}+" for name in build.sources), *seeds],
        full_refresh=full_refresh,
    )
    run.records_processed = result.passed
    run.metadata = {"nodes": result.nodes, "failures": result.failures[:20], **build.metadata()}
    if result.success:
        _record(warehouse, run.succeed())
        outcome = StepOutcome(
            name="dbt_build",
            status="success",
            detail=f"{run.records_processed} nodes built or passed ({build.reason})",
            duration_seconds=run.duration_seconds,
        )
        return outcome, build.sources
    _record(warehouse, run.fail(f"dbt build failed: {result.message()}"))
    outcome = StepOutcome(
        name="dbt_build",
        status="error",
        error=run.error_message,
        duration_seconds=run.duration_seconds,
    )
    return outcome, []


@task(name="expectations", timeout_seconds=1800)
def check_expectations(warehouse: Warehouse, sources: list[str]) -> StepOutcome:
    """The Great Expectations suites for the marts of ``sources``; a failed expectation fails the run."""
    run = audit.SyncRun(sync_type="expectations", flow_run_id=_flow_run_id())
    try:
        from flows.expectations import run_expectations

        result = run_expectations(warehouse, sources=sources)
    except Exception as exc:
        _record(warehouse, run.fail(_root_cause(exc)))
        return StepOutcome(name="expectations", status="error", error=run.error_message)
    run.records_processed = result.evaluated
    run.records_rejected = len(result.failures)
    run.metadata = {"suites": result.suites_run, "failures": [f.__dict__ for f in result.failures]}
    if result.success:
        _record(warehouse, run.succeed())
        return StepOutcome(
            name="expectations",
            status="success",
            detail=f"{result.evaluated} expectations in {len(result.suites_run)} suites passed",
            duration_seconds=run.duration_seconds,
        )
    _record(warehouse, run.fail(result.message()))
    return StepOutcome(
        name="expectations",
        status="error",
        error=run.error_message,
        duration_seconds=run.duration_seconds,
    )


@task(name="rollups", timeout_seconds=600)
def rollups(warehouse: Warehouse, built: list[str], coverage_since: Any = None) -> StepOutcome | None:
    """Audit each rollup rebuilt as a sync type; report reconciliation mismatches and demographic
    exceptions."""
    from flows.rollups import ROLLUPS, record_rollups

    sources = [name for name in built if name in ROLLUPS]
    if not sources:
        return None
    try:
        rows, findings, notes = record_rollups(warehouse, sources, _flow_run_id(), coverage_since)
    except Exception as exc:
        return StepOutcome(name="rollups", status="error", error=_root_cause(exc))
    return StepOutcome(
        name="rollups",
        status="warning" if findings else "success",
        detail="; ".join([f"{rows} rollup rows", *findings, *notes]),
    )


@flow(name="elt-main", log_prints=False)
def main_flow(
    sources: list[str] | None = None,
    target: str | None = None,
    full_refresh: bool = False,
    days: int | None = None,
    levels: list[str] | None = None,
) -> RunSummary | State:
    """Load the selected sources, build the models, check the marts, record the outcome."""
    warehouse = Warehouse.from_env(target)
    options = RunOptions(full_refresh=full_refresh, days=days, levels=tuple(levels) if levels else None)
    summary = RunSummary(target=warehouse.target)
    audit.ensure_audit_table(warehouse)

    retries = int(os.environ.get("ELT_LOAD_RETRIES", "1"))
    for name in resolve(sources):
        state = load_source.with_options(name=f"load-{name}", retries=retries)(
            name, warehouse, options, return_state=True
        )
        if state.is_completed():
            summary.steps.append(state.result())
        else:
            summary.steps.append(StepOutcome(name=name, status="error", error=_state_error(state)))

    from flows.rollups import coverage_mark

    coverage_since = coverage_mark(warehouse)
    built, built_sources = dbt_build(warehouse, full_refresh)
    summary.steps.append(built)
    if built.status == "success":
        rolled = rollups(warehouse, built_sources, coverage_since)
        if rolled is not None:
            summary.steps.append(rolled)
        summary.steps.append(check_expectations(warehouse, built_sources))
    else:
        reason = "dbt build failed" if built.status == "error" else "no model was rebuilt"
        summary.steps.append(StepOutcome(name="expectations", status="skipped", detail=reason))

    outcome = audit.SyncRun(sync_type="elt_run", flow_run_id=_flow_run_id())
    outcome.records_processed = sum(step.loaded or 0 for step in summary.steps)
    outcome.records_rejected = sum(step.rejected or 0 for step in summary.steps)
    outcome.metadata = {"steps": {step.name: step.status for step in summary.steps}}
    if summary.success:
        _record(warehouse, outcome.succeed())
        return summary
    _record(warehouse, outcome.fail(f"failed: {', '.join(summary.failed)}"))
    # The flow run ends Failed (so deployments show it) and still hands back its summary.
    return Failed(message=f"failed: {', '.join(summary.failed)}", data=summary)


def _state_error(state: Any) -> str:
    try:
        state.result()
    except BaseException as exc:  # the task's exception, re-raised by Prefect
        return _root_cause(exc)
    return str(state.message or state.name)


def run(
    sources: list[str] | None = None,
    target: str | None = None,
    full_refresh: bool = False,
    days: int | None = None,
    levels: list[str] | None = None,
) -> RunSummary:
    """Run the main flow in-process and return its summary, failed or not."""
    state = main_flow(sources, target, full_refresh, days, levels, return_state=True)
    result = state.result(raise_on_failure=False)
    if isinstance(result, BaseException):
        raise result
    return result
