"""Benchmark: loading a sales CSV export into PostgreSQL, three ways, side by side.

    .venv/bin/python bench/bench_sales_csv_load.py [--rows 1000000] [--repeats 3]
                                                   [--dlt-default-rows 100000] [--fsync]

1. Writes a deterministic (seeded) CSV of valid order lines under a temporary folder.
2. Starts a throwaway PostgreSQL (``testing.pgserver``) and stops it at the end.
3. Loads the file into ``raw_sales.orders`` of a fresh database per method and repetition:

   * ``loader``      the project's ``sales_csv`` source through ``run_sync``, as ``elt run`` runs it
                     (Arrow batches -> binary COPY into ``orders`` while the next batch is read and
                     checked, in one transaction; dlt loads the rejections and the state);
   * ``copy``        raw ``COPY ... FROM STDIN (FORMAT csv, HEADER true)`` with psycopg2 into a table
                     of the same data columns: the baseline;
   * ``dlt_default`` a plain ``@dlt.resource`` yielding ``csv.DictReader`` dicts, append, dlt's default
                     ``insert_values`` format (on ``--dlt-default-rows`` rows: ~70x slower here).

   Every measurement runs in a fresh subprocess, so peak RSS is per method; the timed window is the
   load itself (connect to commit), not the interpreter start or imports.
4. Prints a Markdown table of medians and writes it to ``bench/results/sales_csv_load.md``, with the
   loader's step breakdown (dlt's extract / normalize / load, and within the extract the wait for
   the COPY's last rows and the delete of replaced lines).

``--fsync`` starts the server with fsync, synchronous_commit and full_page_writes on (as production
runs) instead of off.

dlt settings come from ``.dlt/config.toml`` and the environment as in production, so experiments
can be run as e.g. ``NORMALIZE__WORKERS=2 DATA_WRITER__FILE_MAX_ITEMS=250000 .venv/bin/python ...``;
the dlt variables in effect are written to the results. ``PYTHONPATH=/tmp/copy`` runs a modified copy
of ``loaders`` instead of the repository's (the results say so, and name the commit).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # after PYTHONPATH, so a prototype copy of ``loaders`` can win

METHODS = ("loader", "copy", "dlt_default", "increment")
HEADER = "order_id,date,user_id,product_name,quantity,unit_price,total_amount,region"
PRODUCTS = [
    f"{adjective} {thing}"
    for adjective in ("Basic", "Deluxe", "Eco", "Compact", "Pro", "Classic")
    for thing in ("Kettle", "Lamp", "Chair", "Backpack", "Headphones", "Blender", "Desk", "Mug")
]
REGIONS = ("North", "South", "East", "West", "Central")
# The data columns as the loader types them (dlt maps Arrow decimal128(18, 4) to numeric(18,4)).
COPY_COLUMNS = (
    ("order_id", "varchar not null"),
    ("order_date", "date"),
    ("user_id", "varchar"),
    ("product_name", "varchar not null"),
    ("quantity", "bigint"),
    ("unit_price", "numeric(18,4)"),
    ("total_amount", "numeric(18,4)"),
    ("region", "varchar"),
)
# Modules the dlt-based paths import lazily inside the run (pandas from dlt's pyarrow helpers,
# SQLAlchemy from the credentials' URL). They are one-off, per-process costs, so every worker imports
# its modules before the timer starts and reports that time separately. This machine's venv carries
# no bytecode and PYTHONDONTWRITEBYTECODE=1 is set, so these imports take ~2 s per process here.
WARM_IMPORTS = {
    "copy": ("psycopg2", "loaders.common.warehouse"),
    "loader": (
        "psycopg2",
        "loaders.common.warehouse",
        "loaders.common.pipeline",
        "loaders.sales",
        "dlt",
        "dlt.common.libs.pyarrow",
        "pandas",
        "dlt.common.libs.sql_alchemy_compat",
        "dlt.destinations.impl.postgres.postgres",
    ),
}
WARM_IMPORTS["dlt_default"] = WARM_IMPORTS["increment"] = WARM_IMPORTS["loader"]
DLT_ENV_PREFIXES = ("NORMALIZE__", "LOAD__", "EXTRACT__", "DATA_WRITER__", "DESTINATION__", "SOURCES__")


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------


def write_sales_csv(path: Path, rows: int, seed: int = 20260101) -> None:
    """``rows`` valid order lines: 1-4 distinct products per order, total = quantity x unit price."""
    rng = random.Random(seed)
    first_day = date(2024, 1, 1)
    days = [(first_day + timedelta(days=d)).isoformat() for d in range(730)]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write(HEADER + "\n")
        written = 0
        order = 0
        out: list[str] = []
        while written < rows:
            order += 1
            order_id = f"ORD-{order:08d}"
            day = days[rng.randrange(len(days))]
            user = f"U{rng.randrange(1, 50_000):06d}"
            region = REGIONS[rng.randrange(len(REGIONS))]
            lines = min(rng.randint(1, 4), rows - written)
            for product in rng.sample(PRODUCTS, lines):
                quantity = rng.randint(1, 20)
                cents = rng.randint(99, 49_999)
                total = quantity * cents
                out.append(
                    f"{order_id},{day},{user},{product},{quantity},"
                    f"{cents // 100}.{cents % 100:02d},{total // 100}.{total % 100:02d},{region}\n"
                )
            written += lines
            if len(out) >= 50_000:
                fh.writelines(out)
                out.clear()
        fh.writelines(out)


# --------------------------------------------------------------------------------------------------
# Workers (one per subprocess)
# --------------------------------------------------------------------------------------------------


def _peak_rss_mib() -> tuple[float, float]:
    """Peak RSS of this process and of its largest child (Linux reports KiB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def _count_rows() -> int:
    from loaders.common.warehouse import Warehouse

    return int(Warehouse.from_env("postgres").query("select count(*) from raw_sales.orders")[0][0])


def _seconds(start: Any, end: Any) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


def _loader_breakdown(info: Any) -> dict[str, Any]:
    """Step times from dlt's trace; within load, the COPY jobs and the merge SQL from job metrics."""
    out: dict[str, Any] = {}
    trace = info.pipeline.last_trace
    for step in trace.steps:
        if step.step in ("extract", "normalize", "load"):
            out[step.step] = _seconds(step.started_at, step.finished_at)
    copy_jobs: list[tuple[datetime, datetime]] = []
    sql_jobs: list[tuple[datetime, datetime]] = []
    files = 0
    for metrics in info.metrics.values():
        for step_metrics in metrics:
            for job in step_metrics.get("job_metrics", {}).values():
                if job.finished_at is None:
                    continue
                span = (job.started_at, job.finished_at)
                if job.file_path.endswith(".sql"):
                    sql_jobs.append(span)
                elif job.table_name == "orders":
                    copy_jobs.append(span)
                    files += 1
    if copy_jobs:
        out["copy_jobs_wall"] = _seconds(min(s for s, _ in copy_jobs), max(e for _, e in copy_jobs))
        out["copy_files"] = files
    if sql_jobs:
        out["merge_sql"] = sum(_seconds(s, e) or 0.0 for s, e in sql_jobs)
    return out


def worker_loader(csv_path: Path, rows: int) -> dict[str, Any]:
    import json

    import loaders
    from loaders.common.quarantine import LoadStats
    from loaders.common.warehouse import Warehouse
    from loaders.registry import RunOptions, run_sync

    # The same path `elt run --source sales_csv --target postgres` takes, with the file source from
    # the environment as an operator would configure it.
    os.environ["SOURCES__SALES_CSV__FILE_SOURCES"] = json.dumps(
        [{"name": "bench", "path": str(csv_path.parent), "pattern": "*.csv"}]
    )
    os.environ.setdefault("DLT_PROJECT_DIR", str(ROOT))
    os.environ.setdefault("SOURCES__SALES_CSV__SETTLE_SECONDS", "0")  # the file was just written
    committed: dict[str, float] = {}
    try:
        from loaders.sales.helpers import OrdersCopy
    except ImportError:  # a commit before the direct COPY, run with PYTHONPATH
        pass
    else:
        commit = OrdersCopy.commit

        def timed_commit(self: OrdersCopy) -> None:  # the COPY's tail and the replace, after the reading
            commit(self)
            committed.update(self.seconds)

        OrdersCopy.commit = timed_commit  # type: ignore[method-assign]
    start = time.perf_counter()
    stats = LoadStats()
    info = run_sync("sales_csv", Warehouse.from_env("postgres"), RunOptions(), stats)
    seconds = time.perf_counter() - start
    assert stats.loaded == rows, f"loader loaded {stats.loaded} of {rows} rows"
    assert stats.rejected == 0, f"loader rejected {stats.rejected} rows of a valid file"
    return {
        "seconds": seconds,
        "breakdown": _loader_breakdown(info) | committed,
        "loaders_module": str(Path(loaders.__file__).resolve().parent),
    }


INCREMENT = 100_000  # lines of the ``increment`` method's second file: half replace loaded lines, half new


def worker_increment(csv_path: Path, rows: int) -> dict[str, Any]:
    """The full file loaded first (not timed), then a second file of ``INCREMENT`` lines: the first
    half of them lines already loaded, with new figures, the second half new orders (timed)."""
    import itertools
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="bench-increment-"))
    (folder / "a.csv").symlink_to(csv_path)
    worker_loader(folder / "a.csv", rows)
    half = INCREMENT // 2
    with csv_path.open(encoding="utf-8") as fh:
        header = next(fh)
        lines = list(itertools.islice(fh, INCREMENT))
    out = [header]
    for line in lines[:half]:  # the same line, now one unit at its price
        order_id, day, user, product, _, price, _, region = line.rstrip("\n").split(",")
        out.append(f"{order_id},{day},{user},{product},1,{price},{price},{region}\n")
    out += [line.replace("ORD-", "NEW-", 1) for line in lines[half:]]
    (folder / "b.csv").write_text("".join(out), encoding="utf-8")
    result = worker_loader(folder / "b.csv", INCREMENT)
    return result | {"table_rows": rows + INCREMENT - half}


