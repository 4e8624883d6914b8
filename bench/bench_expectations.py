"""Benchmark: the expectations step (``run_expectations``) on a built DuckDB warehouse, this checkout
against another checkout of the project (a baseline commit), in the same run.

    git worktree add /tmp/baseline <commit>
    .venv/bin/python bench/bench_expectations.py --baseline /tmp/baseline --warehouse data/warehouse.duckdb

Each measurement is a fresh process on a fresh copy of the warehouse file, the two checkouts
alternating; the first round of each is not timed (it parses dbt's manifest). The timed window is the
call of ``run_expectations`` for every checked mart (GX's import included, as a run pays it). Medians go
to stdout and to ``bench/results/expectations.md``.
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
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
WORKER = r"""
import json, time
t = time.perf_counter()
from loaders.common.warehouse import Warehouse
from flows.expectations import run_expectations
result = run_expectations(Warehouse.from_env("duckdb"))
print(json.dumps({"seconds": time.perf_counter() - t, "evaluated": result.evaluated,
                  "suites": len(result.suites_run), "success": result.success}))
"""


def measure(tree: Path, warehouse: Path, work: Path, name: str) -> dict:
    copy = work / f"{name}.duckdb"
    shutil.copy(warehouse, copy)
    env = {
        **os.environ,
        "ELT_TARGET": "duckdb",
        "ELT_DUCKDB_PATH": str(copy),
        "PYTHONPATH": str(tree),
        "ELT_DBT_ARTIFACTS": str(work / f"dbt-{name}"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    done = subprocess.run([sys.executable, "-c", WORKER], cwd=tree, env=env, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        raise SystemExit(f"{name} ({tree}) failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="another checkout of the project")
    parser.add_argument("--warehouse", type=Path, required=True, help="a DuckDB warehouse built by elt")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", type=Path, default=HERE / "bench" / "results" / "expectations.md")
    args = parser.parse_args()
    trees = {"baseline": args.baseline.resolve(), "this checkout": HERE}
    work = Path(tempfile.mkdtemp(prefix="bench-expectations-"))
    seconds: dict[str, list[float]] = {name: [] for name in trees}
    last: dict[str, dict] = {}
    try:
        for repeat in range(args.repeats + 1):
            for name, tree in trees.items():
                last[name] = measure(tree, args.warehouse, work, name.replace(" ", "_"))
                if repeat:
                    seconds[name].append(last[name]["seconds"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = statistics.median(seconds["baseline"])
    rows = [
        f"| {name} | {last[name]['suites']} | {last[name]['evaluated']} | {statistics.median(values):.2f} "
        f"| {statistics.median(values) / base:.3f} |"
        for name, values in seconds.items()
    ]
    table = "\n".join(
        [
            f"Expectations step, {datetime.now(UTC):%Y-%m-%d}, medians of {args.repeats} "
            f"(`{' '.join(sys.argv)}`)",
            "",
            "| checkout | suites | expectations | seconds | ratio to baseline |",
            "|---|---:|---:|---:|---:|",
            *rows,
        ]
    )
    print(table)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(table + "\n")


if __name__ == "__main__":
    main()
