"""One run at a time per warehouse, whoever starts it (the command line, a deployment, cron).

The lock lives with the warehouse, so runs on different machines see each other, and a process that dies
cannot keep it:

- PostgreSQL: a session-level advisory lock taken on a connection the run keeps open. The server releases
  it when that connection ends, killed process included. The holder names itself in the connection's
  ``application_name``, which ``pg_stat_activity`` shows to the run that waits.
- DuckDB: an exclusive ``flock`` on ``<file>.lock`` next to the database file; the kernel releases it when
  the process dies. The holder writes who it is into the file. Commands that only read the file take the
  lock shared, so they never open the database under a run (DuckDB lets one process at a time open it).

A run that finds the warehouse busy waits up to ``wait_seconds``, then raises :class:`WarehouseBusy` naming
the run that holds it (run id, host, pid, start time). While it runs, the holder checks now and then
(``verify``) that it still holds the lock: a PostgreSQL session can be ended under it (a server restart, an
administrator), and a run that lost the lock fails rather than carrying on beside another one. The lock's
connection sends TCP keepalives and opts out of the server's idle-session timeouts; behind PgBouncer it
needs session pooling (transaction pooling would hand the lock's session to someone else).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from loaders.common.warehouse import ConfigurationError, Warehouse, WarehouseBusy, number_setting, redact

# pg_try_advisory_lock(int4, int4): 'ELT' and 'RUN' in ASCII, so the lock is recognisable in pg_locks.
ADVISORY_KEY = (0x454C54, 0x52554E)
APPLICATION_PREFIX = "elt-lock"
RUN_ID_CHARS = 12
DEFAULT_WAIT_SECONDS = 600.0
POLL_SECONDS = 0.5


def default_wait_seconds() -> float:
    """``ELT_LOCK_WAIT_SECONDS``: how long a run waits for a busy warehouse (600 s by default)."""
    return number_setting("ELT_LOCK_WAIT_SECONDS", DEFAULT_WAIT_SECONDS)


@dataclass(frozen=True)
class Holder:
    """The run that holds a warehouse."""

    run_id: str
    host: str
    pid: int | None
    started_at: str

    def describe(self) -> str:
        pid = self.pid if self.pid is not None else "?"
        return f"run {self.run_id} (host {self.host}, pid {pid}, started {self.started_at})"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class WarehouseLock:
    """The warehouse's run lock; ``with WarehouseLock(warehouse, run_id).held(wait):``."""

    def __init__(self, warehouse: Warehouse, run_id: str, *, shared: bool = False) -> None:
        self.warehouse = warehouse
        self.run_id = run_id
        self.shared = shared  # DuckDB readers: many at once, never under a run
        self._conn: Any = None
        self._fd: int | None = None

    @contextmanager
    def held(
        self, wait_seconds: float, on_wait: Callable[[Holder | None], None] | None = None
    ) -> Iterator[WarehouseLock]:
        self.acquire(wait_seconds, on_wait)
        try:
            yield self
        finally:
            self.release()

    def acquire(self, wait_seconds: float, on_wait: Callable[[Holder | None], None] | None = None) -> None:
        """Take the lock, waiting up to ``wait_seconds`` (``on_wait`` is told once who holds it)."""
        deadline = time.monotonic() + wait_seconds
        told = False
        self._open()
        while not self._try():
            if not told and on_wait is not None:
                on_wait(self.holder())
                told = True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                holder = self.holder()
                self.release()
                who = holder.describe() if holder else "another run"
                waited = (
                    f"waited {wait_seconds:g} s (--wait or ELT_LOCK_WAIT_SECONDS)"
                    if wait_seconds
                    else "try again when it ends"
                )
                raise WarehouseBusy(f"{self.warehouse.describe()} is busy: {who} holds it; {waited}")
            time.sleep(min(POLL_SECONDS, remaining))

    def release(self) -> None:
        if self._conn is not None:
            with suppress(Exception):
                self._conn.close()  # the server releases a session's advisory locks with it
            self._conn = None
        if self._fd is not None:
            with suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def verify(self) -> str | None:
        """None while this lock is still held; otherwise why not. A PostgreSQL session that was ended is
        replaced and the lock taken again when it is free (nobody else got in meanwhile)."""
        if self._conn is None:
            return None  # DuckDB: the kernel keeps a flock for as long as the process lives
        try:
            cur = self._conn.cursor()
            cur.execute(
                "select count(*) from pg_locks where pid = pg_backend_pid() and locktype = 'advisory' "
                "and granted and classid = %s and objid = %s and objsubid = 2",
                ADVISORY_KEY,
            )
            if cur.fetchone()[0]:
                return None
        except Exception:  # noqa: S110 - the session is gone: try to take the lock again below
            pass
        self.release()
        try:
            self._open()
            if self._try():
                return None
            holder = self.holder()
        except Exception as exc:
            return f"the warehouse lock's session ended and could not be opened again ({exc})"
        who = holder.describe() if holder else "another run"
        return f"the warehouse lock's session ended and {who} took it"

    def holder(self) -> Holder | None:
        """Who holds the warehouse now (None when nobody does, or when it cannot be told)."""
        if self.warehouse.target == "postgres":
            return _postgres_holder(self._conn)
        return _duckdb_holder(_lock_path(self.warehouse))

    # -- PostgreSQL --------------------------------------------------------------------------------

    def _open(self) -> None:
        if self.warehouse.target == "postgres":
            import psycopg2

            # 63 characters at most: a short run id (enough to find the run in the audit), then who
            me = f"{APPLICATION_PREFIX} {self.run_id[:RUN_ID_CHARS]} {os.getpid()}@{socket.gethostname()}"
            try:
                self._conn = psycopg2.connect(
                    host=self.warehouse.pg_host,
                    port=self.warehouse.pg_port,
                    user=self.warehouse.pg_user,
                    password=self.warehouse.pg_password,
                    dbname=self.warehouse.pg_database,
                    sslmode=self.warehouse.pg_sslmode,
                    connect_timeout=10,
                    application_name=me[:63],
                    # the session idles for the whole run: keep it alive, and known to be alive
                    keepalives=1,
                    keepalives_idle=30,
                    keepalives_interval=10,
                    keepalives_count=3,
                    options="-c idle_session_timeout=0 -c idle_in_transaction_session_timeout=0",
                )
            except psycopg2.OperationalError as exc:
                reason = " ".join(redact(str(exc)).split())  # libpq's message spans lines
                raise ConfigurationError(f"cannot connect to {self.warehouse.describe()}: {reason}") from None
            self._conn.autocommit = True
            return
        path = _lock_path(self.warehouse)
        try:
            if self.shared and path.exists():
                self._fd = os.open(path, os.O_RDONLY)  # a reader may not be allowed to write here
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o664)
        except PermissionError:
            raise ConfigurationError(
                f"cannot open {path} (the warehouse's run lock): give this user access to {path.parent}"
            ) from None

    def _try(self) -> bool:
        if self._conn is not None:
            cur = self._conn.cursor()
            cur.execute("select pg_try_advisory_lock(%s, %s)", ADVISORY_KEY)
            return bool(cur.fetchone()[0])
        assert self._fd is not None
        try:
            fcntl.flock(self._fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        if not self.shared:
            record = {
                "run_id": self.run_id,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "started_at": _now(),
            }
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, json.dumps(record).encode(), 0)
        return True


