"""The reference seeds land exactly as their CSV files say, on both targets. On PostgreSQL they are
loaded by the project's `postgres__load_csv_rows` override (macros/load_csv_rows.sql: one placeholder
row rendered once instead of once per cell, 25 s less for the PSGC seed), which replaces dbt's own
macro of dbt 1.11: this test is what tells, on a dbt upgrade, that it still loads the same rows."""

from __future__ import annotations

import csv

import pytest

from flows.dbt_runner import invoke
from loaders.common.warehouse import ROOT, Warehouse

SEEDS = {
    "psgc_2025q2": ROOT / "seeds" / "communities" / "psgc_2025q2.csv",
    "kenya_iebc_2022_wards": ROOT / "seeds" / "registration" / "kenya_iebc_2022_wards.csv",
}


@pytest.mark.parametrize("seed", sorted(SEEDS))
def test_a_seed_holds_its_csv_row_for_row(warehouse: Warehouse, seed: str) -> None:
    result = invoke(warehouse, "seed", [seed])
    assert result.success, result.error

    with SEEDS[seed].open(newline="", encoding="utf-8") as file:
        reader = csv.reader(file)
        header = next(reader)
        expected = sorted(tuple(value if value != "" else None for value in row) for row in reader)
    columns = ", ".join(f'cast("{name}" as varchar)' for name in header)
    stored = sorted(
        tuple(value for value in row) for row in warehouse.query(f"select {columns} from seeds.{seed}")
    )
    assert len(stored) == len(expected)
    assert stored == expected
