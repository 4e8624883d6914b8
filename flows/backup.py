"""Backups of the warehouse: ``pg_dump`` (custom format) for PostgreSQL, ``EXPORT DATABASE`` for DuckDB.

Restore (documented in the README, tested in tests/test_backup.py):

* PostgreSQL: ``elt restore FILE.dump --yes`` runs ``pg_restore --clean --if-exists --no-owner`` into the
  configured database (by hand: ``pg_restore --clean --if-exists --no-owner -d DB FILE.dump``).
* DuckDB: ``elt restore FOLDER --yes`` moves the current file aside (``<file>.before-restore``) and runs
  ``IMPORT DATABASE 'FOLDER'`` into a new one (by hand: ``duckdb NEW.duckdb "IMPORT DATABASE 'FOLDER'"``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flows.config import section
from loaders.common import audit
from loaders.common.lock import WarehouseLock, default_wait_seconds
from loaders.common.warehouse import ROOT, ConfigurationError, Warehouse, postgres_bindirs, redact

BACKUP_DIR = ROOT / "data" / "backups"
BACKUP_DAYS = 30.0  # retention.backup_days: backups older than this go (the newest is always kept)
# <database or file stem>-<UTC stamp>[.dump], as default_path names them
BACKUP_NAME = re.compile(r"^.+-\d{8}T\d{6}Z(\.dump)?$")


def backup_dir() -> Path:
    """``ELT_BACKUP_DIR`` (relative to the project), ``data/backups`` by default."""
    folder = Path(os.environ.get("ELT_BACKUP_DIR") or BACKUP_DIR)
    return folder if folder.is_absolute() else ROOT / folder


def _pg_tool(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for folder in postgres_bindirs():
        if (folder / name).exists():
            return str(folder / name)
    raise ConfigurationError(
        f"{name} not found: install the PostgreSQL client (apt-get install postgresql-client) "
        "or point ELT_PG_BINDIR at the folder that holds it"
    )


def _pg_env(warehouse: Warehouse) -> dict[str, str]:
    """libpq settings through the environment, so the password is never on a command line."""
    return os.environ | {
        "PGHOST": warehouse.pg_host,
        "PGPORT": str(warehouse.pg_port),
        "PGUSER": warehouse.pg_user,
        "PGPASSWORD": warehouse.pg_password,
        "PGDATABASE": warehouse.pg_database,
        "PGSSLMODE": warehouse.pg_sslmode,
    }


def _run(argv: list[str], warehouse: Warehouse) -> None:
    done = subprocess.run(argv, env=_pg_env(warehouse), capture_output=True, text=True)
    if done.returncode != 0:
        reason = redact(
            (done.stderr or done.stdout).strip().splitlines()[-1] if (done.stderr or done.stdout) else ""
        )
        raise ConfigurationError(f"{Path(argv[0]).name} failed (exit {done.returncode}): {reason}")


def default_path(warehouse: Warehouse, folder: Path | None = None) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = folder or backup_dir()
    if warehouse.target == "postgres":
        return folder / f"{warehouse.pg_database}-{stamp}.dump"
    assert warehouse.duckdb_path is not None
    return folder / f"{warehouse.duckdb_path.stem}-{stamp}"


def backup_held(
    warehouse: Warehouse,
    path: Path | None = None,
    *,
    folder: Path | None = None,
    flow_run_id: str | None = None,
    wait_seconds: float | None = None,
) -> Path:
    """A backup taken between runs (it holds the warehouse's lock), audited as a ``backup`` attempt.

    The attempt is written when the backup ends, not as ``running`` when it starts: the backup would
    otherwise hold its own unfinished row, which a restore would bring back as a run that never ended.
    """
    run = audit.SyncRun(sync_type="backup", flow_run_id=flow_run_id)
    wait = default_wait_seconds() if wait_seconds is None else wait_seconds
    with WarehouseLock(warehouse, run.sync_run_id).held(wait):
        target = path or default_path(warehouse, folder)
        try:
            written = backup(warehouse, target)
        except BaseException as exc:
            audit.record(warehouse, run.fail(exc))
            raise
        run.metadata = {"path": str(written)}
        if path is None:  # written into the backup folder, which keeps its own rotation
            days = section("retention", {"backup_days": BACKUP_DAYS})["backup_days"]
            expired = expired_backups(datetime.now(UTC) - timedelta(days=days), dry_run=False, folder=folder)
            run.metadata["rotated"] = [str(gone) for gone, _ in expired]
        audit.record(warehouse, run.succeed())
    return written


def expired_backups(cutoff: datetime, dry_run: bool, folder: Path | None = None) -> list[tuple[Path, int]]:
    """Remove (unless ``dry_run``) the backups in ``folder`` (the backup folder) last written before
    ``cutoff``, except the newest, however old; return each with its size in bytes. Only what
    :func:`default_path` names is a backup: nothing else in the folder is touched."""
    folder = folder or backup_dir()
    if not folder.is_dir():
        return []
    backups = sorted(
        (entry for entry in folder.iterdir() if BACKUP_NAME.match(entry.name)),
        key=lambda entry: entry.stat().st_mtime,
    )
    expired = []
    for entry in backups[:-1]:  # the newest is kept, however old
        if datetime.fromtimestamp(entry.stat().st_mtime, UTC) < cutoff:
            expired.append((entry, size_of(entry)))
            if dry_run:
                continue
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    return expired


def size_of(path: Path) -> int:
    """Bytes of a file, or of every file under a folder."""
    if path.is_file():
        return path.stat().st_size
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def backup(warehouse: Warehouse, path: Path | None = None) -> Path:
    """Write a backup of the whole warehouse to ``path`` (a file for PostgreSQL, a folder for DuckDB)."""
    path = path or default_path(warehouse)
    if path.exists():
        raise ConfigurationError(f"{path} already exists: choose a new path for the backup")
    path.parent.mkdir(parents=True, exist_ok=True)
    if warehouse.target == "postgres":
        _run([_pg_tool("pg_dump"), "--format=custom", "--no-owner", f"--file={path}"], warehouse)
        return path
    import duckdb

    assert warehouse.duckdb_path is not None
    if not warehouse.duckdb_path.exists():
        raise ConfigurationError(f"{warehouse.duckdb_path} does not exist: nothing to back up")
    with duckdb.connect(str(warehouse.duckdb_path), read_only=True) as conn:
        conn.execute(f"export database '{path}' (format parquet)")
    return path


def restore(warehouse: Warehouse, path: Path) -> None:
    """Replace the warehouse's contents with the backup at ``path``."""
    if not path.exists():
        raise ConfigurationError(f"{path} does not exist")
    if warehouse.target == "postgres":
        if not path.is_file():
            raise ConfigurationError(f"{path} is not a pg_dump file")
        _run(
            [
                _pg_tool("pg_restore"),
                "--clean",
                "--if-exists",
                "--no-owner",
                "--single-transaction",
                f"--dbname={warehouse.pg_database}",
                str(path),
            ],
            warehouse,
        )
        return
    import duckdb

    if not (path / "schema.sql").is_file():
        raise ConfigurationError(f"{path} is not a DuckDB EXPORT DATABASE folder (no schema.sql)")
    assert warehouse.duckdb_path is not None
    target = warehouse.duckdb_path
    staged = target.with_name(f"{target.name}.restoring")
    staged.unlink(missing_ok=True)
    with duckdb.connect(str(staged)) as conn:
        conn.execute(f"import database '{path}'")
    if target.exists():
        os.replace(target, target.with_name(f"{target.name}.before-restore"))
    os.replace(staged, target)
