"""The Prefect flows that ``prefect.yaml`` deploys: the main run (``flows/pipeline.py``, each step a
Prefect task), the backup, the health check and the cleanup.

Settings are read when a flow runs, never when it is deployed, so no secret is stored in a deployment:

- each setting (``ELT_TARGET``, ``ELT_PG_HOST``, ``SOURCES__ODK_CENTRAL__BASE_URL``, ...) comes from the
  worker's environment when set there, else from the Prefect Variable named in ``VARIABLES`` (a number
  is fine: it is turned into text), else the project's default;
- each secret (``ELT_PG_PASSWORD``, the sales API key, the ODK Central password, the registration
  database URL) comes from the worker's environment when set there, else from the Prefect Secret block
  named in ``SECRET_BLOCKS``. A deployment can name other variables and blocks (the ``variables`` and
  ``secret_blocks`` parameters); a block that does not exist is left out, and a source that needs it then
  fails with a one-line message naming the block.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.states import Failed, State

from flows.pipeline import (
    RunSummary,
    StepFailed,
    is_configuration,
    is_transient,
    retry_delay_seconds,
)
from flows.pipeline import run as run_steps
from loaders.common.audit import describe_error
from loaders.common.warehouse import ConfigurationError, WarehouseBusy, register_secret, scoped_env
from loaders.registry import SETTING_HINTS

T = TypeVar("T")

#: Secret -> the Prefect Secret block it is read from when the worker's environment lacks it.
SECRET_BLOCKS: dict[str, str] = {
    "ELT_PG_PASSWORD": "elt-pg-password",
    "SOURCES__SALES_API__API_KEY": "sales-api-key",
    "SOURCES__ODK_CENTRAL__PASSWORD": "odk-central-password",
    "SOURCES__REGISTRATION__CREDENTIALS": "registration-credentials",
    "SOURCES__COMMUNITIES__CREDENTIALS": "communities-credentials",
}
#: Setting -> the Prefect Variable it is read from when the worker's environment lacks it.
VARIABLES: dict[str, str] = {
    "ELT_TARGET": "elt_target",
    "ELT_DUCKDB_PATH": "elt_duckdb_path",
    "ELT_PG_HOST": "elt_pg_host",
    "ELT_PG_PORT": "elt_pg_port",
    "ELT_PG_DATABASE": "elt_pg_database",
    "ELT_PG_USER": "elt_pg_user",
    "ELT_PG_SSLMODE": "elt_pg_sslmode",
    "ELT_LOCK_WAIT_SECONDS": "elt_lock_wait_seconds",
    "ELT_BACKUP_DIR": "elt_backup_dir",
    "ELT_REPORTS_DIR": "elt_reports_dir",
    "SOURCES__SALES_API__BASE_URL": "sales_api_base_url",
    "SOURCES__ODK_CENTRAL__BASE_URL": "odk_central_base_url",
    "SOURCES__ODK_CENTRAL__USERNAME": "odk_central_username",
}
#: How long a step may run as a task before Prefect stops it.
TIMEOUTS = {"dbt_build": 3600, "expectations": 1800, "publish": 600, "rollups": 600}
LOAD_TIMEOUT = 3600


def _text(value: Any) -> str:
    """A Variable's or a Secret's value as an environment variable holds it (a port may be a number, a
    block may hold JSON)."""
    return json.dumps(value) if isinstance(value, dict | list) else str(value)


def _read_variables(names: dict[str, str]) -> dict[str, str]:
    """The Prefect Variables among ``names`` that exist, as text."""
    from prefect.client.orchestration import get_client

    values = {}
    with get_client(sync_client=True) as client:
        for setting, name in names.items():
            variable = client.read_variable_by_name(name)
            if variable is not None and variable.value not in (None, ""):
                values[setting] = _text(variable.value)
    return values


def _read_secrets(blocks: dict[str, str]) -> dict[str, str]:
    """The Secret blocks among ``blocks`` that exist."""
    from prefect.blocks.system import Secret

    values = {}
    for setting, block in blocks.items():
        try:
            value = Secret.load(block).get()
        except ValueError:  # no such block: the source that needs it says so
            continue
        values[setting] = _text(value)
    return values


@contextmanager
def deployment_settings(
    variables: dict[str, str] | None = None, secret_blocks: dict[str, str] | None = None
) -> Iterator[None]:
    """The settings and secrets a deployed run reads (see the module's docstring), for the block."""
    variables = VARIABLES if variables is None else variables
    blocks = SECRET_BLOCKS if secret_blocks is None else secret_blocks
    wanted_variables = {k: v for k, v in variables.items() if not os.environ.get(k)}
    wanted_blocks = {k: v for k, v in blocks.items() if not os.environ.get(k)}
    values = _read_variables(wanted_variables) if wanted_variables else {}
    secrets = _read_secrets(wanted_blocks) if wanted_blocks else {}
    for value in secrets.values():
        register_secret(value)
    hints = {setting: f"create the Prefect Secret block {block!r}" for setting, block in blocks.items()}
    saved_hints = dict(SETTING_HINTS)
    SETTING_HINTS.update(hints)
    try:
        with scoped_env(values | secrets):
            yield
    finally:
        SETTING_HINTS.clear()
        SETTING_HINTS.update(saved_hints)


def _retry_if_transient(task: Any, task_run: Any, state: State) -> bool:
    return is_transient(state.data) if isinstance(state.data, BaseException) else True


def _one_line_errors(fn: Callable[..., T]) -> Callable[..., T]:
    """The step, its errors turned into one redacted line (what Prefect logs and stores of a failed task:
    never a secret a library put into an error message)."""

    @functools.wraps(fn)
    def step(*args: Any) -> T:
        try:
            return fn(*args)
        except Exception as exc:
            raise StepFailed(describe_error(exc), configuration=is_configuration(exc)) from None

    return step


def run_as_task(name: str, fn: Callable[..., T], args: tuple[Any, ...], retries: int = 0) -> T:
    """A step as a Prefect task: tracked in the flow run, retried unless it is a setting to fix."""
    step = task(
        _one_line_errors(fn),
        name=name,
        retries=retries,
        retry_delay_seconds=retry_delay_seconds(),
        retry_condition_fn=_retry_if_transient,
        timeout_seconds=TIMEOUTS.get(name, LOAD_TIMEOUT),
        cache_policy=NO_CACHE,  # the warehouse's settings are arguments: never hash them into a key
    )
    return step(*args)


def _flow_run_id() -> str | None:
    run_id = flow_run.get_id()
    return str(run_id) if run_id else None


@flow(name="elt-main", log_prints=False)
def main_flow(
    sources: list[str] | None = None,
    target: str | None = None,
    full_refresh: bool = False,
    days: int | None = None,
    levels: list[str] | None = None,
    variables: dict[str, str] | None = None,
    secret_blocks: dict[str, str] | None = None,
) -> RunSummary | State:
    """Load the selected sources, build the models, check the marts, record the outcome."""
    logger = get_run_logger()
    try:
        with deployment_settings(variables, secret_blocks):
            summary = run_steps(
                sources,
                target,
                full_refresh,
                days,
                levels,
                runner=run_as_task,
                flow_run_id=_flow_run_id(),
                on_wait=lambda holder: logger.warning(
                    "waiting for the warehouse: %s holds it", holder.describe() if holder else "another run"
                ),
            )
    except (ConfigurationError, WarehouseBusy) as exc:
        return Failed(message=str(exc))
    for step in summary.steps:
        logger.info("%s: %s %s", step.name, step.status, step.error or step.detail)
    if summary.success:
        return summary
    # The flow run ends Failed (so deployments show it) and still hands back its summary.
    return Failed(message=f"failed: {', '.join(summary.failed)}", data=summary)


@flow(name="elt-backup", log_prints=False)
def backup_flow(
    target: str | None = None,
    output_dir: str | None = None,
    variables: dict[str, str] | None = None,
    secret_blocks: dict[str, str] | None = None,
) -> str | State:
    """Back up the warehouse (``pg_dump`` or DuckDB's ``EXPORT DATABASE``) once no run holds it."""
    from flows.backup import backup_held
    from loaders.common.warehouse import Warehouse

    try:
        with deployment_settings(variables, secret_blocks):
            warehouse = Warehouse.from_env(target)
            folder = Path(output_dir) if output_dir else None
            path = backup_held(warehouse, folder=folder, flow_run_id=_flow_run_id())
    except (ConfigurationError, WarehouseBusy) as exc:
        return Failed(message=str(exc))
    get_run_logger().info("backup written to %s", path)
    return str(path)


@flow(name="elt-health-check", log_prints=False)
def health_flow(
    target: str | None = None,
    freshness: bool = True,
    variables: dict[str, str] | None = None,
    secret_blocks: dict[str, str] | None = None,
) -> dict[str, Any] | State:
    """``elt health`` as a deployment: the flow run fails when a check fails or nothing could be
    checked, naming what failed; the checks are in the audit either way (``health_check``)."""
    from flows.alerts import notify
    from flows.dashboard import refresh
    from flows.health import check_health
    from loaders.common.warehouse import Warehouse

    try:
        with deployment_settings(variables, secret_blocks):
            warehouse = Warehouse.from_env(target)
            report = check_health(warehouse, freshness=freshness)
            if report.cannot_check is None:
                notify(warehouse, report.conditions())
                for problem in refresh(warehouse)[1]:
                    get_run_logger().warning(problem)
    except ConfigurationError as exc:
        return Failed(message=str(exc))
    if report.cannot_check:
        return Failed(message=f"cannot check: {report.cannot_check}")
    if not report.healthy:
        failed = "; ".join(f"{check.name}: {check.detail}" for check in report.failed)
        return Failed(message=f"unhealthy: {failed}", data=report.as_json())
    get_run_logger().info("healthy: %d checks passed", len(report.checks))
    return report.as_json()


@flow(name="elt-cleanup", log_prints=False)
def cleanup_flow(
    target: str | None = None,
    dry_run: bool = False,
    variables: dict[str, str] | None = None,
    secret_blocks: dict[str, str] | None = None,
) -> dict[str, Any] | State:
    """``elt cleanup`` as a deployment, between runs (it waits for the warehouse's lock)."""
    from flows.cleanup import cleanup
    from loaders.common.warehouse import Warehouse

    try:
        with deployment_settings(variables, secret_blocks):
            report = cleanup(Warehouse.from_env(target), dry_run=dry_run, flow_run_id=_flow_run_id())
    except (ConfigurationError, WarehouseBusy) as exc:
        return Failed(message=str(exc))
    get_run_logger().info("cleanup: %s", report.totals() or "nothing past its retention")
    return report.as_json()


def run(
    sources: list[str] | None = None,
    target: str | None = None,
    full_refresh: bool = False,
    days: int | None = None,
    levels: list[str] | None = None,
) -> RunSummary:
    """Run the Prefect flow in this process (a Prefect API must be reachable) and return its summary."""
    state = main_flow(sources, target, full_refresh, days, levels, return_state=True)
    result = state.result(raise_on_failure=False)
    if isinstance(result, BaseException):
        raise result
    if not isinstance(result, RunSummary):
        raise ConfigurationError(str(state.message))
    return result