def worker_copy(csv_path: Path, rows: int) -> dict[str, Any]:
    from loaders.common.warehouse import Warehouse

    columns = ", ".join(f"{name} {sql_type}" for name, sql_type in COPY_COLUMNS)
    names = ", ".join(name for name, _ in COPY_COLUMNS)
    start = time.perf_counter()
    with Warehouse.from_env("postgres").connect() as conn, csv_path.open("rb") as fh:
        cur = conn.cursor()
        cur.execute("create schema if not exists raw_sales")
        cur.execute(f"create table raw_sales.orders ({columns})")
        cur.copy_expert(
            f"copy raw_sales.orders ({names}) from stdin with (format csv, header true)",
            fh,
            size=1 << 20,
        )
    seconds = time.perf_counter() - start
    return {"seconds": seconds}


def worker_dlt_default(csv_path: Path, rows: int) -> dict[str, Any]:
    import csv

    import dlt

    from loaders.common.warehouse import Warehouse

    os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")

    @dlt.resource(name="orders", write_disposition="append")
    def orders() -> Any:
        with csv_path.open(encoding="utf-8", newline="") as fh:
            yield from csv.DictReader(fh)

    with tempfile.TemporaryDirectory(prefix="bench-dlt-default-") as workdir:
        start = time.perf_counter()
        pipeline = dlt.pipeline(
            pipeline_name="sales_csv_dlt_default",
            destination=Warehouse.from_env("postgres").dlt_destination(),
            dataset_name="raw_sales",
            pipelines_dir=workdir,
        )
        info = pipeline.run(orders(), loader_file_format="insert_values")
        info.raise_on_failed_jobs()
        seconds = time.perf_counter() - start
    return {"seconds": seconds}


