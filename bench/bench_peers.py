"""Benchmark: the sales CSV into PostgreSQL with this project's loader and with the loaders a team would
pick instead, in one run, against raw ``COPY``.

    .venv/bin/python bench/bench_peers.py [--rows 1000000] [--prefix-rows 200000] [--repeats 3]
                                          [--methods copy,loader,sling,pipelinewise,ingestr,meltano]

1. Writes the seeded CSV of ``bench_sales_csv_load.py`` (``--rows``), its first ``--prefix-rows`` rows
   as a second file, and those rows as Singer messages (SCHEMA with the order-line key, RECORDs).
2. Installs each peer into an environment of its own under ``bench/.peers/<name>`` (uv, from PyPI,
   once; never into the project's), and starts a throwaway PostgreSQL (``testing.pgserver``).
3. Per repetition and method, in a fresh database: runs the method as a process and times it from
   process start to exit (imports and connections included, as an operator's run pays them), with
   its peak RSS (``wait4``), then counts the rows and reads the column types it created.

| method | what runs | rows |
|---|---|---|
| ``copy`` | ``psql``'s ``\\copy ... (format csv, header true)`` into a typed table: the baseline | full |
| ``loader`` | this project's ``sales_csv`` source (``bench_sales_csv_load.py --worker loader``) | full |
| ``sling`` | ``sling run --mode incremental --primary-key order_id,product_name`` on the file | full |
| ``pipelinewise`` | ``target-postgres`` (pipelinewise) reading the Singer messages | prefix |
| ``ingestr`` | ``ingestr ingest --source-uri csv://... --incremental-strategy merge`` | prefix |
| ``meltano`` | the Meltano SDK's ``target-postgres`` (MeltanoLabs), ``load_method: upsert`` | prefix |

Slow methods run on the prefix: compare rows/s. Every method must load every row it was given or the
benchmark fails. The table goes to stdout and ``bench/results/peers.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_sales_csv_load import COPY_COLUMNS, _machine, write_sales_csv  # noqa: E402

PEERS_DIR = ROOT / "bench" / ".peers"
# name -> (requirement, what to report as its version, mode, runs on the prefix)
PEERS = {
    "sling": ("sling-linux-amd64==1.4.11", "sling-linux-amd64", "merge (incremental, primary key)", False),
    "pipelinewise": ("pipelinewise-target-postgres==2.1.2", "pipelinewise-target-postgres", "merge", True),
    "ingestr": ("ingestr>=0.14,<0.15", "ingestr", "merge", True),
    "meltano": ("meltanolabs-target-postgres==0.8.1", "meltanolabs-target-postgres", "merge (upsert)", True),
}
METHODS = ("copy", "loader", *PEERS)
NO_TELEMETRY = {
    "DO_NOT_TRACK": "1",
    "DISABLE_TELEMETRY": "1",
    "INGESTR_DISABLE_TELEMETRY": "1",
    "RUNTIME__DLTHUB_TELEMETRY": "false",
    "SLING_DISABLE_TELEMETRY": "true",
}
KEY = ("order_id", "product_name")
SINGER_TYPES = {
    "order_id": {"type": "string"},
    "date": {"type": "string", "format": "date"},
    "user_id": {"type": "string"},
    "product_name": {"type": "string"},
    "quantity": {"type": "integer"},
    "unit_price": {"type": "number"},
    "total_amount": {"type": "number"},
    "region": {"type": "string"},
}


def peer_env(name: str) -> Path:
    """``bench/.peers/<name>``, created with the peer installed on first use."""
    requirement = PEERS[name][0]
    folder = PEERS_DIR / name
    marker = folder / ".installed"
    if marker.exists() and marker.read_text() == requirement:
        return folder
    uv = [sys.executable, "-m", "uv"] if not _which("uv") else ["uv"]
    print(f"  installing {requirement} into {folder} ...", flush=True)
    subprocess.run([*uv, "venv", "-q", "--clear", "--python", "3.11", str(folder)], check=True)
    subprocess.run(
        [*uv, "pip", "install", "-q", "--python", str(folder / "bin" / "python"), requirement], check=True
    )
    marker.write_text(requirement)
    return folder


def _which(program: str) -> str | None:
    import shutil

    return shutil.which(program)


def peer_version(name: str) -> str:
    python = PEERS_DIR / name / "bin" / "python"
    distribution = PEERS[name][1]
    code = f"import importlib.metadata as m; print(m.version({distribution!r}))"
    return subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


def write_singer(csv_path: Path, out: Path) -> None:
    """The CSV's rows as Singer messages: one SCHEMA with the order-line key, then RECORDs."""
    import csv

    with csv_path.open(newline="") as source, out.open("w") as sink:
        sink.write(
            json.dumps(
                {
                    "type": "SCHEMA",
                    "stream": "orders",
                    "schema": {"type": "object", "properties": SINGER_TYPES},
                    "key_properties": list(KEY),
                }
            )
            + "\n"
        )
        for row in csv.DictReader(source):
            record: dict[str, Any] = dict(row)
            record["quantity"] = int(row["quantity"])
            record["unit_price"] = float(row["unit_price"])
            record["total_amount"] = float(row["total_amount"])
            sink.write(json.dumps({"type": "RECORD", "stream": "orders", "record": record}) + "\n")


