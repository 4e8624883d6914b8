"""Benchmark: voter registration and community coverage on PostgreSQL, full / no change / 100 changed.

    .venv/bin/python bench/bench_area_rollups.py [--repeats 3] [--changed 100]
                                                 [--part registration|communities]

Starts a throwaway PostgreSQL (``testing.pgserver``). Per part and repetition, with a fresh
warehouse database:

* ``registration``: the sample registration database (``testing.samples.registration``: 47 counties,
  290 constituencies, 1,450 wards, 46,762 polling stations) in a PostgreSQL database of its own, read
  through ``postgresql://`` as in production; one run = the ``registration`` load, ``dbt build`` of what
  changed (dims with rollups, demographics, reconciliation) and the rollup audit/reconciliation count.
* ``communities``: one record per barangay (42,011, ``testing.samples.communities`` with every region)
  in CSV files; one run = the ``communities`` load, ``dbt build`` (coverage rollups at three levels, the
  snapshot, the change report) and the rollup audit.

Runs per repetition: ``full`` (empty warehouse), ``no_change`` (nothing changed in the source), ``changed``
(``--changed`` rows changed: polling-station figures updated in the source database; a new CSV batch
revising that many community records). A run is the flow's own task functions (``load_source``,
``dbt_build``, ``rollups``) called in one process after the imports, so the timed window is the work,
not Prefect's API or interpreter start-up.

Baseline, in the same run: raw ``COPY ... FROM STDIN`` of the same rows (the four level tables as CSV;
the community CSV files) into a plain table of the warehouse. "ratio to COPY" = COPY seconds / full-run
seconds (throughput relative to the bare copy); "ratio to full" = run seconds / full-run seconds of the
same repetition. Medians over repetitions. Results go to ``bench/results/area_rollups.md``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
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

PHASES = ("full", "no_change", "changed")
PARTS = ("registration", "communities")


def _git_commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")


def _env(server: Any, database: str) -> dict[str, str]:
    return server.env(database) | {"ELT_TARGET": "postgres", "ELT_LOAD_RETRIES": "0"}


def _one_run(part: str) -> dict[str, Any]:
    from flows.pipeline import dbt_build, load_source, rollups
    from flows.rollups import coverage_mark
    from loaders.common.warehouse import Warehouse
    from loaders.registry import RunOptions

    warehouse = Warehouse.from_env("postgres")
    started = time.perf_counter()
    loaded = load_source(part, warehouse, RunOptions())
    after_load = time.perf_counter()
    since = coverage_mark(warehouse)
    built, sources = dbt_build(warehouse)
    after_build = time.perf_counter()
    rolled = rollups(warehouse, sources, since) if sources else None
    done = time.perf_counter()
    if built.status == "error":
        raise RuntimeError(f"dbt build failed: {built.error}")
    nodes, node_seconds = _dbt_nodes(warehouse) if sources else (0, 0.0)
    return {
        "dbt_nodes": nodes,
        "dbt_node_seconds": node_seconds,
        "seconds": done - started,
        "load_seconds": after_load - started,
        "dbt_seconds": after_build - after_load,
        "rollup_seconds": done - after_build,
        "read": loaded.read,
        "loaded": loaded.loaded,
        "built": ", ".join(sources) or "-",
        "detail": rolled.detail if rolled else built.detail,
    }


def _dbt_nodes(warehouse: Any) -> tuple[int, float]:
    """(nodes, seconds inside them summed over dbt's threads) of the last dbt invocation."""
    from flows.dbt_runner import artifacts_path

    results = json.loads((artifacts_path(warehouse) / "run_results.json").read_text())["results"]
    return len(results), sum(node["execution_time"] for node in results)


FLOOR_MODEL = {"registration": "stg_registration__counties", "communities": "stg_communities__records"}


def _dbt_floor(part: str) -> float:
    """Seconds of ``dbt run`` of one staging view: what invoking dbt costs before any real work."""
    from flows.dbt_runner import invoke
    from loaders.common.warehouse import Warehouse

    started = time.perf_counter()
    result = invoke(Warehouse.from_env("postgres"), "run", [FLOOR_MODEL[part]])
    if not result.success:
        raise RuntimeError(f"dbt run failed: {result.message()}")
    return time.perf_counter() - started


def _copy_registration(source_url: str, warehouse_env: dict[str, str]) -> tuple[float, int]:
    import psycopg2
    import sqlalchemy as sa

    from loaders.common.sqlsource import sqlalchemy_url

    engine = sa.create_engine(sqlalchemy_url(source_url))
    buffers = []
    with engine.connect() as conn:
        for table in ("counties", "constituencies", "wards", "polling_stations"):
            rows = conn.execute(sa.text(f"select code, name, registered_voters_2022 from {table}")).fetchall()
            out = io.StringIO()
            csv.writer(out).writerows(rows)
            buffers.append((out.getvalue(), len(rows)))
    engine.dispose()
    return _copy(buffers, warehouse_env, "code bigint, name text, registered_voters_2022 bigint", psycopg2)


def _copy_communities(folder: Path, warehouse_env: dict[str, str]) -> tuple[float, int]:
    import psycopg2

    buffers = []
    for path in sorted(folder.glob("*.csv")):
        text = path.read_text(encoding="utf-8")
        body = text.split("\n", 1)[1]
        buffers.append((body, body.count("\n")))
    # as text: the files hold the records the loader must quarantine (a figure "n/a")
    columns = (
        "record_id text, barangay_code text, estimated_population text, households text, "
        "is_deleted text, updated_at text"
    )
    return _copy(buffers, warehouse_env, columns, psycopg2)


def _copy(
    buffers: list[tuple[str, int]], env: dict[str, str], columns: str, psycopg2: Any
) -> tuple[float, int]:
    conn = psycopg2.connect(
        host=env["ELT_PG_HOST"],
        port=env["ELT_PG_PORT"],
        user=env["ELT_PG_USER"],
        password=env["ELT_PG_PASSWORD"],
        dbname=env["ELT_PG_DATABASE"],
    )
    try:
        cur = conn.cursor()
        cur.execute(f"drop table if exists copy_baseline; create table copy_baseline ({columns})")
        conn.commit()
        started = time.perf_counter()
        for body, _ in buffers:
            cur.copy_expert("copy copy_baseline from stdin (format csv)", io.StringIO(body))
        conn.commit()
        seconds = time.perf_counter() - started
        cur.execute("drop table copy_baseline")
        conn.commit()
    finally:
        conn.close()
    return seconds, sum(rows for _, rows in buffers)


def _change_registration(source_url: str, count: int) -> None:
    import sqlalchemy as sa

    from loaders.common.sqlsource import sqlalchemy_url

    engine = sa.create_engine(sqlalchemy_url(source_url))
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "update polling_stations set registered_voters_2022 = registered_voters_2022 + 1 "
                "where code in (select code from polling_stations order by code limit :n)"
            ),
            {"n": count},
        )
    engine.dispose()


