"""The syncs the project knows: a table of sources (name, dataset, what it loads, how a run builds it).

Each source's package builds its dlt source, and reads from the warehouse what it needs to decide what
to load (``build(stats, options, warehouse)``); this module only names them. The builders are imported
when a run needs them, so naming the syncs costs no source's imports (0.3 s, which every ``elt`` command
paid when this module read each source's ``settings.DATASET``): the datasets are written here, and
``tests/test_layout.py`` checks that they are the sources' own.
``elt run --source NAME`` takes a sync name or a group name (``sales`` = every sales sync).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loaders.common.warehouse import ConfigurationError, Warehouse

if TYPE_CHECKING:
    from loaders.common.pipeline import RunOptions
    from loaders.common.quarantine import LoadStats

__all__ = ["GROUPS", "SYNCS", "RunOptions", "Sync", "resolve", "run_sync"]


def __getattr__(name: str) -> Any:
    """``RunOptions``, re-exported, imported with dlt only when asked for: naming the syncs (the
    dashboard's quiet attempts, ``elt report``) does not import dlt (1 s)."""
    if name == "RunOptions":
        from loaders.common.pipeline import RunOptions

        return RunOptions
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class Sync:
    name: str
    dataset: str
    description: str
    builder: str  # "module:function", called as function(stats, options, warehouse)

    def build(self, stats: LoadStats, options: RunOptions, warehouse: Warehouse) -> Any:
        module, function = self.builder.split(":")
        return getattr(importlib.import_module(module), function)(stats, options, warehouse)


SYNCS: dict[str, Sync] = {
    sync.name: sync
    for sync in (
        Sync(
            "sales_csv",
            "raw_sales",
            "sales order lines from CSV export folders",
            "loaders.sales:build_sales_csv",
        ),
        Sync(
            "sales_api",
            "raw_sales",
            "sales order lines from the sales REST API",
            "loaders.sales:build_sales_api",
        ),
        Sync("sales_users", "raw_sales", "users from the bulk users CSV", "loaders.sales:build_sales_users"),
        Sync(
            "odk_central",
            "raw_odk_central",
            "ODK Central submissions, repeat groups and attachments",
            "loaders.odk_central:build",
        ),
        Sync(
            "registration",
            "raw_registration",
            "voter registration by county, constituency, ward and polling station",
            "loaders.registration:build",
        ),
        Sync(
            "communities",
            "raw_communities",
            "community records per barangay (Philippines)",
            "loaders.communities:build",
        ),
    )
}
GROUPS: dict[str, tuple[str, ...]] = {"sales": ("sales_csv", "sales_api", "sales_users")}


def resolve(names: list[str] | None) -> list[str]:
    """Sync names for ``--source`` values (all syncs when none are given), in a stable order."""
    if not names:
        return list(SYNCS)
    selected: list[str] = []
    for name in names:
        if name in GROUPS:
            selected += [n for n in GROUPS[name] if n not in selected]
        elif name in SYNCS:
            if name not in selected:
                selected.append(name)
        else:
            known = ", ".join([*SYNCS, *GROUPS])
            raise ConfigurationError(f"unknown source {name!r}: use one of {known}")
    return selected


#: Where else a setting can come from, named in the message when it is missing (a deployment adds its
#: Prefect Secret blocks here): environment variable -> where.
SETTING_HINTS: dict[str, str] = {}


def missing_settings_message(name: str, exc: Any) -> str:
    """One line naming the settings a source lacks and where to put them (dlt's own message lists
    every place it looked, over some twenty lines)."""
    wanted = []
    for missing in getattr(exc, "fields", None) or ["?"]:
        variable = f"SOURCES__{name.upper()}__{str(missing).upper()}"
        where = f"set {variable}"
        if variable in SETTING_HINTS:
            where += f" or {SETTING_HINTS[variable]}"
        wanted.append(f"sources.{name}.{missing} ({where}, or put it in .dlt/secrets.toml)")
    return f"{name}: missing setting {'; '.join(wanted)}"


def run_sync(name: str, warehouse: Warehouse, options: RunOptions, stats: LoadStats) -> Any:
    """Load one source into the warehouse, filling ``stats``; raises on failure (``ConfigurationError``
    when a setting is missing or wrong)."""
    from dlt.common.configuration.exceptions import ConfigFieldMissingException

    from loaders.common.pipeline import ignore_shell_variables, run_source

    sync = SYNCS[name]
    ignore_shell_variables()
    try:
        source = sync.build(stats, options, warehouse)
        return run_source(source, pipeline_name=name, dataset_name=sync.dataset, warehouse=warehouse)
    except Exception as exc:
        # dlt resolves settings when the source is built or, for a resource's own, when it is extracted
        # (then wrapped in a step error): either way the user is told which setting, in one line
        cause: BaseException | None = exc
        while cause is not None:
            if isinstance(cause, ConfigFieldMissingException):
                raise ConfigurationError(missing_settings_message(name, cause)) from None
            if isinstance(cause, ConfigurationError):
                raise cause from None
            cause = cause.__cause__ or cause.__context__
        raise
