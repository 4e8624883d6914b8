"""The syncs the project knows: each source's dlt pipeline, dataset and how to build its dlt source.

``elt run --source NAME`` takes a sync name or a group name (``sales`` = every sales sync).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loaders.common.pipeline import run_source
from loaders.common.quarantine import LoadStats
from loaders.common.warehouse import ConfigurationError, Warehouse
from loaders.sales.settings import DATASET as SALES_DATASET


@dataclass(frozen=True)
class RunOptions:
    """Per-run choices from the command line."""

    full_refresh: bool = False
    days: int | None = None  # the API window, instead of the stored cursor
    levels: tuple[str, ...] | None = None  # registration levels to read (all when None)


@dataclass(frozen=True)
class Sync:
    name: str
    dataset: str
    description: str
    build: Callable[[LoadStats, RunOptions, Warehouse], Any]


def _sales_csv(stats: LoadStats, options: RunOptions, warehouse: Warehouse) -> Any:
    from loaders.sales import add_line_keys, sales_csv

    add_line_keys(warehouse)
    return sales_csv(
        stats=stats,
        full_refresh=options.full_refresh,
        csv_load_files=warehouse.target == "postgres",
    )


def _sales_api(stats: LoadStats, options: RunOptions, warehouse: Warehouse) -> Any:
    from loaders.sales import add_line_keys, sales_api

    add_line_keys(warehouse)
    return sales_api(stats=stats, days=options.days, full_refresh=options.full_refresh)


def _sales_users(stats: LoadStats, options: RunOptions, warehouse: Warehouse) -> Any:
    from loaders.sales import sales_users

    return sales_users(
        stats=stats, existing=existing_user_emails(warehouse), full_refresh=options.full_refresh
    )


def _odk_central(stats: LoadStats, options: RunOptions, warehouse: Warehouse) -> Any:
    from loaders.odk_central import odk_central

    return odk_central(
        stats=stats, known_etags=stored_attachment_etags(warehouse), full_refresh=options.full_refresh
    )


def _registration(stats: LoadStats, options: RunOptions, warehouse: Warehouse) -> Any:
    from loaders.registration import registration

    return registration(
        selected=options.levels,
        stored=stored_registration_rows(warehouse),
        stats=stats,
        full_refresh=options.full_refresh,
    )


def _communities(stats: LoadStats, options: RunOptions, warehouse: Warehouse) -> Any:
    from loaders.communities import communities, stored_record_moments

    return communities(
        stats=stats,
        full_refresh=options.full_refresh,
        stored_moments=lambda: stored_record_moments(warehouse),
    )


def _table_exists(cur: Any, schema: str, table: str) -> bool:
    cur.execute(
        "select count(*) from information_schema.tables where table_schema = "
        f"'{schema}' and table_name = '{table}'"
    )
    return bool(cur.fetchone()[0])


def stored_attachment_etags(warehouse: Warehouse) -> dict[tuple[str, str, str], str]:
    """(form, submission, file name) -> ETag of the attachments already stored."""
    with warehouse.connect() as conn:
        cur = conn.cursor()
        if not _table_exists(cur, "raw_odk_central", "attachments"):
            return {}
        cur.execute(
            "select form_id, submission_id, name, etag from raw_odk_central.attachments "
            "where etag is not null and storage_key is not null"
        )
        return {(form, sid, name): etag for form, sid, name, etag in cur.fetchall()}


def stored_registration_rows(warehouse: Warehouse) -> dict[str, dict[str, str]]:
    """level -> code -> ``_row_hash`` of the registration rows in the warehouse (to skip unchanged rows
    and to find the codes the source no longer has)."""
    from loaders.registration.settings import DATASET

    stored: dict[str, dict[str, str]] = {}
    with warehouse.connect() as conn:
        cur = conn.cursor()
        cur.execute(f"select table_name from information_schema.tables where table_schema = '{DATASET}'")
        tables = {name for (name,) in cur.fetchall()}
        for level in sorted(tables):
            if level.startswith("_dlt") or level == "rejected_rows":
                continue
            cur.execute(f'select code, _row_hash from {DATASET}."{level}"')
            stored[level] = dict(cur.fetchall())
    return stored


def existing_user_emails(warehouse: Warehouse) -> dict[str, str]:
    """email -> username of the users already loaded (none on a new warehouse)."""
    with warehouse.connect() as conn:
        cur = conn.cursor()
        if not _table_exists(cur, "raw_sales", "users"):
            return {}
        cur.execute("select email, username from raw_sales.users")
        return {email: username for email, username in cur.fetchall()}


SYNCS: dict[str, Sync] = {
    sync.name: sync
    for sync in (
        Sync("sales_csv", SALES_DATASET, "sales order lines from CSV export folders", _sales_csv),
        Sync("sales_api", SALES_DATASET, "sales order lines from the sales REST API", _sales_api),
        Sync("sales_users", SALES_DATASET, "users from the bulk users CSV", _sales_users),
        Sync(
            "odk_central",
            "raw_odk_central",
            "ODK Central submissions, repeat groups and attachments",
            _odk_central,
        ),
        Sync(
            "registration",
            "raw_registration",
            "voter registration by county, constituency, ward and polling station",
            _registration,
        ),
        Sync(
            "communities",
            "raw_communities",
            "community records per barangay (Philippines)",
            _communities,
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

    sync = SYNCS[name]
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
