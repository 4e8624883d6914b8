"""Benchmark: what write-audit-publish costs a run (issue 14), on PostgreSQL and DuckDB.

    .venv/bin/python bench/bench_publish.py [--submissions 20000] [--edit-share 0.01] [--repeats 3]

ODK Central (the stand-in, in this process, ``--submissions`` rental surveys with 5 persons and a
photo each) is
loaded in full, built, checked and published. Then, per repetition, ``--edit-share`` of the submissions
are edited on the server and loaded, and the warehouse is copied (PostgreSQL: ``CREATE DATABASE ...
TEMPLATE``; DuckDB: the file), so that the same increment is built twice:

* ``candidate``: as a run builds it now (``flows.pipeline``): the incremental mart
  ``fct_rental_submissions_unified`` cloned into its candidate schema, ``dbt build`` there, the
  expectations on the candidates, the publish;
* ``in place`` (the baseline, as runs built before issue 14): ``dbt build`` of the same selection
  straight into the published schemas, then the expectations on them.

Reported, medians: the step's wall seconds (build + checks + publish), the clone's and the publish's
seconds, the incremental mart's own seconds in dbt (``run_results.json``), and the ratio of the two
paths. Results go to ``bench/results/publish.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

EMAIL, PASSWORD, FORM_ID = "bench@example.org", "odk-bench-password-3f9", "rental_survey"
MART = "fct_rental_submissions_unified"


class Central:
    """The ODK Central stand-in with ``submissions`` rental surveys, and edits of a share of them."""

    def __init__(self, submissions: int, seed: int = 20260115) -> None:
        from testing.fake_central import FakeCentral
        from testing.samples.odk_central import (
            FIRST_SUBMISSION,
            SUBMITTERS,
            instance_id,
            rental_form,
            rental_record,
        )

        self.seed, self.ids, self.rounds = seed, [], 0
        self.central = FakeCentral(users={EMAIL: PASSWORD}, forms=[rental_form()], seed=seed)
        rng = random.Random(seed)
        for index in range(submissions):
            data, files = rental_record(rng, index, persons=5, image=True)
            self.ids.append(
                self.central.add_submission(
                    FORM_ID,
                    data,
                    files,
                    submitter=rng.choice(SUBMITTERS),
                    submitted_at=FIRST_SUBMISSION + index * timedelta(seconds=30),
                    instance_id=instance_id(rng),
                )
            )
        self.last = FIRST_SUBMISSION + submissions * timedelta(seconds=30)
        self.central.start()

    def env(self, storage: Path) -> dict[str, str]:
        return {
            "SOURCES__ODK_CENTRAL__ATTACHMENTS_STORAGE": str(storage),
            "SOURCES__ODK_CENTRAL__BASE_URL": self.central.base_url,
            "SOURCES__ODK_CENTRAL__PROJECT_ID": "1",
            "SOURCES__ODK_CENTRAL__USERNAME": EMAIL,
            "SOURCES__ODK_CENTRAL__PASSWORD": PASSWORD,
            "SOURCES__ODK_CENTRAL__FORMS": json.dumps(
                [{"xml_form_id": FORM_ID, "attachments": ["building_image"]}]
            ),
        }

    def edit(self, share: float) -> int:
        from testing.samples.odk_central import instance_id, rental_record

        self.rounds += 1
        rng = random.Random(self.seed * 31 + self.rounds)
        chosen = sorted(rng.sample(range(len(self.ids)), max(1, round(len(self.ids) * share))))
        at = max(self.central.now(), self.last + timedelta(days=self.rounds))
        for k, index in enumerate(chosen):
            data, _ = rental_record(rng, index, persons=5, image=False)
            data["building_name"] += f" (edit {self.rounds})"
            self.central.edit_submission(
                FORM_ID,
                self.ids[index],
                data,
                None,
                new_instance_id=instance_id(rng),
                at=at + timedelta(milliseconds=k),
            )
        return len(chosen)


def mart_seconds(warehouse: Any, candidate: bool) -> float:
    from flows.dbt_runner import artifacts_path

    results = json.loads((artifacts_path(warehouse, candidate) / "run_results.json").read_text())
    return sum(
        result["execution_time"] for result in results["results"] if result["unique_id"].endswith(f".{MART}")
    )


def candidate_path(warehouse: Any) -> dict[str, float]:
    """The increment as a run builds it now: clone, build, check, publish (the pipeline's steps)."""
    import flows.publish
    from flows import pipeline

    clone = {"seconds": 0.0}
    original = flows.publish.clone_incrementals

    def timed(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            clone["seconds"] += time.perf_counter() - began

    flows.publish.clone_incrementals = timed
    try:
        began = time.perf_counter()
        built, sources = pipeline.dbt_build(warehouse)
        assert built.status == "success", built.error
        checked = pipeline.check_expectations(warehouse, sources, None, built.not_loaded)
        assert checked.status == "success", checked.error
        published = flows.publish.publish(warehouse)
        seconds = time.perf_counter() - began
    finally:
        flows.publish.clone_incrementals = original
    return {
        "seconds": seconds,
        "clone": clone["seconds"],
        "publish": published.seconds,
        "mart": mart_seconds(warehouse, True),
        "relations": len(published.relations),
    }


def in_place_path(warehouse: Any) -> dict[str, float]:
    """The same increment as runs built it before: dbt build into the published schemas, checks there
    (the same selection as the run's, unit tests left out as there)."""
    from flows.build_plan import missing_source_tables, plan
    from flows.dbt_runner import invoke
    from flows.expectations import run_expectations
    from flows.manifest import read_source_tables
    from flows.pipeline import available_dbt_sources

    began = time.perf_counter()
    build = plan(warehouse, available_dbt_sources(warehouse))
    assert build.sources, build.reason  # (an empty selection would build every model)
    read = read_source_tables(warehouse)
    waiting = [table for table in missing_source_tables(warehouse, build.sources) if table in read]
    exclude = [*(f"source:{table}+" for table in waiting), "resource_type:unit_test"]
    result = invoke(warehouse, "build", [f"source:{s}+" for s in build.sources], exclude=exclude)
    assert result.success, result.message()
    checked = run_expectations(warehouse, sources=build.sources, waiting=waiting)
    assert checked.success, checked.message()
    return {"seconds": time.perf_counter() - began, "mart": mart_seconds(warehouse, False)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=20_000)
    parser.add_argument("--edit-share", type=float, default=0.01)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--target", choices=("duckdb", "postgres"), action="append")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "publish.md")
    args = parser.parse_args()
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    work = Path(tempfile.mkdtemp(prefix="bench-publish-"))
    os.environ["ELT_DBT_ARTIFACTS"] = str(work / "dbt")
    os.environ["ELT_REPORTS_DIR"] = str(work / "reports")
    started = time.perf_counter()
    rows: list[list[str]] = []
    try:
        for target in args.target or ["postgres", "duckdb"]:
            rows += measure(target, args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write(args, rows, time.perf_counter() - started)


def measure(target: str, args: argparse.Namespace, work: Path) -> list[list[str]]:
    from flows import pipeline
    from loaders.common.pipeline import RunOptions
    from loaders.common.warehouse import Warehouse
    from testing import pgserver

    central = Central(args.submissions)
    os.environ.update(central.env(work / f"attachments-{target}"))
    server = pgserver.start() if target == "postgres" else None

    def warehouse_named(name: str) -> Warehouse:
        if server is not None:
            os.environ.update(server.env(name))
            return server.warehouse(name)
        os.environ["ELT_DUCKDB_PATH"] = str(work / f"{name}.duckdb")
        return Warehouse(target="duckdb", duckdb_path=work / f"{name}.duckdb")

    def copy(source: str, name: str) -> None:
        if server is not None:
            server.admin_execute(f'drop database if exists "{name}" with (force)')
            server.admin_execute(f'create database "{name}" template "{source}"')
        else:
            (work / f"{name}.duckdb.wal").unlink(missing_ok=True)
            for suffix in (".duckdb", ".duckdb.wal"):  # (what the last commits left in the WAL too)
                if (work / f"{source}{suffix}").exists():
                    shutil.copy(work / f"{source}{suffix}", work / f"{name}{suffix}")

    os.environ["ELT_TARGET"] = target
    try:
        if server is not None:
            server.create_database("published")
        warehouse = warehouse_named("published")
        full_started = time.perf_counter()
        summary = pipeline.run(sources=["odk_central"], target=target)
        assert summary.success, [(s.name, s.error) for s in summary.steps]
        full = time.perf_counter() - full_started
        samples: dict[str, list[float]] = {}
        for repetition in range(args.repeats + 1):  # the first warms both paths' dbt folders up
            edited = central.edit(args.edit_share)
            warehouse = warehouse_named("published")
            loaded = pipeline.load_source("odk_central", warehouse, RunOptions())
            assert loaded.loaded, loaded
            copy("published", "baseline")
            baseline = in_place_path(warehouse_named("baseline"))
            now = candidate_path(warehouse_named("published"))
            for key, value in now.items():
                samples.setdefault(f"candidate {key}", []).append(value)
            for key, value in baseline.items():
                samples.setdefault(f"in place {key}", []).append(value)
            samples.setdefault("ratio", []).append(now["seconds"] / baseline["seconds"])
            samples.setdefault("edited", []).append(edited)
            if repetition == 0:
                samples.clear()
        median = {key: statistics.median(values) for key, values in samples.items()}
        return [
            [
                target,
                f"{args.submissions:,} submissions, {int(median['edited'])} edited",
                f"{median['in place seconds']:.2f}",
                f"{median['candidate seconds']:.2f}",
                f"**{median['ratio']:.2f}**",
                f"{median['candidate clone']:.2f}",
                f"{median['candidate publish']:.2f}",
                f"{median['in place mart']:.2f}",
                f"{median['candidate mart']:.2f}",
                f"{full:.1f}",
            ]
        ]
    finally:
        central.central.stop()
        if server is not None:
            server.stop()


def write(args: argparse.Namespace, rows: list[list[str]], seconds: float) -> None:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True)
    header = [
        "target",
        "increment",
        "in place s (before)",
        "candidate s (now)",
        "ratio",
        "clone s",
        "publish s",
        "mart in dbt, in place s",
        "mart in dbt, candidate s",
        "first full run s",
    ]
    lines = [
        "# Write-audit-publish: an incremental run built in place and through the candidate",
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {os.cpu_count()} CPUs, {platform.platform()}",
        f"- command: `python bench/bench_publish.py --submissions {args.submissions} "
        f"--edit-share {args.edit_share} --repeats {args.repeats}`",
        f"- code: commit {commit.stdout.strip()}"
        + (" (with uncommitted changes)" if dirty.stdout.strip() else ""),
        f"- whole benchmark: {seconds:.0f} s; medians of {args.repeats} repetitions",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if i < 2 else "---:" for i in range(len(header))) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
        "- in place / candidate: `dbt build` of the changed source's models and tests, the expectations, and "
        "(candidate) the clone of the incremental mart before and the publish after; wall seconds in "
        "this process.",
        "- mart in dbt: the seconds dbt spent in `fct_rental_submissions_unified` (incremental in both).",
    ]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