WORKERS = {
    "loader": worker_loader,
    "copy": worker_copy,
    "dlt_default": worker_dlt_default,
    "increment": worker_increment,
}


def run_worker(method: str, csv_path: Path, rows: int, profile: bool = False) -> None:
    import importlib

    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    start = time.perf_counter()
    for name in WARM_IMPORTS[method]:
        with contextlib.suppress(ImportError):  # an optional module this dlt version lacks
            importlib.import_module(name)
    import_seconds = time.perf_counter() - start
    # Importing dlt forks a short-lived `file` process (platform.architecture()), whose peak RSS is
    # a copy of ours at that moment: only children that outgrow it are the run's own.
    _, children_before = _peak_rss_mib()
    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        result = profiler.runcall(WORKERS[method], csv_path, rows)
        out = ROOT / "bench" / "results" / f"sales_csv_{method}.prof"
        out.parent.mkdir(parents=True, exist_ok=True)
        profiler.dump_stats(out)
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(40)
        print(f"profile written to {out}", file=sys.stderr)
    else:
        result = WORKERS[method](csv_path, rows)
    result["import_seconds"] = import_seconds
    own, children = _peak_rss_mib()
    if children <= children_before:
        children = 0.0
    loaded = _count_rows()  # outside the timed window
    expected = result.pop("table_rows", rows)
    assert loaded == expected, f"{method}: raw_sales.orders holds {loaded} rows, expected {expected}"
    if method == "increment":
        rows = INCREMENT
    result |= {"rows": rows, "rss_mib": own, "children_rss_mib": children}
    print("BENCH_RESULT " + json.dumps(result))


