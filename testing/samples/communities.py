"""Sample community records for the demo, the tests and the benchmark.

One record per barangay of the chosen regions (Region X, Northern Mindanao, and Region XII,
SOCCSKSARGEN, by default; every barangay for the benchmark), figures derived from the PSGC's 2020
population with a fixed seed; every 400th record soft-deleted; and a few records that must be quarantined
(an unknown barangay code, a municipality's code, a figure that is not a number).
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from loaders.communities.settings import PSGC_CSV

DEMO_REGIONS = ("10", "12")
WRITTEN_AT = datetime(2026, 2, 1, 8, 0, tzinfo=UTC)
HEADER = ["record_id", "barangay_code", "estimated_population", "households", "is_deleted", "updated_at"]
BAD_RECORDS = [
    ["CR-BAD-1", "1099999999", "1200", "300", "false", "2026-02-01T08:00:00Z"],  # no such barangay
    ["CR-BAD-2", "1030900000", "5000", "1100", "false", "2026-02-01T08:00:00Z"],  # City of Iligan itself
    ["CR-BAD-3", "1204701001", "n/a", "80", "false", "2026-02-01T08:00:00Z"],  # not a number
]


@dataclass(frozen=True)
class Generated:
    root: Path
    records: int
    deleted: int
    bad: int


def barangays(regions: tuple[str, ...] | None) -> list[dict[str, str]]:
    with PSGC_CSV.open(newline="", encoding="utf-8") as file:
        return [
            row
            for row in csv.DictReader(file)
            if row["geographic_level"] == "Bgy" and (regions is None or row["psgc_code_10"][:2] in regions)
        ]


def generate(root: Path, regions: tuple[str, ...] | None = DEMO_REGIONS, seed: int = 20260201) -> Generated:
    """Write ``records_<region>.csv`` files under ``root`` (replacing earlier ones) and return counts."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for old in root.glob("*.csv"):
        old.unlink()
    by_region: dict[str, list[list[str]]] = {}
    deleted = 0
    for index, barangay in enumerate(barangays(regions)):
        reported = barangay["population_2020"].replace(",", "")
        population = int(reported) if reported.isdigit() else rng.randint(300, 4000)
        estimate = round(population * rng.uniform(1.02, 1.08))
        is_deleted = index % 400 == 399
        deleted += is_deleted
        moment = WRITTEN_AT + timedelta(seconds=index)
        by_region.setdefault(barangay["psgc_code_10"][:2], []).append(
            [
                f"CR-{barangay['psgc_code_10']}",
                barangay["psgc_code_10"],
                str(estimate),
                str(max(1, round(estimate / rng.uniform(4.0, 4.8)))),
                "true" if is_deleted else "false",
                moment.isoformat().replace("+00:00", "Z"),
            ]
        )
    records = 0
    for region, rows in sorted(by_region.items()):
        if region == min(by_region):
            rows = rows + BAD_RECORDS
        with (root / f"records_{region}.csv").open("w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(HEADER)
            writer.writerows(rows)
        records += len(rows)
    return Generated(root=root, records=records, deleted=deleted, bad=len(BAD_RECORDS))


def write_update(root: Path, changed: int = 12, regions: tuple[str, ...] | None = DEMO_REGIONS) -> int:
    """A later batch (``records_update.csv``): revised figures for ``changed`` barangays spread over the
    regions, and one record soft-deleted; returns the number of records in it."""
    chosen = barangays(regions)[:: max(1, len(barangays(regions)) // changed)][:changed]
    moment = (WRITTEN_AT + timedelta(days=30)).isoformat().replace("+00:00", "Z")
    rows = []
    for index, barangay in enumerate(chosen):
        code = barangay["psgc_code_10"]
        deleted = index == len(chosen) - 1
        rows.append(
            [f"CR-{code}", code, str(1000 + 37 * index), str(250 + 9 * index), str(deleted).lower(), moment]
        )
    with (root / "records_update.csv").open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return len(rows)
