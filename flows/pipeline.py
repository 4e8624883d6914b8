"""One run: load each selected source (isolated) -> dbt build of the candidates -> expectations on them ->
publish (write, audit, publish: ``flows.publish``) -> rollups -> record outcome.

The steps are plain functions; a *runner* calls each one. ``elt run`` calls them directly (no Prefect
server, no Prefect home: a command-line run starts in a second and leaves no process behind);
the Prefect flow in ``flows/main.py`` runs the same steps as Prefect tasks, for deployments.

Whoever starts it, a run holds the warehouse's lock (``loaders.common.lock``) from start to end, marks
the attempts of runs that died as ``abandoned``, removes their working folders, and writes every attempt
(each source's load, ``dbt_build``, ``expectations``, ``publish``, the run as ``elt_run``) as ``running``
when it starts and completed when it ends. A failed dbt test or expectation publishes nothing: readers
keep the marts of the last run whose every check passed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from loaders.common import audit, progress
from loaders.common.lock import Holder, WarehouseLock, default_wait_seconds
from loaders.common.pipeline import RunOptions, remove_stale_workdirs
from loaders.common.quarantine import LoadStats
from loaders.common.warehouse import ROOT, ConfigurationError, Warehouse, number_setting
from loaders.registry import resolve, run_sync

T = TypeVar("T")


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
    configuration: bool = False  # the error is a setting to fix (not retried; exit status 2)
    not_loaded: list[str] = field(default_factory=list)  # dbt source tables no load has created yet


@dataclass
class RunSummary:
    target: str
    steps: list[StepOutcome] = field(default_factory=list)
    run_id: str | None = None
    abandoned: int = 0  # attempts of earlier runs found dead and marked abandoned
    report: Path | None = None  # the status dashboard, refreshed at the end of the run
    warnings: list[str] = field(default_factory=list)  # what went wrong besides the steps

    @property
    def success(self) -> bool:
        return all(step.status != "error" for step in self.steps)

    @property
    def failed(self) -> list[str]:
        return [step.name for step in self.steps if step.status == "error"]

    @property
    def configuration_errors(self) -> list[str]:
        return [step.error or step.name for step in self.steps if step.configuration]


class Runner(Protocol):
    """Calls one step: directly, or as a Prefect task. Raises what the step raised."""

    def __call__(self, name: str, fn: Callable[..., T], args: tuple[Any, ...], retries: int = 0) -> T: ...


def call_directly(name: str, fn: Callable[..., T], args: tuple[Any, ...], retries: int = 0) -> T:
    """Run a step in this process, retrying it ``retries`` times after an error that is not a setting
    to fix (``ELT_RETRY_DELAY_SECONDS`` apart, 10 s by default)."""
    if not retries:
        return fn(*args)
    import tenacity

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(retries + 1),
        wait=tenacity.wait_fixed(retry_delay_seconds()),
        retry=tenacity.retry_if_exception(is_transient),
        reraise=True,
    )
    return retrying(fn, *args)


def retry_delay_seconds() -> float:
    return number_setting("ELT_RETRY_DELAY_SECONDS", 10.0)


class StepFailed(RuntimeError):
    """A step's error as one redacted line, for a runner that stores and logs errors (Prefect keeps a
    task's exception, its traceback and its repr in its database)."""

    def __init__(self, message: str, *, configuration: bool) -> None:
        super().__init__(message)
        self.configuration = configuration


def is_configuration(exc: BaseException) -> bool:
    return isinstance(exc, ConfigurationError) or getattr(exc, "configuration", False) is True


def is_transient(exc: BaseException) -> bool:
    """Whether trying again may help: not for a setting to fix, nor for an interrupt."""
    return isinstance(exc, Exception) and not is_configuration(exc)


def load_retries() -> int:
    return int(number_setting("ELT_LOAD_RETRIES", 1, whole=True))


# -- the steps ----------------------------------------------------------------------------------------


def load_source(
    name: str, warehouse: Warehouse, options: RunOptions, flow_run_id: str | None = None
) -> StepOutcome:
    """Load one source; its attempt is audited whatever happens (raises on failure)."""
    stats = LoadStats()
    run = audit.SyncRun(sync_type=name, flow_run_id=flow_run_id)
    try:
        with audit.attempt(warehouse, run):
            try:
                info = run_sync(name, warehouse, options, stats)
            finally:
                run.records_processed, run.records_rejected = stats.read, stats.rejected
                run.metadata = stats.as_dict()
            run.cursor_value = _cursor_timestamp(stats.cursor)
            run.load_id = info.loads_ids[-1] if getattr(info, "loads_ids", None) else None
    finally:
        if run.status != "running":
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
        audit.record(warehouse, part_run)