def command(
    method: str, server: Any, database: str, files: dict[str, Path], work: Path
) -> tuple[list[str], Any]:
    """(argv, stdin path or None) of one method's run into ``database``."""
    url = f"postgresql://{server.user}:{server.password}@{server.host}:{server.port}/{database}"
    if method == "copy":
        psql = str(server.bindir / "psql")
        columns = ", ".join(f"{name} {sql_type}" for name, sql_type in COPY_COLUMNS)
        script = (
            f"create schema raw_sales; create table raw_sales.orders ({columns});\n"
            f"\\copy raw_sales.orders from '{files['full']}' with (format csv, header true)\n"
        )
        (work / "copy.sql").write_text(script)
        return [psql, "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", str(work / "copy.sql")], None
    if method == "loader":
        argv = [sys.executable, str(ROOT / "bench" / "bench_sales_csv_load.py"), "--worker", "loader"]
        return [*argv, "--csv", str(files["full"]), "--rows", str(files["full_rows"])], None
    folder = PEERS_DIR / method / "bin"
    if method == "sling":
        binary = next((PEERS_DIR / "sling").glob("lib/python*/site-packages/sling_linux_amd64/bin/sling-*"))
        return [
            str(binary),
            "run",
            "--src-stream",
            f"file://{files['full']}",
            "--tgt-conn",
            "BENCH_PG",
            "--tgt-object",
            "raw_sales.orders",
            "--mode",
            "incremental",
            "--primary-key",
            ",".join(KEY),
        ], None
    if method == "ingestr":
        return [
            str(folder / "ingestr"),
            "ingest",
            "--yes",
            "--source-uri",
            f"csv://{files['prefix']}",
            "--source-table",
            "orders",
            "--dest-uri",
            url,
            "--dest-table",
            "raw_sales.orders",
            "--incremental-strategy",
            "merge",
            *[part for name in KEY for part in ("--primary-key", name)],
        ], None
    config = {"host": server.host, "port": server.port, "user": server.user, "password": server.password}
    if method == "pipelinewise":
        config |= {"dbname": database, "default_target_schema": "raw_sales"}
    else:  # meltano
        config |= {"database": database, "default_target_schema": "raw_sales", "load_method": "upsert"}
    (work / f"{method}.json").write_text(json.dumps(config))
    return [str(folder / "target-postgres"), "--config", str(work / f"{method}.json")], files["singer"]


def run_timed(
    argv: list[str], env: dict[str, str], stdin: Path | None, log: Path
) -> tuple[float, float, int]:
    """(wall seconds from start to exit, peak RSS MiB of the process tree's largest, exit code)."""
    with log.open("wb") as out, stdin.open("rb") if stdin else open(os.devnull, "rb") as source:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdin=source, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return seconds, usage.ru_maxrss / 1024, proc.returncode