def _change_communities(folder: Path, count: int) -> None:
    from testing.samples import communities as samples

    rows = []
    with (folder / "records_10.csv").open(newline="", encoding="utf-8") as file:
        for index, record in enumerate(csv.DictReader(file)):
            if index >= count:
                break
            rows.append(
                [
                    record["record_id"],
                    record["barangay_code"],
                    str(int(record["estimated_population"]) + 7),
                    record["households"],
                    "false",
                    "2026-06-01T00:00:00Z",
                ]
            )
    with (folder / "records_zz_changed.csv").open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(samples.HEADER)
        writer.writerows(rows)


def measure(part: str, repeats: int, changed: int) -> dict[str, Any]:
    from loaders.common.warehouse import scoped_env
    from testing import pgserver
    from testing.samples import communities as community_samples
    from testing.samples import registration as registration_samples

    server = pgserver.start()
    results: dict[str, list[dict[str, Any]]] = {phase: [] for phase in PHASES}
    copies: list[tuple[float, int]] = []
    floors: list[float] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-areas-") as scratch:
            for repeat in range(repeats):
                warehouse_db = f"bench_{part}_{repeat}"
                server.create_database(warehouse_db)
                env = _env(server, warehouse_db)
                values: dict[str, str] = {}
                if part == "registration":
                    source_db = f"bench_source_{repeat}"
                    server.create_database(source_db)
                    source_url = f"postgresql://{server.user}:{server.password}@{server.host}:{server.port}/{source_db}"
                    registration_samples.build_source_database(source_url)
                    values["SOURCES__REGISTRATION__CREDENTIALS"] = source_url
                    copies.append(_copy_registration(source_url, env))
                else:
                    folder = Path(scratch) / f"records_{repeat}"
                    community_samples.generate(folder, regions=None)
                    values["SOURCES__COMMUNITIES__FILES_PATH"] = str(folder)
                    copies.append(_copy_communities(folder, env))
                with scoped_env(env | values):
                    for phase in PHASES:
                        if phase == "changed":
                            if part == "registration":
                                _change_registration(source_url, changed)
                            else:
                                _change_communities(folder, changed)
                        outcome = _one_run(part)
                        results[phase].append(outcome)
                        print(
                            f"  {part} run {repeat + 1}/{repeats} {phase:10s} {outcome['seconds']:7.2f} s "
                            f"(load {outcome['load_seconds']:.2f}, dbt {outcome['dbt_seconds']:.2f}) "
                            f"loaded {outcome['loaded']:,} built {outcome['built']}",
                            flush=True,
                        )
                    floors.append(_dbt_floor(part))
    finally:
        server.stop()
    return {"results": results, "copies": copies, "floors": floors}


