"""``elt``: the command line. ``elt run``, ``elt demo``, ``elt status``; ``--help`` on each.

Exit status: 0 success; 1 a step failed (the summary says which); 2 a setting to fix (one line on
stderr naming it); 3 the warehouse stayed busy with another run. No traceback unless ``--debug``.
Commands never start a Prefect server: ``elt run`` calls the steps directly (``flows/pipeline.py``).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from loaders.common.warehouse import ROOT, ConfigurationError, Warehouse, WarehouseBusy, redact

F = TypeVar("F", bound=Callable[..., Any])
EXIT_FAILED, EXIT_CONFIGURATION, EXIT_BUSY = 1, 2, 3

app = typer.Typer(
    help="Incremental ELT: dlt loaders -> dbt models -> Great Expectations checks, audited.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals may hold secrets
)

TargetOption = Annotated[
    str | None,
    typer.Option("--target", "-t", help="Warehouse: duckdb (default) or postgres; or ELT_TARGET."),
]


def _setup_environment() -> None:
    """Settings every command needs, whatever the working directory."""
    os.environ.setdefault("DLT_PROJECT_DIR", str(ROOT))
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("DO_NOT_TRACK", "1")


_debug = False


@app.callback()
def _options(
    debug: Annotated[
        bool, typer.Option("--debug", envvar="ELT_DEBUG", help="Show the traceback of an error.")
    ] = False,
) -> None:
    """Incremental ELT: dlt loaders -> dbt models -> Great Expectations checks, audited."""
    global _debug
    _debug = debug


def _fail(message: str, code: int = EXIT_FAILED) -> None:
    typer.echo(f"elt: {' '.join(redact(message).split())}", err=True)  # one line, whatever it quotes
    raise typer.Exit(code=code)


def handled(command: F) -> F:
    """One line on stderr and an exit status for the errors a user can meet (a traceback only with
    ``--debug``): a setting to fix (2), a busy warehouse (3), anything else (1)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _setup_environment()
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except ConfigurationError as exc:
            if _debug:
                raise
            _fail(str(exc), EXIT_CONFIGURATION)
        except WarehouseBusy as exc:
            if _debug:
                raise
            _fail(str(exc), EXIT_BUSY)
        except Exception as exc:
            if _debug:
                raise
            from loaders.common.audit import describe_error

            _fail(f"{describe_error(exc)} (run with --debug for the traceback)")

    return wrapper  # type: ignore[return-value]


WaitOption = Annotated[
    float | None,
    typer.Option(
        "--wait",
        min=0,
        help="Seconds to wait while another run holds the warehouse (default ELT_LOCK_WAIT_SECONDS or 600).",
    ),
]


def _waiting(holder: Any) -> None:
    """At a terminal, say why nothing happens yet (elsewhere only the outcome is a line of its own)."""
    if sys.stderr.isatty():
        who = holder.describe() if holder else "another run"
        typer.echo(f"elt: the warehouse is busy: {who} holds it; waiting", err=True)


@contextmanager
def _holding(warehouse: Warehouse, wait: float | None) -> Iterator[None]:
    """The warehouse's run lock for a command that writes (see loaders/common/lock.py)."""
    import uuid

    from loaders.common.lock import WarehouseLock, default_wait_seconds

    seconds = default_wait_seconds() if wait is None else wait
    with WarehouseLock(warehouse, uuid.uuid4().hex).held(seconds, _waiting):
        yield


YesOption = Annotated[
    bool,
    typer.Option(
        "--yes", "-y", help="Write to a warehouse marked production (ELT_PRODUCTION) without asking."
    ),
]


def _confirm_writes(warehouse: Warehouse, yes: bool, what: str) -> None:
    """A warehouse marked production (ELT_PRODUCTION=true) is written to only with --yes, or after a yes
    typed at a terminal."""
    if not warehouse.production or yes:
        return
    question = f"{warehouse.describe()} is marked production (ELT_PRODUCTION). {what}?"
    if sys.stdin.isatty() and typer.confirm(question, default=False):
        return
    _fail(
        f"{warehouse.describe()} is marked production: {what.lower()} needs --yes (or a yes at a terminal)",
        EXIT_CONFIGURATION,
    )


