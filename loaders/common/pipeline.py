"""Run one dlt source into the warehouse, with dlt state restored from (and kept in) the warehouse."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dlt
from dlt.common.configuration.container import Container
from dlt.common.configuration.providers import EnvironProvider
from dlt.common.configuration.specs.pluggable_run_context import PluggableRunContext

from loaders.common import audit, progress
from loaders.common.warehouse import Warehouse


@dataclass(frozen=True)
class RunOptions:
    """Per-run choices from the command line, given to every source's ``build``."""

    full_refresh: bool = False
    days: int | None = None  # the sales API's window, instead of its stored cursor
    levels: tuple[str, ...] | None = None  # registration levels to read (all when None)


WORKDIR_PREFIX = "elt-"
_WORKDIR = re.compile(rf"^{WORKDIR_PREFIX}[a-z0-9_]+-(\d+)-")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def stale_workdirs(root: Path | None = None) -> list[Path]:
    """The working folders (dlt load packages, temporary files) of runs whose process is gone."""
    found = []
    for path in sorted(Path(root or tempfile.gettempdir()).glob(f"{WORKDIR_PREFIX}*")):
        match = _WORKDIR.match(path.name)
        if match and path.is_dir() and not _alive(int(match.group(1))):
            found.append(path)
    return found


def remove_stale_workdirs(root: Path | None = None) -> list[Path]:
    """Remove the working folders of runs whose process is gone; return what was removed."""
    removed = stale_workdirs(root)
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


# Variables the shell or the system sets, which are never this project's settings. dlt looks a source's
# argument up in the environment down to its bare name (``columns`` -> ``COLUMNS``) and the environment
# comes before the TOML files: a terminal's ``COLUMNS=80`` broke the sales API source's column map, and
# a desktop's ``USERNAME`` would replace ODK Central's configured user. Sectioned names still work.
SHELL_VARIABLES = frozenset(
    {
        "COLUMNS",
        "LINES",
        "USER",
        "USERNAME",
        "LOGNAME",
        "HOME",
        "PATH",
        "PWD",
        "OLDPWD",
        "SHELL",
        "SHLVL",
        "TERM",
        "LANG",
        "HOSTNAME",
        "TMPDIR",
        "EDITOR",
        "PAGER",
        "DISPLAY",
        "MAIL",
        "TZ",
    }
)


class _SectionedEnviron(EnvironProvider):
    """dlt's environment provider, except the bare names in ``SHELL_VARIABLES``."""

    def get_value(self, key: str, hint: Any, pipeline_name: str, *sections: str) -> tuple[Any, str]:
        if not sections and not pipeline_name and key.upper() in SHELL_VARIABLES:
            return None, key.upper()
        return super().get_value(key, hint, pipeline_name, *sections)


def ignore_shell_variables() -> None:
    """Put ``_SectionedEnviron`` in place of dlt's environment provider (idempotent)."""
    providers = Container()[PluggableRunContext].providers.providers
    for index, provider in enumerate(providers):
        if type(provider) is EnvironProvider:
            providers[index] = _SectionedEnviron()


# Every source package imports this module, so a source called directly (a test, a notebook) is covered
# too; ``registry.run_sync`` calls it again in case dlt's run context was reloaded since.
ignore_shell_variables()


def run_source(
    source: Any,
    *,
    pipeline_name: str,
    dataset_name: str,
    warehouse: Warehouse,
) -> Any:
    """Extract, normalise and load ``source``; raise if any load job failed.

    The pipeline's working folder is temporary: dlt restores the state (cursors, loaded-file hashes)
    and schema from the warehouse at the start of every run, so no local file carries state and a new
    machine or container resumes where the last run stopped. State is written in the same load as
    the data, so a failed load does not advance a cursor.

    The folder's name carries the process id: a run killed half-way leaves its folder (and any load
    package in it) behind, and the next run removes it (``remove_stale_workdirs``) rather than resuming
    the package. dlt restores state only from loads it completed, and every table is merged on its keys,
    so the next run reads the same records again and loads them exactly once.
    """
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")
    prefix = f"{WORKDIR_PREFIX}{pipeline_name}-{os.getpid()}-"
    # On DuckDB, dlt's connections need the file to themselves: this process's heartbeats wait (see
    # audit.paused); the run lock's holder file says the run is alive meanwhile.
    pause = audit.paused() if warehouse.target == "duckdb" else contextlib.nullcontext()
    shown = progress.collector()  # on a terminal only
    with pause, progress.showing(shown), tempfile.TemporaryDirectory(prefix=prefix) as workdir:
        pipeline = dlt.pipeline(
            pipeline_name=pipeline_name,
            destination=warehouse.dlt_destination(),
            dataset_name=dataset_name,
            pipelines_dir=workdir,
            **({"progress": shown} if shown is not None else {}),
        )
        # PostgreSQL loads through COPY (dlt's csv format); DuckDB reads Parquet natively.
        file_format = "csv" if warehouse.target == "postgres" else "parquet"
        info = pipeline.run(source, loader_file_format=file_format)
        info.raise_on_failed_jobs()
        return info
