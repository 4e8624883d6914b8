"""The state of every sync type, as ``elt status`` and the health check read it: ``audit.sync_status``
(a dbt view over the attempts, so it is current whenever it is read) and how stale each sync type is
against the age its schedule allows.

How old a last success may be is configuration, in hours per sync type (``[health.max_age_hours]`` in
``.dlt/config.toml``, or ``HEALTH__MAX_AGE_HOURS__<SYNC_TYPE>``): the interval of its schedule plus some
slack. A part of a source (``odk_central.rental_survey.submissions``, ``registration.rollup.wards``)
takes its source's age unless it is named itself; a sync type named nowhere is never stale.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from loaders.common.warehouse import ConfigurationError, Warehouse

_AGE_PREFIX = "HEALTH__MAX_AGE_HOURS__"
STATUS_COLUMNS = (
    "sync_type",
    "last_sync_status",
    "last_sync_timestamp",
    "last_attempt_timestamp",
    "last_success_finished_at",
    "successful_sync_count",
    "failed_sync_count",
    "abandoned_sync_count",
    "last_records_processed",
    "last_records_rejected",
    "attempts_7d",
    "success_rate_7d",
    "avg_duration_seconds_7d",
    "attempts_30d",
    "success_rate_30d",
    "avg_duration_seconds_30d",
    "last_error_message",
)


class StatusUnavailable(RuntimeError):
    """The status cannot be read: no attempt recorded yet, or a view older than this code."""


@dataclass
class SyncState:
    """One sync type: ``audit.sync_status``'s row, with its staleness."""

    sync_type: str
    last_sync_status: str
    last_sync_timestamp: datetime | None
    last_attempt_timestamp: datetime | None
    last_success_finished_at: datetime | None
    successful_sync_count: int
    failed_sync_count: int
    abandoned_sync_count: int
    last_records_processed: int | None
    last_records_rejected: int | None
    attempts_7d: int
    success_rate_7d: float | None
    avg_duration_seconds_7d: float | None
    attempts_30d: int
    success_rate_30d: float | None
    avg_duration_seconds_30d: float | None
    last_error_message: str | None
    max_age_hours: float | None = None  # None: never stale
    age_hours: float | None = None  # of the last success; None without one

    @property
    def stale(self) -> bool:
        """Older than its schedule allows, or never successful, where an age is declared."""
        if self.max_age_hours is None:
            return False
        return self.age_hours is None or self.age_hours > self.max_age_hours

    @property
    def healthy(self) -> bool:
        """Its latest attempt did not fail and was not abandoned, and it is not stale."""
        return self.last_sync_status not in ("error", "abandoned") and not self.stale

    def problems(self) -> list[str]:
        """What is wrong, in words; empty when healthy."""
        found = []
        if self.last_sync_status in ("error", "abandoned"):
            found.append(f"last attempt {self.last_sync_status}")
        if self.stale:
            found.append(
                "never succeeded"
                if self.age_hours is None
                else f"last success {format_hours(self.age_hours)} ago "
                f"(allowed {format_hours(self.max_age_hours)})"
            )
        return found

    def as_json(self) -> dict[str, Any]:
        found = asdict(self)
        found.update(stale=self.stale, healthy=self.healthy, problems=self.problems())
        return {
            key: value.isoformat() if isinstance(value, datetime) else value for key, value in found.items()
        }


def max_age_hours() -> dict[str, float]:
    """``[health.max_age_hours]``: sync type -> hours, from the project's configuration
    (``.dlt/config.toml``), each overridden by ``HEALTH__MAX_AGE_HOURS__<SYNC_TYPE>``."""
    import dlt

    configured = {
        str(name): hours for name, hours in dict(dlt.config.get("health.max_age_hours") or {}).items()
    }
    configured |= {
        name[len(_AGE_PREFIX) :].lower(): hours
        for name, hours in os.environ.items()
        if name.startswith(_AGE_PREFIX)
    }
    try:
        return {name: float(hours) for name, hours in configured.items()}
    except (TypeError, ValueError):
        raise ConfigurationError(
            f"health.max_age_hours must map sync types to hours, got {configured!r}"
        ) from None


def allowed_age(sync_type: str, ages: dict[str, float]) -> float | None:
    """The age allowed to ``sync_type``: its own, else its source's (the part before the first dot)."""
    if sync_type in ages:
        return ages[sync_type]
    return ages.get(sync_type.split(".", 1)[0])


def sync_states(warehouse: Warehouse, now: datetime | None = None) -> list[SyncState]:
    """Every sync type's state, by name. Raises :class:`StatusUnavailable` before the first attempt
    and when ``audit.sync_status`` is older than this code (a run rebuilds it)."""
    if not warehouse.has_table("audit", "sync_status"):
        raise StatusUnavailable("no sync status yet: run `elt run` (or `elt demo`) first")
    try:
        rows = warehouse.query(
            f"select {', '.join(STATUS_COLUMNS)} from audit.sync_status order by sync_type"
        )
    except Exception as exc:
        if any(column in str(exc) for column in STATUS_COLUMNS[4:]):  # a column this version added
            raise StatusUnavailable(
                "audit.sync_status was built by an older version: run `elt run` once to rebuild it"
            ) from None
        raise
    now = now or datetime.now(UTC)
    ages = max_age_hours()
    states = []
    for row in rows:
        values = dict(zip(STATUS_COLUMNS, row, strict=True))
        for key in (
            "success_rate_7d",
            "success_rate_30d",
            "avg_duration_seconds_7d",
            "avg_duration_seconds_30d",
        ):
            values[key] = None if values[key] is None else float(values[key])
        for key in ("last_sync_timestamp", "last_attempt_timestamp", "last_success_finished_at"):
            values[key] = as_utc(values[key])
        state = SyncState(**values)
        state.max_age_hours = allowed_age(state.sync_type, ages)
        if state.last_success_finished_at is not None:
            state.age_hours = round((now - state.last_success_finished_at) / timedelta(hours=1), 2)
        states.append(state)
    return states


def as_utc(value: Any) -> datetime | None:
    """A timestamp as the database or JSON gives it, in UTC (a naive one is taken as UTC)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def format_hours(hours: float | None) -> str:
    """``12 min``, ``3.5 h``, ``2.1 d``; ``never`` for None."""
    if hours is None:
        return "never"
    if hours >= 48:
        return f"{hours / 24:.1f} d"
    if hours >= 1:
        return f"{hours:.1f} h"
    return f"{hours * 60:.0f} min"
