"""``elt run`` as an operator meets it, on both targets: two runs at once, a run killed with SIGKILL
during extract, load and dbt build and run again, a first run on a fresh machine, settings to fix.

Every table (raw and marts) is compared with a clean run's of the same sources, not only the summary.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from loaders.common.lock import ADVISORY_KEY, WarehouseLock
from loaders.common.warehouse import Warehouse
from tests.operations import (
    attempts,
    elt,
    elt_env,
    fingerprint,
    finish,
    heartbeat_after_start,
    leftover_processes,
    start,
)
from tests.sample_sources import SampleSources, sample_sources

RUN = ["run", "--source", "sales", "--source", "odk_central"]
KILL_POINTS = {
    # mid-extract: ODK Central has answered two requests (the sales sources are loaded by then)
    "extract": "loaders.odk_central.helpers:CentralSession.get_json:2",
    # mid-load: two jobs of the first package are in the warehouse, its merge and its dlt load row not
    "load": "dlt.common.storages.load_package:PackageStorage.complete_job:2",
    # mid-build: three models of `dbt build` are built
    "dbt": "dbt.task.run:ModelRunner.after_execute:3",
}

MakeWarehouse = Callable[[str], tuple[Warehouse, dict[str, str]]]


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SampleSources]:
    with sample_sources(tmp_path_factory.mktemp("sources")) as served:
        yield served


@pytest.fixture(scope="module")
def make_warehouse(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest, sources: SampleSources
) -> MakeWarehouse:
    """An empty warehouse on a target, with the environment of an ``elt`` process pointed at it and at
    the sample sources (attachments stored per warehouse)."""

    def make(target: str) -> tuple[Warehouse, dict[str, str]]:
        folder = tmp_path_factory.mktemp(target)
        env = sources.env | {
            "ELT_TARGET": target,
            "SOURCES__ODK_CENTRAL__ATTACHMENTS_STORAGE": str(folder / "attachments"),
        }
        if target == "duckdb":
            env["ELT_DUCKDB_PATH"] = str(folder / "warehouse.duckdb")
            return Warehouse(target="duckdb", duckdb_path=folder / "warehouse.duckdb"), env
        server = request.getfixturevalue("pg_server")
        database = f"ops_{uuid.uuid4().hex[:10]}"
        server.create_database(database)
        env |= server.env(database)
        return server.warehouse(database), env

    return make


@pytest.fixture(scope="module")
def clean(make_warehouse: MakeWarehouse) -> Callable[[str], dict[str, tuple[int, int, str]]]:
    """Every table after one clean run of the sample sources, per target (computed once)."""
    cache: dict[str, dict[str, tuple[int, int, str]]] = {}

    def of(target: str) -> dict[str, tuple[int, int, str]]:
        if target not in cache:
            warehouse, env = make_warehouse(target)
            code, out, err = elt(RUN, elt_env(env))
            assert code == 0, out + err
            cache[target] = fingerprint(warehouse)
            assert cache[target]["marts.fct_sales"][0] > 0
            assert cache[target]["raw_odk_central.rental_survey__person_details"][0] > 0
        return cache[target]

    return of


def _held(warehouse: Warehouse) -> bool:
    if warehouse.target == "duckdb":
        return WarehouseLock(warehouse, "").holder() is not None
    rows = warehouse.query(
        "select count(*) from pg_locks where locktype = 'advisory' and granted and classid = %s "
        "and objid = %s and database = (select oid from pg_database where datname = current_database())",
        ADVISORY_KEY,
    )
    return bool(rows[0][0])


def _wait_until_held(warehouse: Warehouse, process: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not _held(warehouse):
        assert process.poll() is None, "the run ended before it held the warehouse"
        assert time.monotonic() < deadline, "the run never held the warehouse"
        time.sleep(0.05)


def test_two_runs_at_once_load_what_one_run_loads(
    target: str, make_warehouse: MakeWarehouse, clean: Callable[[str], dict]
) -> None:
    expected = clean(target)
    warehouse, env = make_warehouse(target)

    both = [start(RUN, elt_env(env)), start(RUN, elt_env(env))]
    results = [finish(process) for process in both]

    assert [code for code, _, _ in results] == [0, 0], results
    assert fingerprint(warehouse) == expected
    runs = warehouse.query(
        "select started_at, finished_at from audit.sync_runs where sync_type = 'elt_run' order by 1"
    )
    assert len(runs) == 2 and runs[0][1] <= runs[1][0]  # one after the other, never together


def test_a_second_run_that_cannot_wait_says_who_holds_the_warehouse(
    target: str, make_warehouse: MakeWarehouse
) -> None:
    warehouse, env = make_warehouse(target)
    first = start(RUN, elt_env(env))
    _wait_until_held(warehouse, first)

    code, out, err = elt([*RUN, "--wait", "1"], elt_env(env))
    first_code, first_out, first_err = finish(first)

    assert code == 3
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "is busy: run " in err and f"pid {first.pid}," in err and "started 20" in err
    assert first_code == 0, first_out + first_err
    # the refused run changed nothing: only the first run's attempt is in the audit
    assert [status for status, _ in attempts(warehouse, "elt_run")] == ["success"]


@pytest.mark.parametrize("point", sorted(KILL_POINTS))
def test_a_killed_run_is_abandoned_and_the_next_run_finishes_the_job(
    target: str, point: str, make_warehouse: MakeWarehouse, clean: Callable[[str], dict]
) -> None:
    expected = clean(target)
    warehouse, env = make_warehouse(target)
    killed_env = elt_env(env)

    killed = start(RUN, killed_env, kill_at=KILL_POINTS[point])
    code, _, err = finish(killed)

    assert code == -9, err
    assert leftover_processes(killed_env["ELT_TEST_MARKER"]) == []
    leftover = list(Path(tempfile.gettempdir()).glob(f"elt-*-{killed.pid}-*"))
    if point != "dbt":
        assert leftover  # the killed run's dlt working folder, with its load package

    code, out, err = elt(RUN, elt_env(env))

    assert code == 0, out + err
    assert "marked abandoned" in out
    assert not any(path.exists() for path in leftover)
    assert fingerprint(warehouse) == expected
    runs = attempts(warehouse, "elt_run")
    assert [status for status, _ in runs] == ["abandoned", "success"]
    assert f":{killed.pid} ended without finishing" in (runs[0][1] or "")
    assert "last heartbeat" in (runs[0][1] or "")
    if target == "postgres" or point == "dbt":
        # it beat while it ran (on DuckDB, heartbeats wait while dlt or dbt holds the file, so a run
        # killed in its first load has not beaten yet: audit.paused)
        assert heartbeat_after_start(warehouse, "elt_run") > 0.2
    code, out, err = elt(["status", "--json"], elt_env(env))
    run_status = next(s for s in json.loads(out)["sync_types"] if s["sync_type"] == "elt_run")
    assert code == 0, out + err
    assert run_status["last_sync_status"] == "success"
    assert [run_status[f"{kind}_sync_count"] for kind in ("successful", "failed", "abandoned")] == [1, 0, 1]
    assert run_status["success_rate_7d"] == 0.5  # the abandoned attempt counts as one that failed


def test_three_first_runs_at_once_on_a_fresh_machine(tmp_path: Path, make_warehouse: MakeWarehouse) -> None:
    """A newcomer's machine: no Prefect home, no caches, a busy CPU, three runs on three warehouses."""
    home = tmp_path / "home"
    home.mkdir()
    prefect_home = home / ".prefect"
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)]
    try:
        runs = []
        for _ in range(3):
            _, env = make_warehouse("duckdb")
            env = elt_env(env, HOME=str(home), PREFECT_HOME=str(prefect_home), XDG_CACHE_HOME=str(home))
            env.pop("PREFECT_API_URL", None)
            runs.append((start(["run", "--source", "sales"], env), env["ELT_TEST_MARKER"]))
        results = [(finish(process), marker) for process, marker in runs]
    finally:
        for process in busy:
            process.kill()
            process.wait()

    for (code, out, err), marker in results:
        assert code == 0, out + err
        assert "Run on duckdb: success" in out
        assert leftover_processes(marker) == []
    assert not prefect_home.exists()  # a command-line run never starts Prefect


