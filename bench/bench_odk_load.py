"""Benchmark: the ODK Central source against the local stand-in, into PostgreSQL; full vs incremental.

    .venv/bin/python bench/bench_odk_load.py [--submissions 100000] [--persons 5] [--edit-share 0.01]
                                             [--repeats 3] [--page-size 1000] [--no-attachments]

1. Starts the stand-in (``testing.fake_central.FakeCentral``) in a server subprocess of its own
   (``--serve``), so the loader's peak RSS and CPU are its own. The server adds ``--submissions`` rental
   surveys (``samples.rental_record``, seeded) with exactly ``--persons`` rows each in the
   ``person_details`` repeat and, unless ``--no-attachments``, a small PNG (``building_image``) each;
   submission times are 30 s apart. It then prints its URL and answers one-line JSON commands on stdin:
   ``stats`` (requests answered, by kind, and its CPU seconds) and ``edit`` (new versions of a share of the
   submissions: new person rows, a changed photo, ``(edit <round>)`` in the building name).
2. Starts a throwaway PostgreSQL (``testing.pgserver``) and, per repetition, a fresh database and a
   fresh attachment folder, then loads three times, each in a new worker subprocess along ``elt run
   --source odk_central``'s path (``stored_etags`` + ``odk_central`` + ``run_source``):

   * ``full``         into the empty database;
   * ``incremental``  after ``--edit-share`` of the submissions were edited on the server;
   * ``no_change``    nothing changed since.

   The timed window is the load (the ETag query, the source and ``run_source``), not the interpreter
   start or the imports. Each worker checks the tables afterwards (outside the window): every submission,
   every person row and attachment present, the edited submissions' new data loaded, the changed photos
   (and only those) downloaded.
3. Prints Markdown tables of medians (ratio = incremental or no-change seconds / full seconds of the same
   repetition) and writes them to ``bench/results/odk_load.md``, with dlt's step times, where the extract
   step waited (HTTP on the main thread, JSON parsing, waiting for attachment downloads: measured by
   wrapping the loader's functions in the worker, the code is unchanged) and the requests by kind.

``--profile`` runs the full-load worker under cProfile (top functions to stderr, the stats to
``bench/results/odk_load_full.prof``); timings are then inflated. dlt settings pass through the
environment as in production (``NORMALIZE__WORKERS=2 .venv/bin/python bench/...``) and are listed in the
results; ``PYTHONPATH=/tmp/copy`` runs a modified copy of ``loaders``.
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
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # after PYTHONPATH, so a prototype copy of ``loaders`` can win

PHASES = ("full", "incremental", "no_change")
EMAIL = "bench@example.org"
PASSWORD = "odk-bench-password-3f9"
FORM_ID = "rental_survey"
DATASET = "raw_odk_central"
PERSONS_TABLE = f"{FORM_ID}__person_details"
SUBMISSION_SPACING = timedelta(seconds=30)
WARM_IMPORTS = (
    "psycopg2",
    "requests",
    "fsspec",
    "fsspec.implementations.local",
    "loaders.common.warehouse",
    "loaders.common.pipeline",
    "loaders.registry",
    "loaders.odk_central",
    "loaders.odk_central.attachments",
    "dlt",
    "dlt.common.libs.pyarrow",
    "pandas",
    "dlt.common.libs.sql_alchemy_compat",
    "dlt.destinations.impl.postgres.postgres",
)
DLT_ENV_PREFIXES = ("NORMALIZE__", "LOAD__", "EXTRACT__", "DATA_WRITER__", "DESTINATION__", "RUNTIME__")


# --------------------------------------------------------------------------------------------------
# The server process (--serve)
# --------------------------------------------------------------------------------------------------


def _request_kind(record: Any) -> str:
    path = record.path
    if path.endswith("/sessions") and record.method == "POST":
        return "login"
    if "/sessions/" in path:
        return "logout"
    if path.endswith(".svc"):
        return "odata service document"
    if path.endswith(".svc/Submissions"):
        return "odata Submissions pages"
    if ".svc/Submissions." in path:
        return "odata repeat pages"
    if path.endswith("/attachments"):
        return "attachment listings"
    if "/attachments/" in path:
        return "attachment downloads (200)" if record.status == 200 else f"attachment ({record.status})"
    return "other"


def serve(args: argparse.Namespace) -> int:
    from testing.fake_central import FakeCentral
    from testing.samples.odk_central import (
        FIRST_SUBMISSION,
        SUBMITTERS,
        instance_id,
        png_bytes,
        rental_form,
        rental_record,
    )

    began = time.perf_counter()
    central = FakeCentral(users={EMAIL: PASSWORD}, forms=[rental_form()], seed=args.seed)
    rng = random.Random(args.seed)
    ids: list[str] = []
    for index in range(args.submissions):
        data, files = rental_record(rng, index, persons=args.persons, image=args.attachments)
        ident = central.add_submission(
            FORM_ID,
            data,
            files,
            submitter=rng.choice(SUBMITTERS),
            device_id=f"collect:{rng.getrandbits(48):012x}",
            submitted_at=FIRST_SUBMISSION + index * SUBMISSION_SPACING,
            instance_id=instance_id(rng),
            user_agent="org.odk.collect.android/v2025.2.3",
        )
        ids.append(ident)
        if (index + 1) % 20_000 == 0:
            print(f"  server: {index + 1:,} submissions", file=sys.stderr, flush=True)
    build_seconds = time.perf_counter() - began
    last_submission = FIRST_SUBMISSION + (args.submissions - 1) * SUBMISSION_SPACING
    central.start()
    kinds: Counter[str] = Counter()

    def reply(payload: dict[str, Any]) -> None:
        sys.stdout.write("SERVER_REPLY " + json.dumps(payload) + "\n")
        sys.stdout.flush()

    def stats() -> dict[str, Any]:
        # Fold the request log into counters (the log would otherwise grow by ~200k records per load).
        records = central.requests[:]
        del central.requests[: len(records)]
        kinds.update(_request_kind(r) for r in records)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "requests": sum(kinds.values()),
            "kinds": dict(kinds),
            "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "rss_mib": usage.ru_maxrss / 1024,
        }

    sys.stdout.write(
        "SERVER_READY "
        + json.dumps({"base_url": central.base_url, "build_seconds": build_seconds, **stats()})
        + "\n"
    )
    sys.stdout.flush()
    try:
        for line in sys.stdin:
            command = json.loads(line)
            if command["cmd"] == "stats":
                reply(stats())
            elif command["cmd"] == "edit":
                edit_round = int(command["round"])
                edit_rng = random.Random(args.seed * 31 + edit_round)
                count = max(1, round(len(ids) * float(command["share"])))
                chosen = sorted(edit_rng.sample(range(len(ids)), count))
                # Later than anything before (submissions and the previous rounds' edits) and not
                # before the server's clock: the loader's cursor is Central's clock when its last
                # read began, so edits stamped in the past would never be read (as on a real server).
                at = max(central.now(), last_submission + timedelta(days=1 + edit_round))
                started = time.perf_counter()
                for k, index in enumerate(chosen):
                    data, files = rental_record(edit_rng, index, persons=args.persons, image=args.attachments)
                    data["building_name"] += f" (edit {edit_round})"
                    if args.attachments:  # same file name, other bytes: a new ETag
                        colour = (
                            edit_rng.randint(0, 80),
                            edit_rng.randint(170, 255),
                            edit_rng.randint(0, 255),
                        )
                        files = {name: png_bytes(24, 16, colour, seed=index + 1) for name in files}
                    central.edit_submission(
                        FORM_ID,
                        ids[index],
                        data,
                        files or None,
                        new_instance_id=instance_id(edit_rng),
                        at=at + timedelta(milliseconds=k),
                    )
                reply({"edited": count, "seconds": time.perf_counter() - started})
            elif command["cmd"] == "quit":
                reply({"bye": True})
                break
            else:
                reply({"error": f"unknown command {command!r}"})
    finally:
        central.stop()
    return 0


class ServerProcess:
    """The driver's handle on the ``--serve`` subprocess (JSON lines over its stdin and stdout)."""

    def __init__(self, args: argparse.Namespace) -> None:
        argv = [sys.executable, str(Path(__file__).resolve()), "--serve"]
        argv += ["--submissions", str(args.submissions), "--persons", str(args.persons)]
        argv += ["--seed", str(args.seed), "--attachments" if args.attachments else "--no-attachments"]
        self.process = subprocess.Popen(
            argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        self.ready = self._read("SERVER_READY ")
        self.base_url: str = self.ready["base_url"]

    def _read(self, prefix: str) -> dict[str, Any]:
        assert self.process.stdout is not None
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"the ODK Central server process exited ({self.process.wait()})")
            if line.startswith(prefix):
                return json.loads(line.removeprefix(prefix))

    def command(self, **command: Any) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self._read("SERVER_REPLY ")

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(Exception):
                self.command(cmd="quit")
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# --------------------------------------------------------------------------------------------------
# The loader worker (--worker, one per load)
# --------------------------------------------------------------------------------------------------