@app.command()
@handled
def run(
    source: Annotated[
        list[str] | None,
        typer.Option("--source", "-s", help="Source or group to load (repeatable); all when omitted."),
    ] = None,
    target: TargetOption = None,
    full_refresh: Annotated[
        bool,
        typer.Option(
            "--full-refresh",
            help="Forget cursors and loaded-file hashes (reload everything, merged on keys) "
            "and rebuild incremental models.",
        ),
    ] = False,
    days: Annotated[
        int | None,
        typer.Option("--days", min=0, help="API window of the last N days instead of the cursor."),
    ] = None,
    levels: Annotated[
        str | None,
        typer.Option(
            "--levels",
            help="Registration levels to read, comma-separated (e.g. counties,wards); all when omitted.",
        ),
    ] = None,
    yes: YesOption = False,
    wait: WaitOption = None,
) -> None:
    """Load the selected sources, run dbt build and the expectations, record the outcome."""
    from flows.pipeline import run as run_steps
    from flows.report import print_summary

    selected_levels = [name.strip() for name in levels.split(",") if name.strip()] if levels else None
    _confirm_writes(Warehouse.from_env(target), yes, "Load and build")
    summary = run_steps(
        source, target, full_refresh, days, selected_levels, wait_seconds=wait, on_wait=_waiting
    )
    print_summary(summary)
    _exit_for(summary)


def _exit_for(summary: Any, what: str = "run") -> None:
    if summary.configuration_errors:
        _fail("; ".join(summary.configuration_errors), EXIT_CONFIGURATION)
    if not summary.success:
        _fail(f"{what} failed: {', '.join(summary.failed)} (see the table above and `elt status`)")


@app.command()
@handled
def status(
    target: TargetOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Errors in full.")] = False,
) -> None:
    """Per sync type: the last attempt and success, staleness against its schedule, success rates and
    durations over 7 and 30 days. Exit 0 all healthy, 1 a latest attempt failed, was abandoned or is
    stale, 2 the status cannot be read."""
    import json

    from flows.report import print_status
    from flows.status import StatusUnavailable, sync_states
    from loaders.common.lock import reading

    warehouse = Warehouse.from_env(target)
    try:
        with reading(warehouse):
            states = sync_states(warehouse)
    except StatusUnavailable as exc:
        _fail(str(exc), EXIT_CONFIGURATION)
    except (ConfigurationError, WarehouseBusy):
        raise
    except Exception as exc:  # cannot check is 2, never 1 (unhealthy)
        from loaders.common.audit import describe_error

        _fail(f"cannot read the sync status: {describe_error(exc)}", EXIT_CONFIGURATION)
    healthy = all(state.healthy for state in states)
    if as_json:
        document = {
            "warehouse": warehouse.describe(),
            "healthy": healthy,
            "sync_types": [state.as_json() for state in states],
        }
        typer.echo(json.dumps(document, indent=2, default=str))
    else:
        typer.echo(f"Sync status ({warehouse.describe()}):")
        print_status(states, verbose=verbose)
    if not healthy:
        raise typer.Exit(code=EXIT_FAILED)


@app.command()
@handled
def health(
    target: TargetOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
    freshness: Annotated[
        bool, typer.Option("--freshness/--no-freshness", help="Run dbt source freshness (about 3 s).")
    ] = True,
    notify: Annotated[
        bool, typer.Option("--notify", help="Alert the destinations of [alerts] (failures once, recoveries).")
    ] = False,
) -> None:
    """Check that the warehouse is fed as it should be: every sync type's last attempt, age and rejected
    rows, dbt source freshness, yesterday's sales, free disk. Exit 0 healthy, 1 unhealthy, 2 cannot
    check. Recorded as a health_check attempt in the audit."""
    import json

    from flows.health import EXIT_CANNOT_CHECK, check_health
    from flows.report import print_health
    from loaders.common.lock import reading

    warehouse = Warehouse.from_env(target)
    try:
        with reading(warehouse):
            report = check_health(warehouse, freshness=freshness)
    except WarehouseBusy as exc:
        _fail(f"cannot check: {exc}", EXIT_CANNOT_CHECK)
    if notify and report.cannot_check is None:
        from flows.alerts import notify as send_alerts

        send_alerts(warehouse, report.conditions())
    if report.cannot_check is None:
        _refresh_dashboard(warehouse)
    if as_json:
        typer.echo(json.dumps(report.as_json(), indent=2, default=str))
    else:
        print_health(report)
    if report.exit_code:
        raise typer.Exit(code=report.exit_code)