def inspect(server: Any, database: str) -> tuple[int, str]:
    """(rows, column types) of ``raw_sales.orders`` in ``database``."""
    import psycopg2

    conn = psycopg2.connect(server.url.rsplit("/", 1)[0] + f"/{database}")
    try:
        cur = conn.cursor()
        cur.execute("select count(*) from raw_sales.orders")
        rows = int(cur.fetchone()[0])
        cur.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = 'raw_sales' and table_name = 'orders' order by ordinal_position"
        )
        types = [
            f"{name} {kind}" for name, kind in cur.fetchall() if name in SINGER_TYPES or name == "order_date"
        ]
        return rows, ", ".join(types)
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--prefix-rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "peers.md")
    args = parser.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if set(methods) - set(METHODS) or "copy" not in methods:
        parser.error(f"--methods: some of {', '.join(METHODS)}, with copy (the baseline)")

    from testing import pgserver

    began = time.perf_counter()
    versions = {"copy": "PostgreSQL's psql", "loader": _commit()}
    for name in methods:
        if name in PEERS:
            peer_env(name)
            versions[name] = peer_version(name)
    results: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
        work = Path(tmp)
        files: dict[str, Any] = {"full": work / "full" / "sales.csv", "prefix": work / "prefix" / "sales.csv"}
        prefix_rows = min(args.prefix_rows, args.rows)
        print(
            f"writing {args.rows:,} rows, a {prefix_rows:,}-row prefix and its Singer messages ...",
            flush=True,
        )
        write_sales_csv(files["full"], args.rows)
        write_sales_csv(files["prefix"], prefix_rows)
        files["singer"] = work / "singer.jsonl"
        write_singer(files["prefix"], files["singer"])
        files["full_rows"] = args.rows
        server = pgserver.start()
        try:
            for rep in range(args.repeats):
                order = methods[rep % len(methods) :] + methods[: rep % len(methods)]
                for method in order:
                    database = f"peers_{method}_{rep}"
                    server.create_database(database)
                    env = os.environ | server.env(database) | {"SOURCES__SALES_CSV__SETTLE_SECONDS": "0"}
                    env |= NO_TELEMETRY  # this machine has no internet: a call home only times out
                    env["BENCH_PG"] = f"{server.url.rsplit('/', 1)[0]}/{database}?sslmode=disable"
                    argv_, stdin = command(method, server, database, files, work)
                    log = work / f"{method}_{rep}.log"
                    seconds, rss, code = run_timed(argv_, env, stdin, log)
                    expected = prefix_rows if method in PEERS and PEERS[method][3] else args.rows
                    if code != 0:
                        raise RuntimeError(f"{method} exited {code}:\n{log.read_text()[-3000:]}")
                    rows, types = inspect(server, database)
                    if rows != expected:
                        raise RuntimeError(
                            f"{method} loaded {rows:,} rows of {expected:,}:\n{log.read_text()[-3000:]}"
                        )
                    server.admin_execute(f'drop database "{database}" with (force)')
                    results[method].append({"seconds": seconds, "rss": rss, "rows": rows, "types": types})
                    print(
                        f"  run {rep + 1}/{args.repeats} {method:<13} {rows:>10,} rows {seconds:8.2f} s "
                        f"{rows / seconds:>10,.0f} rows/s  rss {rss:.0f} MiB",
                        flush=True,
                    )
        finally:
            server.stop()
    report = _report(args, methods, versions, results, time.perf_counter() - began)
    print()
    print(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)
    print(f"written to {args.output}")
    return 0


def _commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return f"this project, commit {done.stdout.strip() or 'unknown'}"


def _report(
    args: argparse.Namespace,
    methods: list[str],
    versions: dict[str, str],
    results: dict[str, list[dict[str, Any]]],
    total: float,
) -> str:
    rate = {m: runs[0]["rows"] / statistics.median(r["seconds"] for r in runs) for m, runs in results.items()}
    modes = {"copy": "append (into an empty typed table)", "loader": "merge (delete-insert on the line key)"}
    modes |= {name: spec[2] for name, spec in PEERS.items()}
    fastest_peer = max((m for m in methods if m in PEERS), key=lambda m: rate[m], default=None)
    lines = [
        "| method | version | mode | rows | median s | rows/s | ratio to COPY | peak MiB | column types |",
        "|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for method in methods:
        runs = results[method]
        lines.append(
            f"| {method} | {versions[method]} | {modes[method]} | {runs[0]['rows']:,} "
            f"| {statistics.median(r['seconds'] for r in runs):.2f} | {rate[method]:,.0f} "
            f"| {rate[method] / rate['copy']:.3f} | {statistics.median(r['rss'] for r in runs):.0f} "
            f"| {runs[0]['types']} |"
        )
    notes = [
        f"Medians of {args.repeats} per method, in one run, each in a fresh database; seconds are process "
        "start to exit (interpreter, imports and connections included); peak MiB is the largest process "
        "of the method's tree (`wait4`), the server not included.",
        f"Slow peers ran on the first {min(args.prefix_rows, args.rows):,} rows (the Singer targets read "
        "them as messages prepared beforehand, not timed): compare rows/s.",
        "The server is `testing.pgserver` (fsync, synchronous_commit and full_page_writes off).",
    ]
    if fastest_peer and "loader" in rate:
        notes.append(
            f"The loader's rows/s are {rate['loader'] / rate[fastest_peer]:.2f}x the fastest peer's "
            f"({fastest_peer}); the goal is 2x."
        )
    return "\n".join(
        [
            "# The sales CSV into PostgreSQL: this loader and its peers",
            "",
            f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
            f"- machine: {_machine()}",
            f"- command: `{shlex.join(['python', *sys.argv])}`",
            f"- whole benchmark: {total:.0f} s",
            "",
            *lines,
            "",
            *[f"- {note}" for note in notes],
            "",
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