class _Timers:
    """Seconds spent inside some of the loader's functions, by name (wrapped in the worker only)."""

    def __init__(self) -> None:
        self.seconds: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def wrap(self, owner: Any, attribute: str | None, name: str, *, per_thread: bool = False) -> None:
        original = getattr(owner, attribute, None) if owner is not None and attribute else None
        if original is None:
            return  # an older loader on PYTHONPATH (a baseline) that has no such function
        timers = self

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                key = name
                if per_thread:
                    main = threading.current_thread() is threading.main_thread()
                    key = f"{name} (main thread)" if main else f"{name} (attachment threads)"
                with timers._lock:
                    timers.seconds[key] += time.perf_counter() - start
                    timers.calls[key] += 1

        setattr(owner, attribute, timed)


def _step_breakdown(info: Any) -> dict[str, Any]:
    """dlt's step times; within load, the COPY jobs per table and the merge SQL."""
    out: dict[str, Any] = {}
    for step in info.pipeline.last_trace.steps:
        if step.step in ("extract", "normalize", "load") and step.finished_at is not None:
            out[step.step] = (step.finished_at - step.started_at).total_seconds()
    copies: list[tuple[datetime, datetime]] = []
    sql = 0.0
    for metrics in info.metrics.values():
        for step_metrics in metrics:
            for job in step_metrics.get("job_metrics", {}).values():
                if job.finished_at is None:
                    continue
                if job.file_path.endswith(".sql"):
                    sql += (job.finished_at - job.started_at).total_seconds()
                elif not job.table_name.startswith("_dlt"):
                    copies.append((job.started_at, job.finished_at))
    if copies:
        out["copy_jobs_wall"] = (max(e for _, e in copies) - min(s for s, _ in copies)).total_seconds()
        out["copy_files"] = len(copies)
    out["merge_sql"] = sql
    return out