# --------------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------------


def _code_version(results: dict[str, list[dict[str, Any]]]) -> str:
    """The commit measured, and whether the loader code differs from it (or came from elsewhere)."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    text = f"commit {head.stdout.strip() or 'unknown'}"
    changed = subprocess.run(
        [*git, "status", "--porcelain", "--", "loaders", ".dlt"], capture_output=True, text=True
    ).stdout.split("\n")
    changed = [line[3:] for line in changed if line.strip()]
    if changed:
        text += f"; uncommitted changes measured in: {', '.join(changed)}"
    modules = {r.get("loaders_module") for r in results.get("loader", [])} - {None}
    if modules and modules != {str(ROOT / "loaders")}:
        text += f"; **`loaders` imported from {', '.join(sorted(modules))}**"
    return text


def _machine() -> str:
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} CPUs (nproc), {ram:.1f} GiB RAM, {platform.platform()}"


def _measure(
    server: Any, method: str, csv_path: Path, rows: int, database: str, profile: bool = False
) -> dict[str, Any]:
    server.create_database(database)
    env = os.environ | server.env(database)
    argv = [sys.executable, str(Path(__file__).resolve()), "--worker", method]
    argv += ["--csv", str(csv_path), "--rows", str(rows)] + (["--profile"] if profile else [])
    try:
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
        if profile:
            print(done.stderr, file=sys.stderr)
    finally:
        server.admin_execute(f'drop database if exists "{database}" with (force)')
    lines = [line for line in done.stdout.splitlines() if line.startswith("BENCH_RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{method} worker failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(lines[-1].removeprefix("BENCH_RESULT "))


def _report(
    args: argparse.Namespace,
    results: dict[str, list[dict[str, Any]]],
    command: str,
    total_seconds: float,
) -> str:
    rates: dict[str, float] = {}
    summary: dict[str, dict[str, Any]] = {}
    for method, runs in results.items():
        seconds = statistics.median(r["seconds"] for r in runs)
        rows = runs[0]["rows"]
        rates[method] = rows / seconds
        summary[method] = {
            "rows": rows,
            "seconds": seconds,
            "rss": statistics.median(r["rss_mib"] for r in runs),
            "children": max(r["children_rss_mib"] for r in runs),
        }
    copy_rate = rates.get("copy")
    labels = {
        "loader": "project loader (`sales_csv`: Arrow -> binary COPY into the table, overlapped)",
        "copy": "raw `COPY FROM STDIN` (baseline)",
        "dlt_default": "dlt default (dicts, `insert_values`, append)",
        "increment": "project loader, a second file into the loaded table: 100,000 lines, half of them "
        "replacing loaded lines (rows/s of that file)",
    }
    out = [
        "| method | rows | median seconds | rows/s | ratio to COPY | peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for method in (m for m in METHODS if m in summary):
        s = summary[method]
        ratio = f"{rates[method] / copy_rate:.3f}" if copy_rate else "-"
        rss = f"{s['rss']:.0f}"
        if s["children"] > 1:
            rss += f" (+{s['children']:.0f} in child processes)"
        out.append(
            f"| {labels[method]} | {s['rows']:,} | {s['seconds']:.2f} | {rates[method]:,.0f} "
            f"| {ratio} | {rss} |"
        )
    table = "\n".join(out)

    notes = [
        f"Medians of {args.repeats} run(s) per method, each in a fresh subprocess and a fresh database; "
        "seconds are the load itself (connect to commit), rows/s = rows / median seconds.",
        "Peak RSS is `ru_maxrss` of the worker process (the PostgreSQL server is not included).",
        "Imports are not timed: each worker imports what its path needs first (median "
        + ", ".join(
            f"{m} {statistics.median(r['import_seconds'] for r in results[m]):.1f} s"
            for m in METHODS
            if m in results
        )
        + "; this venv has no bytecode and PYTHONDONTWRITEBYTECODE=1, so they compile each time).",
        (
            "The server is `testing.pgserver` with fsync, synchronous_commit and full_page_writes **on** "
            "(`--fsync`), as a production server runs."
            if args.fsync
            else "The server is `testing.pgserver` (fsync, synchronous_commit and full_page_writes "
            "off); `--fsync` measures with them on."
        ),
    ]
    if args.profile:
        notes.append("**Run under cProfile (`--profile`): the timings are inflated.**")
    if "dlt_default" in summary and summary["dlt_default"]["rows"] != args.rows:
        notes.append(
            f"dlt default ran on the first {summary['dlt_default']['rows']:,} rows "
            f"(`--dlt-default-rows`), the others on {args.rows:,}: compare rows/s, not seconds."
        )
    breakdown = ""
    loader_runs = results.get("loader")
    if loader_runs:
        keys = ("extract", "copy_wait", "replace", "normalize", "load", "copy_jobs_wall", "merge_sql")
        names = {
            "extract": "extract (read the CSV, validate in Arrow, binary COPY into `orders` meanwhile)",
            "copy_wait": "  of which: waiting for the server to take the last rows",
            "replace": "  of which: deleting the lines the run replaces (only into a table with rows)",
            "normalize": "normalize (the rejections and dlt state)",
            "load": "load (the rejections and dlt state)",
            "copy_jobs_wall": "  COPY jobs of dlt's load (first job start to last job end)",
            "merge_sql": "  merge SQL of dlt's load",
        }
        rows_ = ["| loader step | median seconds | share of loader time |", "|---|---:|---:|"]
        total = summary["loader"]["seconds"]
        for key in keys:
            values = [r["breakdown"].get(key) for r in loader_runs]
            values = [v for v in values if v is not None]
            if values:
                median = statistics.median(values)
                rows_.append(f"| {names[key]} | {median:.2f} | {median / total:.0%} |")
        other = statistics.median(
            max(
                0.0,
                r["seconds"] - sum(r["breakdown"].get(k) or 0.0 for k in ("extract", "normalize", "load")),
            )
            for r in loader_runs
        )
        rows_.append(f"| other (pipeline setup, state/schema sync) | {other:.2f} | {other / total:.0%} |")
        files = loader_runs[0]["breakdown"].get("copy_files")
        breakdown = "\n".join(rows_)
        if files:
            breakdown += f"\n\nThe loader wrote {files} csv load file(s) for `orders`."

    dlt_env = {k: v for k, v in sorted(os.environ.items()) if k.startswith(DLT_ENV_PREFIXES)}
    env_line = (
        ", ".join(f"`{k}={v}`" for k, v in dlt_env.items())
        if dlt_env
        else "none (`.dlt/config.toml` as committed)"
    )
    return "\n".join(
        [
            "# Sales CSV load into PostgreSQL",
            "",
            f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
            f"- machine: {_machine()}",
            f"- command: `{command}`",
            f"- code: {_code_version(results)}",
            f"- dlt settings from the environment: {env_line}",
            f"- whole benchmark: {total_seconds:.0f} s",
            "",
            table,
            "",
            *[f"- {note}" for note in notes],
            "",
            *(["## Where the project loader's time goes", "", breakdown, ""] if breakdown else []),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dlt-default-rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=20260101)
    parser.add_argument(
        "--fsync", action="store_true", help="a server that flushes its WAL (fsync, synchronous_commit on)"
    )
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {METHODS}")
    parser.add_argument(
        "--output",
        type=Path,
        help="default bench/results/sales_csv_load.md (sales_csv_load.profile.md with --profile)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run the workers under cProfile (slower; the timings are then not comparable): "
        "the top functions go to stderr, the stats to bench/results/sales_csv_<method>.prof",
    )
    parser.add_argument("--worker", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--csv", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        run_worker(args.worker, args.csv, args.rows, args.profile)
        return 0

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = set(methods) - set(METHODS)
    if unknown or not methods:
        parser.error(f"--methods: use some of {', '.join(METHODS)}")
    if args.rows < 1 or args.repeats < 1 or args.dlt_default_rows < 1:
        parser.error("--rows, --repeats and --dlt-default-rows must be positive")

    from testing import pgserver

    command = shlex.join([Path(sys.executable).name, *sys.argv])
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-sales-csv-") as tmp:
        full = Path(tmp) / "full" / "sales.csv"
        small_rows = min(args.dlt_default_rows, args.rows)
        small = Path(tmp) / "small" / "sales.csv"
        print(f"writing {args.rows:,} rows to {full} ...", flush=True)
        write_sales_csv(full, args.rows, args.seed)
        if "dlt_default" in methods:
            write_sales_csv(small, small_rows, args.seed)
        print(f"  {full.stat().st_size / 2**20:.0f} MiB; starting PostgreSQL ...", flush=True)
        durable = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
        server = pgserver.start(durable if args.fsync else None)
        results: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
        try:
            for rep in range(args.repeats):
                order = methods[rep % len(methods) :] + methods[: rep % len(methods)]
                for method in order:  # rotated each repetition, so no method always goes first
                    path, rows = (small, small_rows) if method == "dlt_default" else (full, args.rows)
                    result = _measure(server, method, path, rows, f"bench_{method}_{rep}", args.profile)
                    results[method].append(result)
                    extra = ""
                    if "breakdown" in result:
                        extra = "  " + ", ".join(
                            f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}"
                            for k, v in result["breakdown"].items()
                        )
                    print(
                        f"  run {rep + 1}/{args.repeats} {method:<11} {result['rows']:>10,} rows "
                        f"{result['seconds']:7.2f} s  {result['rows'] / result['seconds']:>10,.0f} rows/s  "
                        f"rss {result['rss_mib']:.0f} MiB{extra}",
                        flush=True,
                    )
        finally:
            server.stop()
    report = _report(args, results, command, time.perf_counter() - began)
    if args.output is None:
        name = "sales_csv_load.profile.md" if args.profile else "sales_csv_load.md"
        args.output = ROOT / "bench" / "results" / name
    print()
    print(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