def _cursor_timestamp(cursor: str | None) -> str | None:
    """Cursors are kept as ISO timestamps in UTC; a date cursor is that day's midnight."""
    if cursor and len(cursor) == 10:
        return f"{cursor}T00:00:00+00:00"
    return cursor


def _load_detail(stats: LoadStats) -> str:
    parts = []
    if stats.attachments_downloaded is not None:
        parts.append(f"{stats.attachments_downloaded} attachments downloaded")
    elif stats.files_loaded or stats.files_skipped or stats.files_rejected:
        parts.append(f"files loaded {len(stats.files_loaded)}, unchanged {len(stats.files_skipped)}")
    if stats.files_rejected:
        names = ", ".join(entry.split(": ", 1)[0] for entry in stats.files_rejected[:3])
        more = f" and {len(stats.files_rejected) - 3} more" if len(stats.files_rejected) > 3 else ""
        parts.append(f"files rejected {len(stats.files_rejected)} ({names}{more}: see rejected_rows)")
    if stats.files_pending:
        parts.append(f"{len(stats.files_pending)} files still being written, left for the next run")
    if stats.files_changed:
        parts.append(f"{len(stats.files_changed)} files changed while read, to be read again next run")
    if stats.unchanged:
        parts.append(f"{stats.unchanged} unchanged")
    if stats.deleted:
        parts.append(f"{stats.deleted} deleted")
    if stats.requests:
        parts.append(f"{stats.requests} requests, {stats.http_errors} retried errors")
    if stats.cursor and stats.requests:
        parts.append(f"cursor {stats.cursor}")
    parts += stats.notes
    return "; ".join(parts)


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


def dbt_build(
    warehouse: Warehouse, full_refresh: bool = False, flow_run_id: str | None = None
) -> tuple[StepOutcome, list[str]]:
    """``dbt build`` of the sources whose raw data changed since their last build (and their seeds),
    in-process, into the candidate schemas (``flows.publish``: nothing published changes until the
    publish step); returns the outcome and the sources built."""
    from flows import publish
    from flows.build_plan import missing_source_tables, plan
    from flows.dbt_runner import invoke
    from flows.manifest import models, read_source_tables

    build = plan(warehouse, available_dbt_sources(warehouse), full_refresh)
    if not build.sources:
        return StepOutcome(name="dbt_build", status="skipped", detail=build.reason), []
    # a source's seeds with the models built from them (e.g. the PSGC hierarchy, from the seed alone)
    seeds = [f"path:seeds/{name}+" for name in build.seeds() if (ROOT / "seeds" / name).is_dir()]
    not_loaded: list[str] = []
    run = audit.SyncRun(sync_type="dbt_build", flow_run_id=flow_run_id)
    with audit.attempt(warehouse, run):
        removed = publish.drop_candidates(warehouse)  # an earlier run's, kept after a failed check
        read = read_source_tables(warehouse)  # (dbt's manifest: may run dbt parse)
        not_loaded = [table for table in missing_source_tables(warehouse, build.sources) if table in read]
        incremental = [  # and snapshots: each adds to what it holds
            model.relation
            for model in models(warehouse).values()
            if (model.materialized == "incremental" or model.resource_type == "snapshot")
            and model.sources & set(build.sources)
            and not model.source_tables & set(not_loaded)
        ]
        cloned = [] if full_refresh else publish.clone_incrementals(warehouse, incremental)
        result = invoke(
            warehouse,
            "build",
            [*(f"source:{name}+" for name in build.sources), *seeds],
            # the models and tests of a table no load has created yet are skipped, not failed; unit
            # tests check the SQL on fixtures, not the data (CI's `dbt build` runs them), and dbt
            # reads their inputs' columns from the candidate relation, which an input this build
            # does not rebuild has not
            exclude=[*(f"source:{table}+" for table in not_loaded), "resource_type:unit_test"],
            full_refresh=full_refresh,
            candidate=True,
        )
        run.records_processed = result.passed
        run.metadata = {
            "nodes": result.nodes,
            "failures": result.failures[:20],
            "not_loaded": not_loaded,
            "cloned": cloned,
            "candidates_removed": removed,
            **build.metadata(),
        }
        if not result.success:
            kept = publish.kept_message(warehouse) or "nothing was published"
            run.fail(f"dbt build failed: {result.message()}; {kept}")
    if run.status == "success":
        waiting = f"; no data yet in {', '.join(not_loaded)}: their models skipped" if not_loaded else ""
        outcome = StepOutcome(
            name="dbt_build",
            status="success",
            detail=f"{run.records_processed} nodes built or passed ({build.reason}){waiting}",
            duration_seconds=run.duration_seconds,
            not_loaded=not_loaded,
        )
        return outcome, build.sources
    outcome = StepOutcome(
        name="dbt_build", status="error", error=run.error_message, duration_seconds=run.duration_seconds
    )
    return outcome, []