def _table_counts(edit_round: int | None) -> dict[str, int]:
    from loaders.common.warehouse import Warehouse

    queries: dict[str, tuple[str, tuple[Any, ...]]] = {
        "submissions": (f"select count(*) from {DATASET}.submissions", ()),
        "persons": (f"select count(*) from {DATASET}.{PERSONS_TABLE}", ()),
        "attachments": (f"select count(*) from {DATASET}.attachments where storage_key is not null", ()),
    }
    if edit_round is not None:
        queries["edited"] = (
            f"select count(*) from {DATASET}.submissions where data like %s",
            (f"%(edit {edit_round})%",),
        )
    warehouse = Warehouse.from_env("postgres")
    present = {
        name
        for (name,) in warehouse.query(
            "select table_name from information_schema.tables where table_schema = %s", (DATASET,)
        )
    }
    counts = {}
    for name, (sql, params) in queries.items():
        table = sql.split(f"{DATASET}.", 1)[1].split()[0]
        counts[name] = int(warehouse.query(sql, params)[0][0]) if table in present else 0
    return counts


def run_worker(args: argparse.Namespace) -> None:
    import importlib

    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("DLT_PROJECT_DIR", str(ROOT))
    start = time.perf_counter()
    for name in WARM_IMPORTS:
        with contextlib.suppress(ImportError):  # an optional module this dlt version lacks
            importlib.import_module(name)
    import_seconds = time.perf_counter() - start
    # Importing dlt forks a short-lived `file` process whose peak RSS is a copy of ours at that moment.
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    import loaders
    import loaders.odk_central.attachments as attachments_module
    import loaders.odk_central.helpers as helpers
    from loaders.common.pipeline import run_source
    from loaders.common.quarantine import LoadStats
    from loaders.common.warehouse import Warehouse
    from loaders.odk_central import odk_central, stored_etags

    timers = _Timers()
    timers.wrap(helpers.CentralSession, "request", "HTTP request", per_thread=True)
    timers.wrap(helpers.CentralSession, "download", "HTTP download", per_thread=True)
    timers.wrap(helpers, "_json", "JSON parse (json.loads of pages and listings)", per_thread=True)
    # Files download while the pages are read; what is left is waited for at the end (finish), and each
    # add that finds the queue full waits for the oldest submission's files.
    sync_class = getattr(attachments_module, "AttachmentSync", None)
    timers.wrap(sync_class, "finish", "attachment wait after the pages (finish)")
    timers.wrap(sync_class, "add", "attachment wait while paging (add, queue full)")
    if sync_class is None:  # a baseline from before the downloads overlapped the pages
        timers.wrap(attachments_module, "sync_attachments", "attachment wait after the pages (finish)")

    def load() -> Any:
        warehouse = Warehouse.from_env("postgres")
        began = time.perf_counter()
        etags = stored_etags(warehouse)
        timers.seconds["stored_attachment_etags"] += time.perf_counter() - began
        source = odk_central(stats=stats, known_etags=etags)
        return run_source(source, pipeline_name="odk_central", dataset_name=DATASET, warehouse=warehouse)

    stats = LoadStats()
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        info = profiler.runcall(load)
        seconds = time.perf_counter() - start
        out = ROOT / "bench" / "results" / f"odk_load_{args.worker}.prof"
        out.parent.mkdir(parents=True, exist_ok=True)
        profiler.dump_stats(out)
        for sort in ("cumulative", "tottime"):
            pstats.Stats(profiler, stream=sys.stderr).sort_stats(sort).print_stats(45)
        print(f"profile written to {out}", file=sys.stderr)
    else:
        info = load()
        seconds = time.perf_counter() - start
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    own = cpu_after.ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    result = {
        "seconds": seconds,
        "import_seconds": import_seconds,
        "cpu_seconds": (cpu_after.ru_utime + cpu_after.ru_stime)
        - (cpu_before.ru_utime + cpu_before.ru_stime),
        "rss_mib": own,
        "children_rss_mib": children if children > children_before else 0.0,
        "rows": stats.loaded,
        "rejected": stats.rejected,
        "loader_requests": stats.requests,
        "http_errors": stats.http_errors,
        "pages": stats.pages,
        "downloaded": len(stats.files_loaded),
        "breakdown": _step_breakdown(info),
        "timers": dict(timers.seconds),
        "timer_calls": dict(timers.calls),
        "loaders_module": str(Path(loaders.__file__).resolve().parent),
    }
    result["counts"] = _table_counts(args.edit_round)  # outside the timed window
    print("BENCH_RESULT " + json.dumps(result))


