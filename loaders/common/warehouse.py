"""The warehouse a run writes to: DuckDB (embedded default) or PostgreSQL.

One set of environment variables feeds dlt's destination, dbt's profile and the expectations:
``ELT_TARGET``, ``ELT_DUCKDB_PATH`` and
``ELT_PG_HOST``/``PORT``/``USER``/``PASSWORD``/``DATABASE``/``SSLMODE``.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[2]
TARGETS = ("duckdb", "postgres")
DEFAULT_DUCKDB_PATH = "data/warehouse.duckdb"


class ConfigurationError(RuntimeError):
    """A setting is missing or wrong; the message says which and how to fix it."""


class WarehouseBusy(RuntimeError):
    """Another run holds the warehouse; the message names it (see ``loaders.common.lock``)."""


@dataclass(frozen=True)
class Warehouse:
    """Connection settings for one target. ``repr`` never shows the password."""

    target: str
    duckdb_path: Path | None = None
    pg_host: str = "localhost"
    pg_port: int = 5432
    pg_user: str = "elt"
    pg_password: str = ""
    pg_database: str = "elt"
    pg_sslmode: str = "prefer"
    production: bool = False  # ELT_PRODUCTION: commands that write ask for --yes

    def __repr__(self) -> str:
        return f"Warehouse({self.describe()})"

    @classmethod
    def from_env(cls, target: str | None = None) -> Warehouse:
        """Read the target from ``ELT_TARGET`` (or the argument) and its settings from ``ELT_*``."""
        target = target or os.environ.get("ELT_TARGET", "duckdb")
        production = os.environ.get("ELT_PRODUCTION", "").strip().lower() in {"1", "true", "yes", "on"}
        if target not in TARGETS:
            raise ConfigurationError(
                f"unknown target {target!r}: use one of {', '.join(TARGETS)} (ELT_TARGET or --target)"
            )
        if target == "duckdb":
            path = Path(os.environ.get("ELT_DUCKDB_PATH", DEFAULT_DUCKDB_PATH))
            if not path.is_absolute():
                path = ROOT / path
            return cls(target="duckdb", duckdb_path=path, production=production)
        try:
            port = int(os.environ.get("ELT_PG_PORT", "5432"))
        except ValueError as exc:
            raise ConfigurationError("ELT_PG_PORT must be a port number") from exc
        return cls(
            target="postgres",
            pg_host=os.environ.get("ELT_PG_HOST", "localhost"),
            pg_port=port,
            pg_user=os.environ.get("ELT_PG_USER", "elt"),
            pg_password=os.environ.get("ELT_PG_PASSWORD", ""),
            pg_database=os.environ.get("ELT_PG_DATABASE", "elt"),
            pg_sslmode=os.environ.get("ELT_PG_SSLMODE", "prefer"),
            production=production,
        )

    def describe(self) -> str:
        """Where the warehouse is, without secrets."""
        if self.target == "duckdb":
            return f"duckdb:{self.duckdb_path}"
        return f"postgres://{self.pg_user}@{self.pg_host}:{self.pg_port}/{self.pg_database}"

    def key(self) -> str:
        """A short name for this warehouse, the same on every machine that points at it (dbt's
        artifacts and the run lock are kept per warehouse)."""
        where = str(self.duckdb_path.resolve()) if self.duckdb_path else self.describe()
        return f"{self.target}-{hashlib.sha256(where.encode()).hexdigest()[:12]}"

    def env(self) -> dict[str, str]:
        """The environment dbt's profile and the checks read for this target."""
        values = {"ELT_TARGET": self.target, "ELT_PRODUCTION": "true" if self.production else "false"}
        if self.target == "duckdb":
            values["ELT_DUCKDB_PATH"] = str(self.duckdb_path)
        else:
            values |= {
                "ELT_PG_HOST": self.pg_host,
                "ELT_PG_PORT": str(self.pg_port),
                "ELT_PG_USER": self.pg_user,
                "ELT_PG_PASSWORD": self.pg_password,
                "ELT_PG_DATABASE": self.pg_database,
                "ELT_PG_SSLMODE": self.pg_sslmode,
            }
        return values

    def sqlalchemy_url(self) -> str:
        """A SQLAlchemy URL for PostgreSQL, password URL-encoded (keep it out of logs)."""
        if self.target != "postgres":
            raise ConfigurationError("sqlalchemy_url is only defined for the postgres target")
        return (
            f"postgresql+psycopg2://{quote(self.pg_user, safe='')}:{quote(self.pg_password, safe='')}"
            f"@{self.pg_host}:{self.pg_port}/{quote(self.pg_database, safe='')}"
            f"?sslmode={self.pg_sslmode}"
        )

    def dlt_destination(self) -> Any:
        """dlt's destination for this target."""
        from dlt.destinations import duckdb, postgres

        if self.target == "duckdb":
            assert self.duckdb_path is not None
            self.duckdb_path.parent.mkdir(parents=True, exist_ok=True)
            return duckdb(credentials=str(self.duckdb_path))
        return postgres(
            credentials={
                "host": self.pg_host,
                "port": self.pg_port,
                "username": self.pg_user,
                "password": self.pg_password,
                "database": self.pg_database,
                "query": {"sslmode": self.pg_sslmode},
            }
        )

    @property
    def paramstyle(self) -> str:
        """The DB-API placeholder of this target's driver."""
        return "?" if self.target == "duckdb" else "%s"

    @contextmanager
    def connect(self) -> Iterator[Any]:
        """A DB-API connection of its own, committed on success and closed on exit."""
        if self.target == "duckdb":
            import duckdb

            assert self.duckdb_path is not None
            self.duckdb_path.parent.mkdir(parents=True, exist_ok=True)
            try:
                with _DUCKDB_OPENING:
                    conn = duckdb.connect(str(self.duckdb_path))
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    raise
                # DuckDB names the process: "Conflicting lock is held in /usr/bin/python3 (PID 123) ..."
                held = re.search(r"held in (.+?\(PID \d+\))", str(exc))
                who = held.group(1) if held else "another process"
                raise WarehouseBusy(f"{self.describe()} is in use by {who}: try again when it ends") from None
            conn.begin()  # so that commit and rollback below always have a transaction
        else:
            import psycopg2

            try:
                conn = psycopg2.connect(
                    host=self.pg_host,
                    port=self.pg_port,
                    user=self.pg_user,
                    password=self.pg_password,
                    dbname=self.pg_database,
                    sslmode=self.pg_sslmode,
                    connect_timeout=10,
                )
            except psycopg2.OperationalError as exc:
                reason = " ".join(redact(str(exc)).split())  # libpq's message spans lines
                raise ConfigurationError(f"cannot connect to {self.describe()}: {reason}") from None
        try:
            yield conn
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.close()

    def has_table(self, schema: str, table: str) -> bool:
        """Whether ``schema.table`` exists (a source's table before its first load does not)."""
        found = self.query(
            "select count(*) from information_schema.tables "
            f"where table_schema = {self.paramstyle} and table_name = {self.paramstyle}",
            (schema, table),
        )
        return bool(found[0][0])

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one statement and return its rows (a convenience for reports and tests)."""
        with self.connect() as conn:
            cur = conn.cursor()
            # no parameters: no placeholder parsing either (a literal % stays as written on PostgreSQL)
            cur.execute(sql, params or None)
            return cur.fetchall() if cur.description else []


# DuckDB (1.4 and later) can fail two threads of one process that open the same file at the same
# moment ("Unique file handle conflict", duckdb/duckdb-python#392): a heartbeat and the run, say.
_DUCKDB_OPENING = threading.Lock()


def number_setting(name: str, default: float, *, minimum: float = 0.0, whole: bool = False) -> float:
    """A number from the environment variable ``name`` (``default`` when unset); a value that is not a
    number, or is below ``minimum``, is a setting to fix."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text) if whole else float(text)
    except ValueError:
        value = None
    if value is None or value < minimum:
        kind = "a whole number" if whole else "a number"
        raise ConfigurationError(f"{name} must be {kind} of at least {minimum:g}, not {text!r}")
    return value


@contextmanager
def scoped_env(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of the block, then restore them."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


_SECRET_ENV_VARS = ("ELT_PG_PASSWORD",)
_registered_secrets: set[str] = set()


def postgres_bindirs() -> list[Path]:
    """Folders that may hold the machine's PostgreSQL programs, most specific first: ``ELT_PG_BINDIR``,
    ``pg_config --bindir``, then Debian's ``/usr/lib/postgresql/<version>/bin``, newest first."""
    import shutil
    import subprocess

    candidates: list[Path] = []
    if os.environ.get("ELT_PG_BINDIR"):
        candidates.append(Path(os.environ["ELT_PG_BINDIR"]))
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    return candidates


def register_secret(value: str | None) -> None:
    """Remember a secret read at run time (an API key, a password) so ``redact`` hides it."""
    if value:
        _registered_secrets.add(value)


def redact(text: str) -> str:
    """Replace any known secret value in ``text`` with ``***`` before it is logged or stored."""
    secrets = [os.environ.get(name, "") for name in _SECRET_ENV_VARS] + sorted(_registered_secrets)
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***").replace(quote(secret, safe=""), "***")
    return text