def check_expectations(
    warehouse: Warehouse,
    sources: list[str],
    flow_run_id: str | None = None,
    not_loaded: list[str] | None = None,
) -> StepOutcome:
    """The Great Expectations suites for the marts of ``sources``; a failed expectation fails the run.
    A mart not built because a source table it reads has no data yet (``not_loaded``) is not checked."""
    from flows.dashboard import GX_DOCS, reports_dir
    from flows.expectations import run_expectations

    run = audit.SyncRun(sync_type="expectations", flow_run_id=flow_run_id)
    with audit.attempt(warehouse, run):
        result = run_expectations(
            warehouse,
            sources=sources,
            waiting=not_loaded or [],
            docs=reports_dir() / GX_DOCS.parent,
            candidate=True,
        )
        run.records_processed = result.evaluated
        run.records_rejected = len(result.failures)
        run.metadata = {
            "suites": result.suites_run,
            "failures": [f.__dict__ for f in result.failures],
            "row_counts": result.row_counts,  # what the next check's rows.max_drop compares with
            # every expectation and its outcome, numbered: audit.rpt_expectation_results
            "checked": [{"position": index, **entry} for index, entry in enumerate(result.checked, 1)],
        }
        if result.docs_error:
            run.metadata["docs_error"] = result.docs_error
        if not result.success:
            from flows.publish import kept_message

            kept = kept_message(warehouse)
            run.fail(result.message() + (f"\n{kept}" if kept else ""))
    if run.status == "success":
        return StepOutcome(
            name="expectations",
            status="success",
            detail=f"{result.evaluated} expectations in {len(result.suites_run)} suites passed"
            + (f" (no Data Docs: {result.docs_error})" if result.docs_error else ""),
            duration_seconds=run.duration_seconds,
        )
    return StepOutcome(
        name="expectations",
        status="error",
        error=run.error_message,
        duration_seconds=run.duration_seconds,
    )


def publish_candidates(warehouse: Warehouse, flow_run_id: str | None = None) -> StepOutcome:
    """The ``publish`` step: the checked candidates in one transaction (``flows.publish``), audited as
    a ``publish`` attempt with the relations swapped and their row counts before and after."""
    from flows.publish import publish

    run = audit.SyncRun(sync_type="publish", flow_run_id=flow_run_id)
    with audit.attempt(warehouse, run):
        published = publish(warehouse)
        run.records_processed = len(published.relations)
        run.metadata = {
            "relations": published.relations,
            "seconds": published.seconds,
            "tries": published.tries,
        }
    return StepOutcome(
        name="publish",
        status="success",
        detail=published.summary(),
        duration_seconds=run.duration_seconds,
    )


def rollups(
    warehouse: Warehouse,
    built: list[str],
    coverage_since: Any = None,
    flow_run_id: str | None = None,
    not_loaded: list[str] | None = None,
) -> StepOutcome | None:
    """Audit each rollup rebuilt as a sync type; report reconciliation mismatches and demographic
    exceptions."""
    from flows.rollups import audited, record_rollups

    declared = audited(warehouse)
    sources = [name for name in built if name in declared]
    if not sources:
        return None
    waiting = {table.split(".", 1)[0] for table in not_loaded or []}
    rows, findings, notes = record_rollups(warehouse, sources, flow_run_id, coverage_since, waiting)
    return StepOutcome(
        name="rollups",
        status="warning" if findings else "success",
        detail="; ".join([f"{rows} rollup rows", *findings, *notes]),
    )


# -- the run ------------------------------------------------------------------------------------------


def failed_step(name: str, exc: BaseException) -> StepOutcome:
    return StepOutcome(
        name=name,
        status="error",
        error=str(exc) if isinstance(exc, StepFailed) else audit.describe_error(exc),
        configuration=is_configuration(exc),
    )


def _call(runner: Runner, step: str, fn: Callable[..., Any], args: tuple[Any, ...], retries: int = 0) -> Any:
    """A step's result, or its failure as an outcome (one source failing does not stop the others)."""
    try:
        return runner(step, fn, args, retries)
    except Exception as exc:
        return failed_step(step, exc)


