"""``elt cleanup``: what the project keeps, it keeps for a while, then lets go.

- **Backups** in the backup folder (``elt backup``'s names) older than ``retention.backup_days`` (30);
  the newest backup is always kept, however old.
- **Audit attempts** in ``audit.sync_runs`` started more than ``retention.audit_days`` (180) ago; never
  a running attempt, nor the latest attempt or the latest success of a sync type (``elt status``
  reads them).
- **Working folders of runs that died** (dlt load packages and temporary files in the temp folder,
  named after a process that is gone).
- **Attachment files** in storage that no row of ``raw_odk_central.attachments`` references, once they
  are older than ``retention.attachment_grace_days`` (7): a run writes a file before the row that
  names it is loaded.
- **Candidate schemas** (``<schema>__candidate``) a run kept after a failed check (``flows.publish``),
  whatever their age: no run is building one while the cleanup holds the warehouse.

``--dry-run`` lists what would go and how many bytes, and changes nothing. A cleanup holds the
warehouse's lock (no run loads while it deletes) and is audited as a ``cleanup`` attempt with what it
removed. Limits are configuration: ``[retention]`` in ``.dlt/config.toml`` or ``RETENTION__<NAME>``.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flows.backup import BACKUP_DAYS, expired_backups, size_of
from loaders.common import audit
from loaders.common.lock import WarehouseLock, default_wait_seconds
from loaders.common.warehouse import ConfigurationError, Warehouse

SYNC_TYPE = "cleanup"
DEFAULTS = {"backup_days": BACKUP_DAYS, "audit_days": 180.0, "attachment_grace_days": 7.0}


@dataclass
class Removal:
    kind: str  # backup, audit attempts, workdir, attachment, candidate
    what: str
    bytes: int = 0
    count: int = 1


@dataclass
class CleanupReport:
    dry_run: bool
    removals: list[Removal] = field(default_factory=list)

    def totals(self) -> dict[str, dict[str, int]]:
        """kind -> {count, bytes}."""
        found: dict[str, dict[str, int]] = {}
        for removal in self.removals:
            entry = found.setdefault(removal.kind, {"count": 0, "bytes": 0})
            entry["count"] += removal.count
            entry["bytes"] += removal.bytes
        return found

    def as_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "totals": self.totals(),
            "removals": [asdict(r) for r in self.removals],
        }


def settings() -> dict[str, float]:
    """``[retention]`` of the project's configuration (``RETENTION__<NAME>`` overrides), with defaults."""
    from flows.config import section

    found = section("retention", DEFAULTS)
    for name, days in found.items():
        if days < 0:
            raise ConfigurationError(f"retention.{name} must be 0 or more days, got {days:g}")
    return found


def cleanup(
    warehouse: Warehouse,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    wait_seconds: float | None = None,
    flow_run_id: str | None = None,
    temp_root: Path | None = None,
) -> CleanupReport:
    """Remove (or with ``dry_run`` only list) what is past its retention; hold the warehouse's lock."""
    now = now or datetime.now(UTC)
    limits = settings()
    report = CleanupReport(dry_run=dry_run)
    run = audit.SyncRun(sync_type=SYNC_TYPE, flow_run_id=flow_run_id)
    wait = default_wait_seconds() if wait_seconds is None else wait_seconds
    with WarehouseLock(warehouse, run.sync_run_id).held(wait):
        try:
            report.removals += [
                Removal("backup", str(path), size)
                for path, size in expired_backups(now - timedelta(days=limits["backup_days"]), dry_run)
            ]
            report.removals += _attempts(warehouse, now - timedelta(days=limits["audit_days"]), dry_run)
            report.removals += _workdirs(temp_root, dry_run)
            report.removals += _attachments(
                warehouse, now - timedelta(days=limits["attachment_grace_days"]), dry_run
            )
            report.removals += _candidates(warehouse, dry_run)
        except BaseException as exc:
            if not dry_run:
                audit.record(warehouse, run.fail(exc))
            raise
        if not dry_run:
            run.records_processed = sum(removal.count for removal in report.removals)
            run.metadata = {"removed": report.totals(), "limits_days": limits}
            audit.record(warehouse, run.succeed())
    return report


def _attempts(warehouse: Warehouse, cutoff: datetime, dry_run: bool) -> list[Removal]:
    if not warehouse.has_table("audit", "sync_runs"):
        return []
    ph = warehouse.paramstyle
    # kept whatever their age: what is running, and each sync type's latest attempt and latest success
    old = f"""
        from audit.sync_runs
        where started_at < {ph}
          and status <> 'running'
          and sync_run_id not in (
              select sync_run_id from (
                  select sync_run_id, row_number() over (partition by sync_type order by started_at desc) as n
                  from audit.sync_runs
              ) as latest where n = 1
          )
          and sync_run_id not in (
              select sync_run_id from (
                  select sync_run_id, row_number() over (partition by sync_type order by started_at desc) as n
                  from audit.sync_runs where status = 'success'
              ) as latest_success where n = 1
          )
    """
    count = int(warehouse.query(f"select count(*) {old}", (cutoff,))[0][0])
    if not count:
        return []
    if not dry_run:
        with warehouse.connect() as conn:
            conn.cursor().execute(f"delete {old}", (cutoff,))
    return [
        Removal("audit attempts", f"audit.sync_runs started before {cutoff:%Y-%m-%d %H:%M} UTC", 0, count)
    ]


def _candidates(warehouse: Warehouse, dry_run: bool) -> list[Removal]:
    from flows.publish import candidate_schemas, drop_candidates

    schemas = candidate_schemas(warehouse) if dry_run else drop_candidates(warehouse)
    return [Removal("candidate", schema) for schema in schemas]


def _workdirs(root: Path | None, dry_run: bool) -> list[Removal]:
    from loaders.common.pipeline import stale_workdirs

    removals = []
    for path in stale_workdirs(root):
        removals.append(Removal("workdir", str(path), size_of(path)))
        if not dry_run:
            shutil.rmtree(path, ignore_errors=True)
    return removals


def _attachments(warehouse: Warehouse, cutoff: datetime, dry_run: bool) -> list[Removal]:
    """Files in the attachment storage that no ``raw_odk_central.attachments`` row names, older than
    ``cutoff``. Without that table (no ODK Central load yet) nothing is an orphan."""
    import dlt

    from loaders.odk_central.attachments import AttachmentStore
    from loaders.odk_central.settings import DATASET

    url = dlt.config.get("sources.odk_central.attachments_storage")
    if not url or not warehouse.has_table(DATASET, "attachments"):
        return []
    store = AttachmentStore(str(url))
    referenced = {
        str(key)
        for (key,) in warehouse.query(
            f"select storage_key from {DATASET}.attachments where storage_key is not null"
        )
    }
    if not store.fs.exists(store.root):
        return []
    removals = []
    prefix = f"{store.root}/" if store.root else ""
    for path, info in sorted(store.fs.find(store.root, detail=True).items()):
        key = path[len(prefix) :] if path.startswith(prefix) else path
        if key in referenced:
            continue
        try:
            modified = store.fs.modified(path)
        except (NotImplementedError, OSError, ValueError):
            continue  # no date to go by: kept
        modified = modified if modified.tzinfo else modified.replace(tzinfo=UTC)
        if modified >= cutoff:
            continue  # perhaps written by a run whose rows are not loaded yet
        removals.append(Removal("attachment", key, int(info.get("size") or 0)))
        if not dry_run:
            store.fs.rm(path)
    return removals
