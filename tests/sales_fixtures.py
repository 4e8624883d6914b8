"""Helpers shared by the sales tests: run a source, write files, count rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loaders.common.pipeline import run_source
from loaders.common.quarantine import LoadStats
from loaders.common.warehouse import Warehouse
from testing.samples.sales import HEADER

GOOD_ROWS = [
    ("O-1", "2026-01-05", "amina.otieno1", "Widget", "2", "4.50", "9.00", "North"),
    ("O-1", "2026-01-05", "amina.otieno1", "Gadget", "1", "12.00", "12.00", "North"),
    ("O-2", "2026-01-06", "brian.santos2", "Widget", "10", "4.50", "45.00", "South"),
]


def write_csv(path: Path, rows: list[tuple[str, ...]], header: tuple[str, ...] = HEADER) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [",".join(header)] + [",".join(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def load(source: Any, name: str, warehouse: Warehouse) -> Any:
    return run_source(source, pipeline_name=name, dataset_name="raw_sales", warehouse=warehouse)


def load_csv_folder(folder: Path, warehouse: Warehouse, **file_source: Any) -> LoadStats:
    from loaders.sales import sales_csv

    stats = LoadStats()
    spec = {"name": "shop", "path": str(folder)} | file_source
    # PostgreSQL COPYs the order lines as they are read, as `elt run` does (loaders/registry.py).
    source = sales_csv(
        file_sources=[spec], stats=stats, copy_to=warehouse if warehouse.target == "postgres" else None
    )
    load(source, "sales_csv", warehouse)
    return stats


def count(warehouse: Warehouse, sql: str) -> int:
    return int(warehouse.query(sql)[0][0])
