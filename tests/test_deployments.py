"""The deployments of ``prefect.yaml`` as an operator runs them: a real Prefect server on loopback with an
empty home, ``make deploy`` (``prefect deploy --all``), a process worker on ``elt-process`` whose
environment holds no secret, each deployment run once to Completed against a DuckDB warehouse, and the
main one against PostgreSQL. Secrets come from Secret blocks when the flows run; afterwards no secret
value is found in ``prefect deployment inspect``, Prefect's database and logs, or the warehouses.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from loaders.common.warehouse import ROOT, Warehouse
from tests.operations import leftover_processes
from tests.sample_sources import SampleSources, sample_sources

PREFECT = str(Path(sys.executable).with_name("prefect"))
DEPLOYMENTS = (
    "elt-main/sales-daily",
    "elt-main/odk-central",
    "elt-main/registration-communities-nightly",
    "elt-backup/backup-daily",
    "elt-cleanup/cleanup-weekly",
)
SECRET_SETTINGS = ("SOURCES__SALES_API__API_KEY", "SOURCES__ODK_CENTRAL__PASSWORD", "ELT_PG_PASSWORD")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Prefect:
    """A Prefect server and a process worker of our own, stopped at the end."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.url = f"http://127.0.0.1:{_free_port()}/api"
        self.marker = uuid.uuid4().hex
        self.logs = home.parent / "prefect-logs"
        self.logs.mkdir()
        clean = {key: value for key, value in os.environ.items() if not key.startswith(("PREFECT_", "ELT_"))}
        self.env = clean | {
            "PREFECT_HOME": str(home),
            "PREFECT_API_URL": self.url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "ELT_TEST_MARKER": self.marker,
        }
        self.processes: list[subprocess.Popen[bytes]] = []

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        with (self.logs / f"{name}.log").open("wb") as log:
            self.processes.append(
                subprocess.Popen(args, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
            )

    def start_server(self) -> None:
        port = self.url.split(":")[-1].split("/")[0]
        self.spawn("server", [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", port], self.env)
        deadline = time.monotonic() + 300  # a fresh home migrates its database first
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert self.processes[0].poll() is None, (self.logs / "server.log").read_text()
            assert time.monotonic() < deadline, "the Prefect server did not start"
            time.sleep(0.5)

    def cli(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PREFECT, *args], env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
        )

    def python(self, code: str) -> None:
        done = subprocess.run([sys.executable, "-c", code], env=self.env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def prefect(tmp_path: Path) -> Iterator[Prefect]:
    server = Prefect(tmp_path / "prefect-home")
    try:
        server.start_server()
        yield server
    finally:
        server.stop()


@pytest.fixture
def sources(tmp_path: Path) -> Iterator[SampleSources]:
    with sample_sources(
        tmp_path / "sources", api_key=secrets.token_urlsafe(18), odk_password=secrets.token_urlsafe(18)
    ) as served:
        yield served


def test_every_deployment_runs_to_completion_and_stores_no_secret(
    prefect: Prefect, sources: SampleSources, pg_server, tmp_path: Path
) -> None:
    duckdb_path = tmp_path / "warehouse.duckdb"
    database = f"deploy_{uuid.uuid4().hex[:10]}"
    pg_server.create_database(database)
    secret_values = {name: sources.env[name] for name in SECRET_SETTINGS[:2]} | {
        "ELT_PG_PASSWORD": pg_server.password
    }
    # Settings as Prefect Variables (the port as a number), secrets as Secret blocks.
    variables = {
        "elt_target": "duckdb",
        "elt_duckdb_path": str(duckdb_path),
        "elt_pg_host": pg_server.host,
        "elt_pg_port": pg_server.port,
        "elt_pg_database": database,
        "elt_pg_user": pg_server.user,
        "elt_backup_dir": str(tmp_path / "backups"),
        "sales_api_base_url": sources.env["SOURCES__SALES_API__BASE_URL"],
        "odk_central_base_url": sources.env["SOURCES__ODK_CENTRAL__BASE_URL"],
        "odk_central_username": sources.env["SOURCES__ODK_CENTRAL__USERNAME"],
    }
    blocks = {
        "elt-pg-password": pg_server.password,
        "sales-api-key": secret_values["SOURCES__SALES_API__API_KEY"],
        "odk-central-password": secret_values["SOURCES__ODK_CENTRAL__PASSWORD"],
        "registration-credentials": sources.env["SOURCES__REGISTRATION__CREDENTIALS"],
    }
    prefect.python(
        "from prefect.blocks.system import Secret\n"
        "from prefect.variables import Variable\n"
        f"for name, value in {variables!r}.items(): Variable.set(name, value)\n"
        f"for name, value in {blocks!r}.items(): Secret(value=value).save(name)\n"
    )

    deployed = subprocess.run(
        ["make", "deploy"], env=prefect.env, cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr

    # The worker's environment: where the project is and the non-secret file settings, no secret.
    # (ELT_LOAD_RETRIES left at its default, 1: the refused key below must not be tried again)
    settings = {
        key: value
        for key, value in sources.env.items()
        if key not in SECRET_SETTINGS
        and key != "ELT_LOAD_RETRIES"
        and not key.endswith(("BASE_URL", "USERNAME", "CREDENTIALS"))
    }
    worker_env = prefect.env | settings | {"ELT_PROJECT_DIR": str(ROOT), "PREFECT_WORKER_QUERY_SECONDS": "1"}
    assert not set(secret_values.values()) & set(worker_env.values())
    prefect.spawn("worker", [PREFECT, "worker", "start", "--pool", "elt-process"], worker_env)

    runs = [(name, []) for name in DEPLOYMENTS] + [("elt-main/sales-daily", ["--param", "target=postgres"])]
    for name, extra in runs:
        done = prefect.cli(
            "deployment", "run", name, *extra, "--watch", "--watch-interval", "1", "--watch-timeout", "600"
        )
        assert done.returncode == 0 and "Completed" in done.stdout, (name, done.stdout[-3000:], done.stderr)

    # A failed run too: the API refuses a key (now wrong), and Prefect keeps the failure's message.
    wrong_key = secrets.token_urlsafe(18)
    secret_values["wrong sales API key"] = wrong_key
    prefect.python(
        "from prefect.blocks.system import Secret\n"
        f"Secret(value={wrong_key!r}).save('sales-api-key', overwrite=True)\n"
    )
    failed = prefect.cli(
        "deployment",
        "run",
        "elt-main/sales-daily",
        "--watch",
        "--watch-interval",
        "1",
        "--watch-timeout",
        "600",
    )
    assert failed.returncode != 0 and "Failed" in failed.stdout, failed.stdout[-3000:]

    # The hourly health check, run by the worker: unhealthy now (that refused key; and the samples'
    # sales are from early 2026, none yesterday), so its flow run fails and the audit says why.
    health = prefect.cli(
        "deployment",
        "run",
        "elt-health-check/health-check",
        "--watch",
        "--watch-interval",
        "1",
        "--watch-timeout",
        "600",
    )
    assert health.returncode != 0 and "Failed" in health.stdout, health.stdout[-3000:]

    duckdb = Warehouse(target="duckdb", duckdb_path=duckdb_path)
    completed = duckdb.query(
        "select sync_type, status, count(*) from audit.sync_runs where flow_run_id is not null "
        "and sync_type in ('elt_run', 'backup') group by 1, 2 order by 1, 2"
    )
    assert completed == [("backup", "success", 1), ("elt_run", "error", 1), ("elt_run", "success", 3)]
    assert duckdb.query("select status from audit.sync_runs where sync_type = 'cleanup'") == [("success",)]
    checked = duckdb.query(
        "select status, error_message from audit.sync_runs where sync_type = 'health_check'"
    )
    assert [status for status, _ in checked] == ["error"]
    assert "sync sales_api: last attempt error" in checked[0][1] and "sales yesterday" in checked[0][1]
    refused = duckdb.query("select status, error_message from audit.sync_runs where sync_type = 'sales_api'")
    assert sorted(status for status, _ in refused) == ["error", "success"]  # not retried
    assert any("refused the API key" in (error or "") for _, error in refused)
    assert duckdb.query("select count(*) from marts.fct_rental_submissions_unified")[0][0] > 0
    assert duckdb.query("select count(*) from marts.agg_municipality_coverage")[0][0] > 0
    assert list((tmp_path / "backups").iterdir())
    postgres = pg_server.warehouse(database)
    assert postgres.query("select status from audit.sync_runs where sync_type = 'elt_run'") == [("success",)]
    assert postgres.query("select count(*) from marts.fct_sales")[0][0] > 0

    # No secret value anywhere: the deployments, Prefect's database and logs, the warehouses.
    inspected = "".join(
        prefect.cli("deployment", "inspect", name).stdout
        for name in (*DEPLOYMENTS, "elt-health-check/health-check")
    )
    assert "sales-daily" in inspected
    dump = subprocess.run(
        [str(pg_server.bindir / "pg_dump") if pg_server.bindir else "pg_dump", "--dbname", database],
        env=os.environ
        | {
            "PGHOST": pg_server.host,
            "PGPORT": str(pg_server.port),
            "PGUSER": pg_server.user,
            "PGPASSWORD": pg_server.password,
        },
        capture_output=True,
    )
    assert dump.returncode == 0, dump.stderr
    places = {"deployment inspect": inspected.encode(), "pg_dump": dump.stdout}
    for folder in (prefect.home, prefect.logs, tmp_path / "backups"):
        for path in folder.rglob("*"):
            if path.is_file():
                places[str(path)] = path.read_bytes()
    places[str(duckdb_path)] = duckdb_path.read_bytes()
    for setting, value in secret_values.items():
        found = [where for where, content in places.items() if value.encode() in content]
        assert not found, f"{setting} found in {found}"

    prefect.stop()
    assert leftover_processes(prefect.marker) == []