def _lock_path(warehouse: Warehouse) -> Any:
    assert warehouse.duckdb_path is not None
    path = warehouse.duckdb_path.resolve()  # one lock file, however the database file is reached
    return path.with_name(path.name + ".lock")


def _duckdb_holder(path: Any) -> Holder | None:
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # held exclusively: a run is going
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        try:
            record = json.loads(os.pread(fd, 4096, 0) or b"{}")
        except ValueError:
            record = {}
    finally:
        os.close(fd)
    if not record:
        return Holder("?", "?", None, "?")
    return Holder(str(record["run_id"]), str(record["host"]), record.get("pid"), str(record["started_at"]))


def _postgres_holder(conn: Any) -> Holder | None:
    if conn is None:
        return None
    cur = conn.cursor()
    cur.execute(
        """
        select activity.application_name, activity.backend_start, activity.client_addr, activity.pid
        from pg_locks as locks
        inner join pg_stat_activity as activity on locks.pid = activity.pid
        where locks.locktype = 'advisory' and locks.granted
            and locks.classid = %s and locks.objid = %s and locks.objsubid = 2
            and locks.database = (select oid from pg_database where datname = current_database())
        """,
        ADVISORY_KEY,
    )
    row = cur.fetchone()
    if row is None:
        return None
    application, backend_start, client_addr, backend_pid = row
    started = backend_start.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if backend_start else "?"
    parts = (application or "").split()
    if len(parts) == 3 and parts[0] == APPLICATION_PREFIX and "@" in parts[2]:
        pid, host = parts[2].split("@", 1)
        return Holder(parts[1], host, int(pid) if pid.isdigit() else None, started)
    # not one of ours (or hidden from this user): name the server session instead
    return Holder("?", str(client_addr or "?"), backend_pid, started)


@contextmanager
def reading(warehouse: Warehouse) -> Iterator[None]:
    """For commands that only read: on DuckDB, never open the file under a run (fail at once, naming
    the run); on PostgreSQL, nothing to do."""
    if warehouse.target != "duckdb":
        yield
        return
    with WarehouseLock(warehouse, "reader", shared=True).held(0.0):
        yield