def _refresh_dashboard(warehouse: Warehouse) -> Path | None:
    """Rewrite the status dashboard (a warning on stderr when it cannot be); return its path."""
    from flows.dashboard import refresh
    from loaders.common.lock import reading

    try:
        with reading(warehouse):
            page, problems = refresh(warehouse)
    except WarehouseBusy as exc:
        page, problems = None, [f"the status dashboard was not refreshed: {exc}"]
    for problem in problems:
        typer.echo(f"warning: {problem}", err=True)
    return page


@app.command()
@handled
def report(
    target: TargetOption = None,
    dbt_docs: Annotated[
        bool, typer.Option("--dbt-docs", help="Also generate the dbt docs site (a run does after a build).")
    ] = False,
) -> None:
    """Write the status dashboard, data/reports/status.html (ELT_REPORTS_DIR): the status of every sync
    type, charts of the last 30 days' attempts, the findings, coverage changes and expectations of the
    last run, and links to the dbt docs and the Data Docs. Opens from disk, with no server. A run and
    the health check refresh it too. Exit 2 before the first run."""
    from flows.dashboard import write_dbt_docs, write_report
    from flows.status import StatusUnavailable
    from loaders.common.lock import reading

    warehouse = Warehouse.from_env(target)
    try:
        with reading(warehouse):
            if dbt_docs:
                typer.echo(f"dbt docs: {write_dbt_docs(warehouse)}")
            page = write_report(warehouse)
    except StatusUnavailable as exc:
        _fail(str(exc), EXIT_CONFIGURATION)
    typer.echo(f"Dashboard: {page}")


@app.command()
@handled
def cleanup(
    target: TargetOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would go; remove nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
    wait: WaitOption = None,
) -> None:
    """Remove what is past its retention ([retention] in .dlt/config.toml): backups (30 days, the newest
    kept), audit attempts (180 days, each sync type's latest kept), working folders of runs that died,
    attachment files no row references (after 7 days). Waits while a run holds the warehouse."""
    import json

    from flows.cleanup import cleanup as clean
    from flows.report import print_cleanup

    report = clean(Warehouse.from_env(target), dry_run=dry_run, wait_seconds=wait)
    if as_json:
        typer.echo(json.dumps(report.as_json(), indent=2))
    else:
        print_cleanup(report)


@app.command()
@handled
def demo(
    samples: Annotated[Path, typer.Option(help="Where to write the generated sample sources.")] = ROOT
    / "data"
    / "samples",
    wait: WaitOption = None,
) -> None:
    """Generate the sample sources, start the local sales API and run everything into DuckDB."""
    from demo import sample_sources  # the harness, at this command's edge only
    from flows.pipeline import run as run_steps
    from flows.report import print_reconciliation, print_row_counts, print_status, print_summary, row_counts
    from flows.status import sync_states
    from loaders.common.warehouse import scoped_env

    with sample_sources(samples) as sources, scoped_env(sources.env):
        warehouse = Warehouse.from_env("duckdb")
        typer.echo(f"Warehouse: {warehouse.describe()}")
        typer.echo("\n".join(sources.about) + "\n")
        before = row_counts(warehouse)
        summary = run_steps(None, "duckdb", False, None, wait_seconds=wait, on_wait=_waiting)
    print_summary(summary)
    typer.echo("")
    print_row_counts(before, row_counts(warehouse))
    typer.echo("")
    print_status(sync_states(warehouse))
    typer.echo("")
    print_reconciliation(warehouse)
    _exit_for(summary, "demo")
    _demo_coverage(warehouse, samples, sources.community_records, wait)
    page = _refresh_dashboard(warehouse)  # with the coverage changes just published
    if page is not None:
        typer.echo(f"\nDashboard (opens from disk, no server needed): {page}")