def test_settings_to_fix_are_one_line_exit_2_and_audited_once(
    tmp_path: Path, make_warehouse: MakeWarehouse
) -> None:
    warehouse, env = make_warehouse("duckdb")
    # a retry would show as a second attempt (and 30 s more): settings to fix are never retried
    env = elt_env(env, ELT_LOAD_RETRIES="1", ELT_RETRY_DELAY_SECONDS="30")
    nowhere = json.dumps([{"name": "x", "path": f"{tmp_path}/nope"}])
    missing_folder = env | {"SOURCES__SALES_CSV__FILE_SOURCES": nowhere}
    no_key = {key: value for key, value in env.items() if key != "SOURCES__SALES_API__API_KEY"}
    cases = {
        "unknown source": (["run", "--source", "nope"], env, "unknown source 'nope'"),
        "missing folder": (
            ["run", "--source", "sales_csv"],
            missing_folder,
            f"{tmp_path}/nope does not exist",
        ),
        "missing secret": (["run", "--source", "sales_api"], no_key, "SOURCES__SALES_API__API_KEY"),
    }
    for name, (args, case_env, says) in cases.items():
        code, out, err = elt(args, case_env)

        assert code == 2, (name, out, err)
        assert err.count("\n") == 1 and says in err, (name, err)
        assert "Traceback" not in out + err, name

    assert [status for status, _ in attempts(warehouse, "sales_csv")] == ["error"]
    assert [status for status, _ in attempts(warehouse, "sales_api")] == ["error"]
    assert "unknown source 'nope'" in (attempts(warehouse, "elt_run")[0][1] or "")
    code, _, err = elt(["--debug", "run", "--source", "nope"], env)
    assert code != 0 and "Traceback" in err


def test_a_wrong_password_or_host_is_one_line_and_leaks_nothing(
    make_warehouse: MakeWarehouse,
) -> None:
    _, env = make_warehouse("postgres")
    wrong = "wrong-Pa55word-for-the-test"
    cases = {
        "wrong password": env | {"ELT_PG_PASSWORD": wrong},
        "unreachable host": env | {"ELT_PG_PORT": "1", "ELT_PG_PASSWORD": wrong},
    }
    for name, case_env in cases.items():
        code, out, err = elt(["run", "--source", "sales"], elt_env(case_env))

        assert code == 2, (name, out, err)
        assert err.count("\n") == 1 and "cannot connect to postgres://" in err, (name, err)
        assert wrong not in out + err and env["ELT_PG_PASSWORD"] not in out + err