def report(measured: dict[str, dict[str, Any]], args: argparse.Namespace, started: float) -> str:
    lines = [
        "# Registration and coverage rollups on PostgreSQL: full, no change, changed rows",
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {os.cpu_count()} CPUs, {platform.platform()}",
        f"- command: `python bench/bench_area_rollups.py {' '.join(sys.argv[1:])}`",
        f"- code: commit {_git_commit()}",
        f"- whole benchmark: {time.time() - started:.0f} s; medians of {args.repeats} repetitions",
        "",
        "| part | run | rows loaded | median s | load s | dbt s | dbt nodes (s in them) | ratio to full "
        "| ratio to raw COPY |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for part, data in measured.items():
        results, copies = data["results"], data["copies"]
        full = [run["seconds"] for run in results["full"]]
        copy_seconds = statistics.median(seconds for seconds, _ in copies)
        for phase in PHASES:
            runs = results[phase]
            seconds = statistics.median(run["seconds"] for run in runs)
            ratio = statistics.median(run["seconds"] / base for run, base in zip(runs, full, strict=True))
            to_copy = f"{copy_seconds / seconds:.3f}" if phase == "full" else ""
            lines.append(
                f"| {part} | {phase.replace('_', ' ')} | {statistics.median(r['loaded'] for r in runs):,.0f} "
                f"| {seconds:.2f} | {statistics.median(r['load_seconds'] for r in runs):.2f} "
                f"| {statistics.median(r['dbt_seconds'] for r in runs):.2f} "
                f"| {statistics.median(r['dbt_nodes'] for r in runs):.0f} "
                f"({statistics.median(r['dbt_node_seconds'] for r in runs):.2f}) "
                f"| **{ratio:.3f}** | {to_copy} |"
            )
        lines.append(
            f"| {part} | raw COPY baseline ({copies[0][1]:,} rows) | | {copy_seconds:.2f} | | | | | 1 |"
        )
        floor = statistics.median(data["floors"])
        full_median = statistics.median(full)
        lines.append(
            f"| {part} | dbt floor: `dbt run` of one view ({FLOOR_MODEL[part]}) | | {floor:.2f} | "
            f"| {floor:.2f} | 1 | **{floor / full_median:.3f}** | |"
        )
    lines += [
        "",
        "- A run = `load_source` + `dbt_build` (only the sources with new loads, see `flows/build_plan.py`) "
        "+ `rollups` (rollup audit rows, reconciliation and demographic-exception counts, coverage changes).",
        f"- changed = {args.changed} polling-station figures updated in the source database / "
        f"{args.changed} community records revised in a new CSV file.",
        "- dbt nodes (s in them): the models, seeds, snapshots and data tests the build ran, and the "
        "seconds spent inside them summed over dbt's 2 threads (`target/run_results.json`), so it can "
        "exceed the dbt column.",
        "- dbt floor: one `dbt run` of a single staging view, timed after the changed run in the same "
        "process: the cost of invoking dbt at all (reading the project, compiling the graph), before "
        "any model's work. Its ratio is to the median full run.",
        "- PostgreSQL is `testing.pgserver` (fsync, synchronous_commit and full_page_writes off); the "
        "registration source database is on the same server.",
        "",
        "Last run's details:",
        "",
    ]
    for part, data in measured.items():
        for phase in PHASES:
            run = data["results"][phase][-1]
            lines.append(f"- {part} {phase}: read {run['read']:,}, built {run['built']}; {run['detail']}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--changed", type=int, default=100)
    parser.add_argument("--part", choices=PARTS, action="append")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "area_rollups.md")
    args = parser.parse_args(argv)
    os.environ.setdefault("DLT_PROJECT_DIR", str(ROOT))
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "ERROR")
    os.environ.setdefault("SOURCES__COMMUNITIES__SETTLE_SECONDS", "0")  # its files were just written
    started = time.time()
    measured = {part: measure(part, args.repeats, args.changed) for part in (args.part or PARTS)}
    text = report(measured, args, started)
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
