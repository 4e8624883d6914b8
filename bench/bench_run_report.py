"""Benchmark: what the end-of-run extras cost (the status dashboard after every run; the dbt docs and
the Data Docs after a run that builds), this checkout against a baseline checkout without them, in the
same run.

    git worktree add /tmp/baseline d5ad8e1   # the commit before the dashboard
    .venv/bin/python bench/bench_run_report.py --baseline /tmp/baseline --warehouse data/warehouse.duckdb

Per round, the two checkouts alternating, each in a fresh process on its own copy of the warehouse file
(a ``make demo`` warehouse), timed from start to exit:

* ``elt run --source sales_csv`` with nothing new: no dbt, no checks; the dashboard is the difference;
* ``elt run --source sales_csv --full-refresh``: the files read again, the sales models rebuilt and
  checked; the dbt docs, the Data Docs and the dashboard are the difference;
* this checkout only: ``elt report`` (the page alone, process start included).

The first round is not timed (each checkout parses the dbt project once). Medians go to stdout and to
``bench/results/run_report.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
SCENARIOS = {
    "no-change run": ["run", "--source", "sales_csv"],
    "run that builds": ["run", "--source", "sales_csv", "--full-refresh"],
}


def sample_files() -> str:
    """The sales CSV sources of ``.dlt/config.toml`` with their folders made absolute (the demo's samples
    under this checkout), so that both checkouts read the same files."""
    sources = tomllib.loads((HERE / ".dlt" / "config.toml").read_text())["sources"]["sales_csv"][
        "file_sources"
    ]
    return json.dumps([source | {"path": str(HERE / source["path"])} for source in sources])


def timed(tree: Path, args: list[str], warehouse: Path, work: Path) -> float:
    env = {
        **os.environ,
        "SOURCES__SALES_CSV__FILE_SOURCES": sample_files(),
        "ELT_TARGET": "duckdb",
        "ELT_DUCKDB_PATH": str(warehouse),
        "PYTHONPATH": str(tree),
        "ELT_DBT_ARTIFACTS": str(work / f"dbt-{tree.name}"),
        "ELT_REPORTS_DIR": str(work / f"reports-{tree.name}"),
        "SOURCES__SALES_CSV__SETTLE_SECONDS": "0",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "PREFECT_HOME": str(work / "prefect"),
    }
    command = [sys.executable, "-c", "from flows.cli import app; app()", *args]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{' '.join(args)} in {tree} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="another checkout of the project")
    parser.add_argument("--warehouse", type=Path, required=True, help="a DuckDB warehouse built by elt demo")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", type=Path, default=HERE / "bench" / "results" / "run_report.md")
    options = parser.parse_args()

    trees = {"this checkout": HERE, "baseline": options.baseline.resolve()}
    times: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-report-") as folder:
        work = Path(folder)
        copies = {name: work / f"{name.replace(' ', '_')}.duckdb" for name in trees}
        for copy in copies.values():
            shutil.copy(options.warehouse, copy)
        for round_ in range(options.repeats + 1):
            for scenario, args in SCENARIOS.items():
                for name, tree in trees.items():
                    seconds = timed(tree, args, copies[name], work)
                    if round_:
                        times.setdefault((scenario, name), []).append(seconds)
            seconds = timed(HERE, ["report"], copies["this checkout"], work)
            if round_:
                times.setdefault(("elt report", "this checkout"), []).append(seconds)
            print(f"round {round_}: " + ", ".join(f"{k[0]}/{k[1]} {v[-1]:.2f}" for k, v in times.items()))

    median = {key: statistics.median(values) for key, values in times.items()}
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True)
    base = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=options.baseline, capture_output=True, text=True
    )
    lines = [
        "# End-of-run extras: the dashboard, the dbt docs and the Data Docs",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, medians of {options.repeats} "
        f"(first round untimed); this checkout {head.stdout.strip()}, baseline {base.stdout.strip()}; "
        f"warehouse: a copy of {options.warehouse.name} per checkout.",
        "",
        "| scenario | baseline s | this checkout s | difference s | ratio |",
        "|---|---|---|---|---|",
    ]
    for scenario in SCENARIOS:
        before, after = median[(scenario, "baseline")], median[(scenario, "this checkout")]
        lines.append(
            f"| {scenario} | {before:.2f} | {after:.2f} | {after - before:+.2f} | {after / before:.2f} |"
        )
    lines.append(f"| `elt report` alone | | {median[('elt report', 'this checkout')]:.2f} | | |")
    text = "\n".join(lines) + "\n"
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
