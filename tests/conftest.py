"""Fixtures: a throwaway PostgreSQL on loopback (or ELT_TEST_POSTGRES_URL) and a warehouse per test.

Tests that touch the warehouse take the ``warehouse`` fixture and run once per target.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from loaders.common.warehouse import Warehouse
from testing import pgserver

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
# Every session starts as a newcomer's machine does: an empty Prefect home (whatever earlier sessions
# left in ~/.prefect), and dbt's artifacts kept apart from the project's target/ folder.
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="elt-tests-"))
os.environ["PREFECT_HOME"] = str(_SESSION_DIR / "prefect-home")
os.environ["ELT_DBT_ARTIFACTS"] = str(_SESSION_DIR / "dbt")
os.environ["ELT_REPORTS_DIR"] = str(_SESSION_DIR / "reports")
os.environ["ELT_BACKUP_DIR"] = str(_SESSION_DIR / "backups")  # (pytest-xdist: one session per worker)
# Files are read as soon as a test has written them (in production a file modified less than
# settle_seconds ago is left for the next run); tests of that rule set it themselves.
os.environ["SOURCES__SALES_CSV__SETTLE_SECONDS"] = "0"
os.environ["SOURCES__SALES_USERS__SETTLE_SECONDS"] = "0"
os.environ["SOURCES__COMMUNITIES__SETTLE_SECONDS"] = "0"
# Passwords are hashed with Argon2id's cheapest parameters (the deployed default takes 0.15 s of CPU a
# password, some 6 s of each run of the sample users); test_sales_users checks the default.
os.environ["SOURCES__SALES_USERS__ARGON2_PROFILE"] = "CHEAPEST"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[pgserver.PgServer]:
    url = os.environ.get("ELT_TEST_POSTGRES_URL")
    server = pgserver.from_url(url) if url else pgserver.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["duckdb", "postgres"])
def target(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def warehouse(
    target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Warehouse:
    """An empty warehouse on ``target``; the environment points dlt, dbt and the checks at it."""
    monkeypatch.setenv("ELT_TARGET", target)
    if target == "duckdb":
        monkeypatch.setenv("ELT_DUCKDB_PATH", str(tmp_path / "warehouse.duckdb"))
    else:
        server: pgserver.PgServer = request.getfixturevalue("pg_server")
        database = f"t_{uuid.uuid4().hex[:12]}"
        server.create_database(database)
        for key, value in server.env(database).items():
            monkeypatch.setenv(key, value)
    return Warehouse.from_env(target)


os.environ.setdefault("DLT_PROJECT_DIR", str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """A temporary Prefect API for the flow tests (started once per session)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=300):  # a fresh home migrates first
        yield


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    import shutil

    shutil.rmtree(_SESSION_DIR, ignore_errors=True)
