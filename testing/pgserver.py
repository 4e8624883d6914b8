"""A throwaway PostgreSQL server on loopback, for the tests and the benchmarks.

Uses the machine's PostgreSQL binaries (``ELT_PG_BINDIR``, ``pg_config --bindir`` or
``/usr/lib/postgresql/*/bin``). ``initdb`` and ``postgres`` refuse to run as root, so as root the server
runs as the unprivileged ``postgres`` user that Debian's package creates.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from loaders.common.warehouse import ConfigurationError, Warehouse, postgres_bindirs


def find_bindir() -> Path:
    """The folder of the machine's PostgreSQL server binaries (``initdb``, ``pg_ctl``)."""
    candidates = postgres_bindirs()
    if shutil.which("initdb"):
        candidates.append(Path(shutil.which("initdb")).resolve().parent)  # type: ignore[arg-type]
    for candidate in candidates:
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    raise ConfigurationError(
        "PostgreSQL server binaries not found: install them (apt-get install postgresql) "
        "or point ELT_PG_BINDIR at the folder holding initdb and pg_ctl"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PgServer:
    host: str
    port: int
    user: str
    password: str
    database: str = "postgres"
    datadir: Path | None = None
    bindir: Path | None = None
    run_as: str | None = None

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{self.database}"

    def env(self, database: str | None = None) -> dict[str, str]:
        """The ``ELT_PG_*`` settings that point the project at this server."""
        return {
            "ELT_PG_HOST": self.host,
            "ELT_PG_PORT": str(self.port),
            "ELT_PG_USER": self.user,
            "ELT_PG_PASSWORD": self.password,
            "ELT_PG_DATABASE": database or self.database,
            "ELT_PG_SSLMODE": "disable",
        }

    def warehouse(self, database: str | None = None) -> Warehouse:
        """The warehouse of ``database`` on this server."""
        return Warehouse(
            target="postgres",
            pg_host=self.host,
            pg_port=self.port,
            pg_user=self.user,
            pg_password=self.password,
            pg_database=database or self.database,
            pg_sslmode="disable",
        )

    def admin_execute(self, sql: str) -> None:
        import psycopg2

        conn = psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=self.database,
        )
        conn.autocommit = True
        try:
            conn.cursor().execute(sql)
        finally:
            conn.close()

    def create_database(self, name: str) -> None:
        self.admin_execute(f'drop database if exists "{name}" with (force)')
        self.admin_execute(f'create database "{name}"')

    def stop(self) -> None:
        if self.datadir is None or self.bindir is None:
            return  # an external server: not ours to stop
        self._run([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "stop"])
        shutil.rmtree(self.datadir.parent, ignore_errors=True)

    def _run(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        if self.run_as:
            argv = ["runuser", "-u", self.run_as, "--", *argv]
        return subprocess.run(argv, capture_output=True, text=True)


def from_url(url: str) -> PgServer:
    parsed = urlparse(url)
    return PgServer(
        host=parsed.hostname or "localhost",
        port=parsed.port or 5432,
        user=unquote(parsed.username or "postgres"),
        password=unquote(parsed.password or ""),
        database=(parsed.path or "/postgres").lstrip("/") or "postgres",
    )


def start(extra_settings: dict[str, str] | None = None) -> PgServer:
    """initdb and start a server on 127.0.0.1 with a random port and password."""
    bindir = find_bindir()
    run_as = "postgres" if os.geteuid() == 0 else None
    base = Path(tempfile.mkdtemp(prefix="elt-pg-"))
    datadir = base / "data"
    password = secrets.token_urlsafe(16)
    pwfile = base / "pwfile"
    pwfile.write_text(password + "\n")
    if run_as:
        shutil.chown(base, user=run_as)
        shutil.chown(pwfile, user=run_as)
    server = PgServer(
        host="127.0.0.1",
        port=_free_port(),
        user="elt",
        password=password,
        datadir=datadir,
        bindir=bindir,
        run_as=run_as,
    )
    init = server._run(
        [
            str(bindir / "initdb"),
            "-D",
            str(datadir),
            "-U",
            "elt",
            "--auth=scram-sha-256",
            f"--pwfile={pwfile}",
            "-E",
            "UTF8",
            "--locale=C",
        ]
    )
    pwfile.unlink()
    if init.returncode != 0:
        raise RuntimeError(f"initdb failed: {init.stderr.strip()[-2000:]}")
    settings = {
        "listen_addresses": "127.0.0.1",
        "port": str(server.port),
        "unix_socket_directories": str(base),
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "max_connections": "100",
    } | (extra_settings or {})
    options = " ".join(f"-c {key}={value}" for key, value in settings.items())
    started = server._run(
        [
            str(bindir / "pg_ctl"),
            "-D",
            str(datadir),
            "-o",
            options,
            "-l",
            str(base / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        ]
    )
    if started.returncode != 0:
        log = (base / "server.log").read_text() if (base / "server.log").exists() else ""
        raise RuntimeError(f"PostgreSQL did not start: {started.stderr.strip()} {log[-2000:]}")
    return server