def run(
    sources: list[str] | None = None,
    target: str | None = None,
    full_refresh: bool = False,
    days: int | None = None,
    levels: list[str] | None = None,
    *,
    runner: Runner = call_directly,
    flow_run_id: str | None = None,
    wait_seconds: float | None = None,
    on_wait: Callable[[Holder | None], None] | None = None,
) -> RunSummary:
    """Hold the warehouse, then load, build, check and record, calling each step with ``runner`` (in
    this process, without Prefect, by default); return the summary, failed or not.

    Raises ``ConfigurationError`` (the warehouse cannot be reached, an unknown source) and
    ``WarehouseBusy`` (another run held the warehouse for longer than ``wait_seconds``).
    """
    warehouse = Warehouse.from_env(target)
    run = audit.SyncRun(sync_type="elt_run", flow_run_id=flow_run_id)
    summary = RunSummary(target=warehouse.target, run_id=run.sync_run_id)
    # every setting of the run's own is read before it starts: a wrong one stops it here, in one line
    wait = default_wait_seconds() if wait_seconds is None else wait_seconds
    beat_every, _, _ = audit.heartbeat_seconds(), load_retries(), retry_delay_seconds()
    progress.choice()
    lock = WarehouseLock(warehouse, run.sync_run_id)
    lost: list[str] = []

    def check_lock() -> None:
        if not lost and (problem := lock.verify()):
            lost.append(problem)

    with lock.held(wait, on_wait):
        audit.ensure_audit_table(warehouse)
        summary.abandoned = audit.mark_abandoned(warehouse)
        remove_stale_workdirs()
        with audit.heartbeat(warehouse, beat_every, also=check_lock), audit.attempt(warehouse, run):
            options = RunOptions(
                full_refresh=full_refresh, days=days, levels=tuple(levels) if levels else None
            )
            _steps(summary, warehouse, resolve(sources), options, runner, flow_run_id)
            check_lock()
            if lost:
                summary.steps.append(
                    StepOutcome(name="lock", status="error", error=f"lost the warehouse lock: {lost[0]}")
                )
            run.records_processed = sum(step.loaded or 0 for step in summary.steps)
            run.records_rejected = sum(step.rejected or 0 for step in summary.steps)
            run.metadata = {
                "steps": {step.name: step.status for step in summary.steps},
                "seconds": {step.name: round(step.duration_seconds, 3) for step in summary.steps},
            }
            if summary.abandoned:
                run.metadata["abandoned_marked"] = summary.abandoned
            if not summary.success:
                run.fail(f"failed: {', '.join(summary.failed)}")
        # still holding the warehouse, and after the run's own attempt, so that the page shows it
        summary.report, summary.warnings = _refresh_report(warehouse, summary)
    _alert(warehouse, summary)
    return summary


def _refresh_report(warehouse: Warehouse, summary: RunSummary) -> tuple[Path | None, list[str]]:
    """The status dashboard, and the dbt docs when the run rebuilt models (``flows.dashboard``)."""
    from flows.dashboard import refresh

    built = any(step.name == "dbt_build" and step.status == "success" for step in summary.steps)
    return refresh(warehouse, dbt_docs=built)


def _alert(warehouse: Warehouse, summary: RunSummary) -> None:
    """Failed steps, their recoveries and abandoned attempts to the alert destinations (``flows.alerts``;
    never raises)."""
    from flows.alerts import Condition, abandoned_message, notify

    conditions = [
        Condition(f"sync {step.name}", step.status == "error", step.error or step.detail or step.status)
        for step in summary.steps
        if step.status in ("success", "error")
    ]
    notify(
        warehouse, conditions, [abandoned_message(warehouse, summary.abandoned)] if summary.abandoned else []
    )


def _steps(
    summary: RunSummary,
    warehouse: Warehouse,
    names: list[str],
    options: RunOptions,
    runner: Runner,
    flow_run_id: str | None,
) -> None:
    for name in names:
        summary.steps.append(
            _call(runner, name, load_source, (name, warehouse, options, flow_run_id), load_retries())
        )

    from flows.rollups import coverage_mark

    coverage_since = coverage_mark(warehouse)
    built = _call(runner, "dbt_build", dbt_build, (warehouse, options.full_refresh, flow_run_id))
    outcome, built_sources = built if isinstance(built, tuple) else (built, [])
    summary.steps.append(outcome)
    if outcome.status != "success":
        reason = "dbt build failed" if outcome.status == "error" else "no model was rebuilt"
        summary.steps.append(StepOutcome(name="expectations", status="skipped", detail=reason))
        return
    checked = _call(
        runner,
        "expectations",
        check_expectations,
        (warehouse, built_sources, flow_run_id, outcome.not_loaded),
    )
    summary.steps.append(checked)
    if checked.status == "error":
        summary.steps.append(
            StepOutcome(name="publish", status="skipped", detail="an expectation failed: nothing published")
        )
        return
    published = _call(runner, "publish", publish_candidates, (warehouse, flow_run_id))
    summary.steps.append(published)
    if published.status == "error":
        return
    rolled = _call(
        runner,
        "rollups",
        rollups,
        (warehouse, built_sources, coverage_since, flow_run_id, outcome.not_loaded),
    )
    if rolled is not None:
        summary.steps.append(rolled)