def _demo_coverage(warehouse: Warehouse, samples: Path, first_batch: int, wait: float | None) -> None:
    """A later batch of community records is loaded; the coverage rebuild is previewed, then applied."""
    from demo import later_community_batch  # the harness, at the demo's edge only
    from flows.pipeline import load_source
    from loaders.common.pipeline import RunOptions
    from loaders.common.warehouse import scoped_env

    count, settings = later_community_batch(samples)
    typer.echo(
        f"\nCommunity coverage: {first_batch:,} records were loaded above; a later batch of {count} "
        "arrives (revised figures, one record deleted) and is loaded without publishing:"
    )
    with (
        scoped_env(settings),
        _holding(warehouse, wait),
    ):
        loaded = load_source("communities", warehouse, RunOptions())
    typer.echo(f"  read {loaded.read}, loaded {loaded.loaded}, rejected {loaded.rejected}; {loaded.detail}")
    typer.echo("\n$ elt coverage --dry-run")
    coverage(dry_run=True, region=None, sample=5, target=warehouse.target, yes=False, wait=wait)
    typer.echo("\n$ elt coverage")
    coverage(dry_run=False, region=None, sample=5, target=warehouse.target, yes=False, wait=wait)


@app.command()
@handled
def reconcile(
    source: Annotated[str, typer.Argument(help="What to reconcile: registration.")],
    target: TargetOption = None,
    limit: Annotated[int, typer.Option(min=1, help="Rows to print at most.")] = 50,
    county: Annotated[
        str | None, typer.Option(help="Only this county's areas (code, e.g. 047 or 47).")
    ] = None,
) -> None:
    """Print the areas whose figures do not reconcile (as of the last dbt build); exit 1 if any."""
    from flows.report import print_reconciliation
    from loaders.common.lock import reading

    if source != "registration":
        _fail(f"reconcile supports registration, not {source!r}", EXIT_CONFIGURATION)
    if county is not None:
        from loaders.common.values import normalise_code

        try:
            county = normalise_code(county, 3)
        except ValueError as exc:
            raise ConfigurationError(f"--county: {exc}") from None
    warehouse = Warehouse.from_env(target)
    with reading(warehouse):
        mismatches = print_reconciliation(warehouse, limit, county)
    if mismatches:
        _fail(f"{mismatches} areas do not reconcile")


@app.command()
@handled
def coverage(
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Build into a scratch schema and show the changes; publish nothing."),
    ] = False,
    region: Annotated[
        str | None, typer.Option(help="Only this region's changes (PSGC code, e.g. 1000000000 or 10).")
    ] = None,
    sample: Annotated[int, typer.Option(min=0, help="Changed rows to show per level.")] = 5,
    target: TargetOption = None,
    yes: YesOption = False,
    wait: WaitOption = None,
) -> None:
    """Rebuild the community coverage rollups from the loaded records, or preview it with --dry-run."""
    from flows.coverage import CoverageError, apply, preview
    from flows.report import print_coverage_changes

    warehouse = Warehouse.from_env(target)
    if region is not None:
        region = _region_code(region)
    if not dry_run:
        _confirm_writes(warehouse, yes, "Publish the coverage rollups")
    with _holding(warehouse, wait):
        try:
            changes = preview(warehouse, region, sample)
        except CoverageError as exc:
            _fail(str(exc))
            return
        where = f" in region {region}" if region else ""
        heading = "Dry run: a rebuild would change" if dry_run else "Applying: the rebuild changes"
        typer.echo(f"{heading}{where} ({warehouse.describe()}):")
        print_coverage_changes(changes)
        if dry_run:
            typer.echo("Nothing was published (the preview was built in a scratch schema, now dropped).")
            return
        result = apply(warehouse)
    if not result.success:
        _fail(f"publishing the coverage rollups failed: {result.message()}")
    typer.echo(
        f"Published: {result.passed} nodes built or passed; the changes are in audit.rpt_coverage_changes."
    )


def _region_code(value: str) -> str:
    from loaders.common.values import normalise_code

    text = value.strip()
    try:
        code = normalise_code(text, 2) + "00000000" if len(text) <= 2 else normalise_code(text, 10)
    except ValueError as exc:
        raise ConfigurationError(f"--region: {exc}") from None
    return code