# --------------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------------


def _measure(
    pg: Any,
    server: ServerProcess,
    args: argparse.Namespace,
    phase: str,
    database: str,
    storage: Path,
    edit_round: int | None,
) -> dict[str, Any]:
    env = os.environ | pg.env(database)
    env |= {
        "SOURCES__ODK_CENTRAL__BASE_URL": server.base_url,
        "SOURCES__ODK_CENTRAL__PROJECT_ID": "1",
        "SOURCES__ODK_CENTRAL__USERNAME": EMAIL,
        "SOURCES__ODK_CENTRAL__PASSWORD": PASSWORD,
        "SOURCES__ODK_CENTRAL__PAGE_SIZE": str(args.page_size),
        "SOURCES__ODK_CENTRAL__ATTACHMENTS_STORAGE": str(storage),
        "SOURCES__ODK_CENTRAL__FORMS": json.dumps(
            [{"xml_form_id": FORM_ID, "attachments": ["building_image"]}]
        ),
    }
    argv = [sys.executable, str(Path(__file__).resolve()), "--worker", phase]
    if edit_round is not None:
        argv += ["--edit-round", str(edit_round)]
    profile = args.profile and phase == "full"
    if profile:
        argv.append("--profile")
    before = server.command(cmd="stats")
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    after = server.command(cmd="stats")
    if profile:
        print(done.stderr, file=sys.stderr)
    lines = [line for line in done.stdout.splitlines() if line.startswith("BENCH_RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{phase} worker failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    result = json.loads(lines[-1].removeprefix("BENCH_RESULT "))
    result["requests"] = after["requests"] - before["requests"]
    result["request_kinds"] = {
        kind: count - before["kinds"].get(kind, 0)
        for kind, count in after["kinds"].items()
        if count - before["kinds"].get(kind, 0)
    }
    result["server_cpu_seconds"] = after["cpu_seconds"] - before["cpu_seconds"]
    result["server_rss_mib"] = after["rss_mib"]
    return result


def _check(args: argparse.Namespace, phase: str, result: dict[str, Any], edited: int) -> None:
    """The loads are only worth timing when they loaded what they should."""
    n, counts = args.submissions, result["counts"]
    problems = []
    if counts["submissions"] != n:
        problems.append(f"submissions table holds {counts['submissions']}, expected {n}")
    if counts["persons"] != n * args.persons:
        problems.append(f"person rows: {counts['persons']}, expected {n * args.persons}")
    if args.attachments and counts["attachments"] != n:
        problems.append(f"stored attachments: {counts['attachments']}, expected {n}")
    if result["rejected"]:
        problems.append(f"{result['rejected']} rows rejected")
    expected_rows = {
        "full": n * (1 + args.persons),
        "incremental": edited * (1 + args.persons),
        "no_change": 0,
    }
    if result["rows"] != expected_rows[phase]:
        problems.append(f"loaded {result['rows']} rows, expected {expected_rows[phase]}")
    if phase == "incremental" and counts.get("edited") != edited:
        problems.append(f"{counts.get('edited')} submissions carry the new edit, expected {edited}")
    expected_downloads = {"full": n, "incremental": edited, "no_change": 0}[phase] if args.attachments else 0
    if result["downloaded"] != expected_downloads:
        problems.append(f"downloaded {result['downloaded']} attachments, expected {expected_downloads}")
    if problems:
        raise RuntimeError(f"{phase}: " + "; ".join(problems))


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def _code_version(results: dict[str, list[dict[str, Any]]]) -> str:
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    text = f"commit {head.stdout.strip() or 'unknown'}"
    changed = subprocess.run(
        [*git, "status", "--porcelain", "--", "loaders", ".dlt"], capture_output=True, text=True
    ).stdout.split("\n")
    changed = [line[3:] for line in changed if line.strip()]
    if changed:
        text += f"; uncommitted changes measured in: {', '.join(changed)}"
    modules = {r.get("loaders_module") for runs in results.values() for r in runs} - {None}
    if modules and modules != {str(ROOT / "loaders")}:
        text += f"; **`loaders` imported from {', '.join(sorted(modules))}**"
    return text


def _machine() -> str:
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} CPUs (nproc), {ram:.1f} GiB RAM, {platform.platform()}"


def _report(
    args: argparse.Namespace,
    results: dict[str, list[dict[str, Any]]],
    edits: list[dict[str, Any]],
    server_ready: dict[str, Any],
    command: str,
    total_seconds: float,
) -> str:
    full_seconds = [r["seconds"] for r in results["full"]]
    labels = {
        "full": "full load (empty warehouse)",
        "incremental": f"incremental ({args.edit_share:.1%} edited)",
        "no_change": "no change",
    }
    out = [
        "| run | rows loaded | requests | median s | rows/s | ratio to full | loader CPU s "
        "| server CPU s | attachments downloaded | peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for phase in PHASES:
        runs = results[phase]
        seconds = _median([r["seconds"] for r in runs])
        rows = int(_median([r["rows"] for r in runs]))
        ratio = "1"
        if phase != "full":
            value = _median([r["seconds"] / f for r, f in zip(runs, full_seconds, strict=True)])
            ratio = f"**{value:.3f}**" if value >= 0.01 else f"**{value:.2g}**"
        rss = f"{_median([r['rss_mib'] for r in runs]):.0f}"
        children = _median([r["children_rss_mib"] for r in runs])
        if children > 1:
            rss += f" (+{children:.0f} in children)"
        out.append(
            f"| {labels[phase]} | {rows:,} | {int(_median([r['requests'] for r in runs])):,} | {seconds:.2f} "
            f"| {rows / seconds:,.0f} | {ratio} | {_median([r['cpu_seconds'] for r in runs]):.1f} "
            f"| {_median([r['server_cpu_seconds'] for r in runs]):.1f} "
            f"| {int(_median([r['downloaded'] for r in runs])):,} | {rss} |"
        )
    table = "\n".join(out)

    # Where the time goes, per phase: dlt's steps, and inside extract what the wrapped functions took.
    keys = [
        ("extract", "extract (whole step: HTTP, parsing, row building, attachments, dlt's item writer)"),
        (
            "timer:HTTP request (main thread)",
            "  HTTP requests on the main thread (pages; includes server time)",
        ),
        ("timer:JSON parse (json.loads of pages and listings) (main thread)", "  JSON parsing of the pages"),
        (
            "timer:attachment wait while paging (add, queue full)",
            "  attachments: waited while paging (queue full)",
        ),
        ("timer:attachment wait after the pages (finish)", "  attachments: waited after the pages"),
        ("normalize", "normalize (dlt: typed jsonl -> csv load files)"),
        ("load", "load (whole step)"),
        ("copy_jobs_wall", "  COPY into the staging dataset (first start to last end)"),
        ("merge_sql", "  merge SQL (delete-insert), summed"),
        ("timer:stored_attachment_etags", "ETag query before the run (`stored_attachment_etags`)"),
    ]
    breakdown = ["| step | " + " | ".join(labels[p] for p in PHASES) + " |", "|---|" + "---:|" * len(PHASES)]
    for key, name in keys:
        cells = []
        for phase in PHASES:
            values = []
            for r in results[phase]:
                source = r["timers"] if key.startswith("timer:") else r["breakdown"]
                value = source.get(key.removeprefix("timer:"))
                if value is not None:
                    values.append(value)
            cells.append(f"{_median(values):.2f}" if values else "-")
        breakdown.append(f"| {name} | " + " | ".join(cells) + " |")
    other = []
    for phase in PHASES:
        values = [
            r["seconds"]
            - sum(r["breakdown"].get(k) or 0.0 for k in ("extract", "normalize", "load"))
            - r["timers"].get("stored_attachment_etags", 0.0)
            for r in results[phase]
        ]
        other.append(f"{_median(values):.2f}")
    breakdown.append(
        "| other (pipeline setup, state and schema sync with the warehouse) | " + " | ".join(other) + " |"
    )
    breakdown.append(
        "| **total (timed window)** | "
        + " | ".join(f"**{_median([r['seconds'] for r in results[p]]):.2f}**" for p in PHASES)
        + " |"
    )

    kinds = sorted({k for p in PHASES for r in results[p] for k in r["request_kinds"]})
    requests = [
        "| requests | " + " | ".join(labels[p] for p in PHASES) + " |",
        "|---|" + "---:|" * len(PHASES),
    ]
    for kind in kinds:
        cells = [f"{int(_median([r['request_kinds'].get(kind, 0) for r in results[p]])):,}" for p in PHASES]
        requests.append(f"| {kind} | " + " | ".join(cells) + " |")

    edited = int(_median([e["edited"] for e in edits])) if edits else 0
    notes = [
        f"{args.submissions:,} submissions x {args.persons} person rows"
        + (", one small PNG attachment each (~110 bytes)" if args.attachments else ", no attachments")
        + f"; page size {args.page_size}; {edited:,} submissions edited before the incremental run "
        + ("(new person rows, a changed photo)" if args.attachments else "(new person rows)")
        + ", 1 ms apart: the next run's `overlap_seconds` (300) reads them again (and skips them), which is "
        "why the no-change run still reads a few pages.",
        f"Medians of {args.repeats} repetition(s), each with a fresh database and attachment folder; every "
        "load in a fresh worker subprocess. Seconds = the load (ETag query + source + `run_source`), not "
        "the imports (median "
        f"{_median([r['import_seconds'] for p in PHASES for r in results[p]]):.1f} s per process); "
        "rows = submissions + person rows loaded (attachment rows not counted); rows/s = rows / median s; "
        "ratio = the median over repetitions of (run seconds / full-load seconds of the same repetition).",
        "requests = requests the server answered during the load (its own count); loader CPU = user + "
        "system seconds of the worker; server CPU = the same for the stand-in's process during the load "
        "(on this machine all three processes, loader, stand-in and PostgreSQL, share the CPUs).",
        "Peak RSS = `ru_maxrss` of the worker (the stand-in: "
        f"{max(r['server_rss_mib'] for p in PHASES for r in results[p]):.0f} MiB; PostgreSQL not included).",
        f"The stand-in took {server_ready['build_seconds']:.0f} s to build its data (not timed). It is a "
        "Python `ThreadingHTTPServer`: it answers more slowly than Central would for small requests.",
        "PostgreSQL is `testing.pgserver` (fsync, synchronous_commit and full_page_writes off).",
        "HTTP / JSON / attachment times come from wrapping `CentralSession.request`, `helpers._json` and "
        "`AttachmentSync.add` / `finish` in the worker (the loader code is not changed); HTTP includes "
        "the server's time to build the page. Files download on worker threads while the pages are read: "
        "the attachment rows are the time the main thread waited for them.",
    ]
    if args.profile:
        notes.append("**The full load ran under cProfile (`--profile`): its timings are inflated.**")
    dlt_env = {k: v for k, v in sorted(os.environ.items()) if k.startswith(DLT_ENV_PREFIXES)}
    env_line = ", ".join(f"`{k}={v}`" for k, v in dlt_env.items()) or "none (`.dlt/config.toml` as committed)"
    return "\n".join(
        [
            "# ODK Central load into PostgreSQL: full and incremental",
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
            "## Where the time goes (median seconds)",
            "",
            *breakdown,
            "",
            "## Requests by kind (median per load)",
            "",
            *requests,
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--submissions", type=int, default=100_000)
    parser.add_argument("--persons", type=int, default=5, help="person_details rows per submission")
    parser.add_argument(
        "--edit-share", type=float, default=0.01, help="share edited before the incremental run"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument(
        "--attachments",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="a small PNG on every submission (default on)",
    )
    parser.add_argument("--seed", type=int, default=20260115)
    parser.add_argument("--output", type=Path, help="default bench/results/odk_load.md (odk_load.profile.md)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run the full loads under cProfile (inflated timings): top functions to stderr, stats to "
        "bench/results/odk_load_full.prof",
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker", choices=PHASES, help=argparse.SUPPRESS)
    parser.add_argument("--edit-round", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.serve:
        return serve(args)
    if args.worker:
        run_worker(args)
        return 0
    if args.submissions < 1 or args.persons < 1 or args.repeats < 1 or args.page_size < 1:
        parser.error("--submissions, --persons, --repeats and --page-size must be positive")
    if not 0 < args.edit_share <= 1:
        parser.error("--edit-share must be in (0, 1]")

    from testing import pgserver

    command = shlex.join([Path(sys.executable).name, *sys.argv])
    began = time.perf_counter()
    print(f"starting the ODK Central stand-in with {args.submissions:,} submissions ...", flush=True)
    server = ServerProcess(args)
    print(f"  built in {server.ready['build_seconds']:.1f} s at {server.base_url}; starting PostgreSQL ...")
    pg = None
    results: dict[str, list[dict[str, Any]]] = {p: [] for p in PHASES}
    edits: list[dict[str, Any]] = []
    try:
        pg = pgserver.start()
        with tempfile.TemporaryDirectory(prefix="bench-odk-") as tmp:
            for rep in range(args.repeats):
                database = f"bench_odk_{rep}"
                storage = Path(tmp) / f"attachments_{rep}"
                pg.create_database(database)
                try:
                    for phase in PHASES:
                        edit_round = None
                        edited = 0
                        if phase == "incremental":
                            edit = server.command(cmd="edit", share=args.edit_share, round=rep)
                            edits.append(edit)
                            edited = edit["edited"]
                            edit_round = rep
                        result = _measure(pg, server, args, phase, database, storage, edit_round)
                        _check(args, phase, result, edited)
                        results[phase].append(result)
                        b = result["breakdown"]
                        print(
                            f"  run {rep + 1}/{args.repeats} {phase:<11} {result['rows']:>9,} rows "
                            f"{result['seconds']:7.2f} s {result['rows'] / result['seconds']:>9,.0f} rows/s "
                            f"requests {result['requests']:>7,} downloaded {result['downloaded']:>7,} "
                            f"cpu {result['cpu_seconds']:.1f} (server {result['server_cpu_seconds']:.1f}) "
                            f"rss {result['rss_mib']:.0f} MiB | extract {b.get('extract', 0):.2f} "
                            f"normalize {b.get('normalize', 0):.2f} load {b.get('load', 0):.2f}",
                            flush=True,
                        )
                finally:
                    pg.admin_execute(f'drop database if exists "{database}" with (force)')
                    shutil.rmtree(storage, ignore_errors=True)
    finally:
        server.stop()
        if pg is not None:
            pg.stop()
    report = _report(args, results, edits, server.ready, command, time.perf_counter() - began)
    if args.output is None:
        args.output = ROOT / "bench" / "results" / ("odk_load.profile.md" if args.profile else "odk_load.md")
    print()
    print(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
