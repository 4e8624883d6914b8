"""Benchmark: what a run that finds nothing new costs, and where the time goes.

    .venv/bin/python bench/bench_no_change_run.py [--repeats 5] [--target duckdb|postgres ...]

Per target, a warehouse is loaded once in full from the demo's sample sources (``tests/sample_sources.py``:
the sales CSV folders and users file, the sales API and ODK Central stand-ins on loopback, a registration
SQLite database, community CSV files). Then, ``--repeats`` times, interleaved, each in a fresh process
timed from start to exit:

* ``elt run``: every source, nothing new;
* ``elt run --source sales_csv``: an hourly sales job that finds no new file;
* baseline, ``before``: the same no-change run of every source as ``elt run`` ran it before this change,
  through the Prefect flow in-process (``flows.main.run``), which starts Prefect's ephemeral API server in
  a subprocess (a warm Prefect home: its database was migrated by an untimed first call);
* floors: ``python -c pass``; the imports of ``elt run``; the imports of the Prefect flow.

The split comes from the audit, each attempt's start and end: ``loads`` = the load attempts, ``dbt and
checks`` = ``dbt_build`` and ``expectations`` (skipped when nothing changed), ``run`` = the ``elt_run``
attempt (from the moment it held the warehouse); ``process start and imports`` = wall - run, and for the
baseline ``Prefect startup`` = wall - run - the flow's import floor. Peak memory is the largest
process's (GNU time's maximum resident set size). Medians over repetitions. Results go to
``bench/results/no_change_run.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

ELT = str(Path(sys.executable).with_name("elt"))
RUNS = {
    "elt run (every source)": [ELT, "run"],
    "elt run --source sales_csv": [ELT, "run", "--source", "sales_csv"],
    "before: Prefect flow, every source": [
        sys.executable,
        "-c",
        "import sys; from flows.main import run; sys.exit(0 if run().success else 1)",
    ],
}
BASELINE = "before: Prefect flow, every source"
FLOORS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "imports of elt run": [sys.executable, "-c", "import flows.cli, flows.pipeline"],
    "imports of the Prefect flow": [sys.executable, "-c", "import flows.main"],
}
LOADS = ("sales_csv", "sales_api", "sales_users", "odk_central", "registration", "communities")


def _git_commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(seconds from start to exit, peak MiB of the largest process); raises if the command failed.

    The peak comes from GNU time (``/usr/bin/time -f %M``, a small process): the ``wait4`` figure of a
    child of this process counts the pages it shared with this (large) process before ``exec``."""
    with tempfile.NamedTemporaryFile() as peak, tempfile.TemporaryFile() as out:
        command = (
            ["/usr/bin/time", "-f", "%M", "-o", peak.name, *argv] if Path("/usr/bin/time").exists() else argv
        )
        started = time.perf_counter()
        done = subprocess.run(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            out.seek(0)
            raise RuntimeError(f"{argv} failed ({done.returncode}): {out.read().decode()[-3000:]}")
        text = Path(peak.name).read_text().strip()
    return seconds, (int(text.splitlines()[-1]) / 1024 if text else float("nan"))


def split(warehouse: Any) -> dict[str, float]:
    """Seconds of the last run's attempts: the run, its loads, dbt and checks."""
    (run_id, started, finished), *_ = warehouse.query(
        "select sync_run_id, started_at, finished_at from audit.sync_runs where sync_type = 'elt_run' "
        "order by started_at desc limit 1"
    )
    rows = warehouse.query(
        "select sync_type, started_at, finished_at from audit.sync_runs "
        f"where started_at >= {warehouse.paramstyle} and sync_run_id <> {warehouse.paramstyle}",
        (started, run_id),
    )
    seconds = {name: (end - start).total_seconds() for name, start, end in rows if end is not None}
    return {
        "run": (finished - started).total_seconds(),
        "loads": sum(value for name, value in seconds.items() if name in LOADS),
        "dbt": seconds.get("dbt_build", 0.0) + seconds.get("expectations", 0.0),
    }


def measure(target: str, repeats: int, server: Any) -> dict[str, Any]:
    from loaders.common.warehouse import Warehouse, scoped_env
    from tests.sample_sources import sample_sources

    folder = Path(tempfile.mkdtemp(prefix="bench-no-change-"))
    env = os.environ | {
        "ELT_TARGET": target,
        "PREFECT_HOME": str(folder / "prefect-home"),
        "PREFECT_LOGGING_LEVEL": "ERROR",
        "ELT_DBT_ARTIFACTS": str(folder / "dbt"),
        "SOURCES__SALES_CSV__SETTLE_SECONDS": "0",  # the sample files were just written
        "SOURCES__SALES_USERS__SETTLE_SECONDS": "0",
        "SOURCES__COMMUNITIES__SETTLE_SECONDS": "0",
    }
    env.pop("PREFECT_API_URL", None)
    if target == "duckdb":
        env["ELT_DUCKDB_PATH"] = str(folder / "warehouse.duckdb")
    else:
        server.create_database("bench_no_change")
        env |= server.env("bench_no_change")
    results: dict[str, list[dict[str, float]]] = {name: [] for name in [*RUNS, *FLOORS]}
    with sample_sources(folder / "sources") as sources:
        env |= sources.env
        with scoped_env({key: env[key] for key in env if key.startswith(("ELT_", "PG"))}):
            warehouse = Warehouse.from_env(target)
        full_seconds, full_mib = timed([ELT, "run"], env)
        timed(RUNS[BASELINE], env)  # untimed: Prefect migrates its new home's database
        for _ in range(repeats):
            for name, argv in RUNS.items():
                seconds, mib = timed(argv, env)
                results[name].append({"wall": seconds, "mib": mib, **split(warehouse)})
            for name, argv in FLOORS.items():
                seconds, mib = timed(argv, env)
                results[name].append({"wall": seconds, "mib": mib})
    return {"results": results, "full": (full_seconds, full_mib)}


def _median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def report(measured: dict[str, Any], args: argparse.Namespace, started: float) -> str:
    lines = [
        "# A run that finds nothing new",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()} ({os.cpu_count()} cores), "
        f"commit {_git_commit()}, {args.repeats} repetitions (medians), "
        f"{time.time() - started:.0f} s in all. `bench/bench_no_change_run.py`.",
        "",
        "| target | run | wall s | process start and imports | Prefect startup | loads | dbt and checks "
        "| rest of the run (lock, audit, plan) | peak MiB | ratio to before |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for target, data in measured.items():
        results = data["results"]
        flow_imports = _median(results["imports of the Prefect flow"], "wall")
        baseline = results[BASELINE]
        for name in RUNS:
            runs = results[name]
            wall = _median(runs, "wall")
            outside = statistics.median(r["wall"] - r["run"] for r in runs)
            is_prefect = name == BASELINE
            startup = f"{outside - flow_imports:.2f}" if is_prefect else "0"
            start_imports = f"{flow_imports:.2f}" if is_prefect else f"{outside:.2f}"
            rest = statistics.median(r["run"] - r["loads"] - r["dbt"] for r in runs)
            ratio = statistics.median(r["wall"] / b["wall"] for r, b in zip(runs, baseline, strict=True))
            lines.append(
                f"| {target} | {name} | **{wall:.2f}** | {start_imports} | {startup} "
                f"| {_median(runs, 'loads'):.2f} | {_median(runs, 'dbt'):.2f} | {rest:.2f} "
                f"| {_median(runs, 'mib'):.0f} | **{ratio:.3f}** |"
            )
        for name in FLOORS:
            runs = results[name]
            lines.append(
                f"| {target} | floor: {name} | {_median(runs, 'wall'):.2f} | | | | | "
                f"| {_median(runs, 'mib'):.0f} | |"
            )
        full_seconds, full_mib = data["full"]
        lines.append(
            f"| {target} | for scale: the first, full run (once) | {full_seconds:.2f} | | | | | "
            f"| {full_mib:.0f} | |"
        )
    lines += [
        "",
        "- `elt run` calls the steps directly (`flows/pipeline.py`): no Prefect import, no Prefect server.",
        "- before = what `elt run` did until this change: the Prefect flow in-process, its ephemeral API "
        "server started in a subprocess for the run (warm home). Deployments still run the Prefect flow, "
        "through a long-lived server and a worker.",
        "- process start and imports = wall - the `elt_run` attempt: the interpreter, the imports, settings, "
        "taking the warehouse lock, and the exit.",
        "- loads: every source read, each with a dlt pipeline that restores its state from the warehouse; "
        "registration reads its tables whole (they have no `updated_at`; here the sample's one county), "
        "the sales API its lookback day, ODK Central asks for changes since its cursor.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--target", choices=("duckdb", "postgres"), action="append")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "no_change_run.md")
    args = parser.parse_args(argv)
    os.environ.setdefault("DLT_PROJECT_DIR", str(ROOT))
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    targets = args.target or ["duckdb", "postgres"]
    started = time.time()
    server = None
    if "postgres" in targets:
        from testing import pgserver

        server = pgserver.start()
    try:
        measured = {target: measure(target, args.repeats, server) for target in targets}
    finally:
        if server is not None:
            server.stop()
    text = report(measured, args, started)
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