@app.command()
@handled
def backup(
    output: Annotated[
        Path | None,
        typer.Option(
            help="Where to write it (PostgreSQL: a pg_dump file; DuckDB: a folder). Default data/backups/."
        ),
    ] = None,
    target: TargetOption = None,
    wait: WaitOption = None,
) -> None:
    """Back up the whole warehouse (pg_dump, or DuckDB's EXPORT DATABASE); `elt restore` reads it back.
    Taken between runs: it waits while a run holds the warehouse."""
    from flows.backup import backup_held

    path = backup_held(Warehouse.from_env(target), output, wait_seconds=wait)
    typer.echo(f"Backup written to {path}")


@app.command()
@handled
def restore(
    path: Annotated[Path, typer.Argument(help="A backup written by `elt backup`.")],
    target: TargetOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Replace the warehouse's contents.")] = False,
    wait: WaitOption = None,
) -> None:
    """Replace the warehouse's contents with a backup (always asks for --yes)."""
    from flows.backup import restore as read_backup

    warehouse = Warehouse.from_env(target)
    if not yes:
        _fail(f"restoring replaces everything in {warehouse.describe()}: pass --yes", EXIT_CONFIGURATION)
    with _holding(warehouse, wait):
        read_backup(warehouse, path)
    typer.echo(f"Restored {warehouse.describe()} from {path}")


state_app = typer.Typer(help="Inspect and seed the sources' incremental state.", no_args_is_help=True)
app.add_typer(state_app, name="state")


@state_app.command("set-cursor")
@handled
def set_cursor(
    source: Annotated[str, typer.Argument(help="The source: odk_central.")],
    form: Annotated[str, typer.Option("--form", help="The form (xml_form_id) whose cursor to set.")],
    from_file: Annotated[
        Path | None,
        typer.Option("--from-file", help="A file holding the timestamp, e.g. the old last_sync.txt."),
    ] = None,
    timestamp: Annotated[str | None, typer.Option("--timestamp", help="An ISO 8601 timestamp.")] = None,
    target: TargetOption = None,
    yes: YesOption = False,
    wait: WaitOption = None,
) -> None:
    """Seed a form's cursor so a team switching over does not download everything again."""
    from loaders.common.state import parse_cursor, read_cursor_file, set_resource_cursor

    if source != "odk_central":
        _fail(f"set-cursor supports odk_central, not {source!r}", EXIT_CONFIGURATION)
    if (from_file is None) == (timestamp is None):
        _fail("give exactly one of --from-file and --timestamp", EXIT_CONFIGURATION)
    moment = read_cursor_file(from_file) if from_file else parse_cursor(timestamp or "")
    warehouse = Warehouse.from_env(target)
    _confirm_writes(warehouse, yes, "Set the cursor")
    with _holding(warehouse, wait):
        set_resource_cursor(
            warehouse,
            pipeline_name="odk_central",
            dataset_name="raw_odk_central",
            source_name="odk_central",
            resource_name=form,
            values={"cursor": moment.isoformat(), "recent": {}},
        )
    typer.echo(f"odk_central {form}: cursor set to {moment.isoformat()} in {warehouse.describe()}")


attachments_app = typer.Typer(help="Stored ODK Central attachments.", no_args_is_help=True)
app.add_typer(attachments_app, name="attachments")


@attachments_app.command("url")
@handled
def attachment_url(
    key: Annotated[str, typer.Argument(help="The storage key (raw_odk_central.attachments.storage_key).")],
    expires: Annotated[
        int, typer.Option("--expires", min=1, help="Lifetime of a signed URL, seconds.")
    ] = 3600,
    storage: Annotated[
        str | None,
        typer.Option(help="Storage URL; default sources.odk_central.attachments_storage."),
    ] = None,
) -> None:
    """Print a URL for a stored attachment: signed where the storage signs (s3, gcs), else a file URL."""
    import dlt

    from loaders.odk_central.attachments import AttachmentError, AttachmentStore
    from loaders.odk_central.settings import DEFAULT_ATTACHMENTS_STORAGE

    location = storage or dlt.config.get("sources.odk_central.attachments_storage", str)
    try:
        store = AttachmentStore(location or DEFAULT_ATTACHMENTS_STORAGE)
        if not store.exists(key):
            _fail(f"no attachment stored under {key!r} in {location or DEFAULT_ATTACHMENTS_STORAGE}")
        typer.echo(store.signed_url(key, expires_seconds=expires))
    except AttachmentError as exc:
        _fail(str(exc))


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
