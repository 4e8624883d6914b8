"""The CSV export loader, on DuckDB and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loaders.common.quarantine import LoadStats
from loaders.common.warehouse import ConfigurationError, Warehouse
from loaders.sales import sales_csv
from testing.samples.sales import HEADER
from tests.sales_fixtures import GOOD_ROWS, count, load, load_csv_folder, write_csv
from tests.sample_sources import LEGACY_TILL

ORDERS = "select count(*) from raw_sales.orders"
DISTINCT_LINES = "select count(distinct order_id || '|' || product_name) from raw_sales.orders"


def test_same_file_twice_loads_once(warehouse: Warehouse, tmp_path: Path) -> None:
    write_csv(tmp_path / "in" / "orders.csv", GOOD_ROWS)

    first = load_csv_folder(tmp_path / "in", warehouse)
    second = load_csv_folder(tmp_path / "in", warehouse)

    assert (first.read, first.loaded, first.rejected) == (3, 3, 0)
    assert second.read == 0 and second.files_skipped == ["shop/orders.csv"]
    assert count(warehouse, ORDERS) == 3


def test_changed_file_reloads_without_duplicates(warehouse: Warehouse, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "in" / "orders.csv", GOOD_ROWS)
    load_csv_folder(tmp_path / "in", warehouse)

    changed = [
        *GOOD_ROWS[:2],
        ("O-2", "2026-01-06", "brian.santos2", "Widget", "3", "4.50", "13.50", "South"),
    ]
    changed.append(("O-3", "2026-01-07", "chloe.reyes3", "Gizmo", "1", "7.25", "7.25", "East"))
    write_csv(path, changed)
    stats = load_csv_folder(tmp_path / "in", warehouse)

    assert stats.loaded == 4
    assert count(warehouse, ORDERS) == 4
    assert count(warehouse, DISTINCT_LINES) == 4
    quantity = warehouse.query(
        "select quantity from raw_sales.orders where order_id = 'O-2' and product_name = 'Widget'"
    )
    assert quantity == [(3,)]


def test_an_overlapping_export_replaces_lines_it_shares(warehouse: Warehouse, tmp_path: Path) -> None:
    write_csv(tmp_path / "in" / "a.csv", GOOD_ROWS)
    load_csv_folder(tmp_path / "in", warehouse)
    overlap = [("O-2", "2026-01-06", "brian.santos2", "Widget", "4", "4.50", "18.00", "South")]
    write_csv(tmp_path / "in" / "b.csv", overlap)

    stats = load_csv_folder(tmp_path / "in", warehouse)

    assert stats.files_loaded == ["shop/b.csv"] and stats.files_skipped == ["shop/a.csv"]
    assert count(warehouse, ORDERS) == 3
    assert warehouse.query("select quantity from raw_sales.orders where order_id = 'O-2'") == [(4,)]


def test_a_run_that_fails_half_way_leaves_the_orders_as_they_were(
    warehouse: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL the order lines stream into COPY as files are read: the lines of b.csv are with
    the server when c.csv fails, and must not become visible (nor replace what a.csv loaded)."""
    import loaders.sales as sales

    folder = tmp_path / "in"
    write_csv(folder / "a.csv", GOOD_ROWS)
    load_csv_folder(folder, warehouse)
    before = warehouse.query("select * from raw_sales.orders order by order_id, line_key")
    write_csv(
        folder / "b.csv",
        [
            ("O-2", "2026-01-06", "brian.santos2", "Widget", "4", "4.50", "18.00", "South"),
            ("O-9", "2026-01-08", "chloe.reyes3", "Gizmo", "1", "7.25", "7.25", "East"),
        ],
    )
    write_csv(folder / "c.csv", [("O-10", "2026-01-09", "u", "Gizmo", "1", "7.25", "7.25", "East")])
    checked = sales.validate_orders
    seen_meanwhile: list[object] = []

    def failing_on_c(table: object, **kwargs: object) -> object:
        if str(kwargs["source_file"]).endswith("c.csv"):
            if warehouse.target == "postgres":  # a reader during the load is not kept waiting
                with warehouse.connect() as conn:
                    cur = conn.cursor()
                    cur.execute("set lock_timeout = '5s'")
                    cur.execute("select * from raw_sales.orders order by order_id, line_key")
                    seen_meanwhile.append(cur.fetchall())
            raise RuntimeError("planted failure while reading c.csv")
        return checked(table, **kwargs)

    monkeypatch.setattr(sales, "validate_orders", failing_on_c)
    with pytest.raises(Exception, match="planted failure"):
        load_csv_folder(folder, warehouse)
    assert warehouse.query("select * from raw_sales.orders order by order_id, line_key") == before
    assert seen_meanwhile == ([before] if warehouse.target == "postgres" else [])

    monkeypatch.setattr(sales, "validate_orders", checked)
    stats = load_csv_folder(folder, warehouse)
    assert stats.files_loaded == ["shop/b.csv", "shop/c.csv"]
    assert count(warehouse, ORDERS) == count(warehouse, DISTINCT_LINES) == 5
    assert warehouse.query("select quantity from raw_sales.orders where order_id = 'O-2'") == [(4,)]


def test_seen_keys_agree_with_a_set_and_tell_apart_keys_that_share_a_hash() -> None:
    import random

    import numpy as np

    from loaders.sales.helpers import SeenKeys

    rng = random.Random(7)
    seen, reference = SeenKeys(), set()
    for _ in range(60):  # enough batches for several merges of the sorted levels
        keys = list(dict.fromkeys(f"O-{rng.randrange(4000)}\x1fWidget" for _ in range(150)))
        first, second = SeenKeys.hashes(keys)
        assert seen.contains(first, second).tolist() == [key in reference for key in keys]
        new = [i for i, key in enumerate(keys) if key not in reference]
        seen.add(first[new], second[new])
        reference.update(keys)
    assert len(seen) == len(reference)

    crafted = SeenKeys()  # three keys, two of them with the same first hash
    crafted.add(np.array([5, 5, 9]), np.array([1, 2, 3]))
    found = crafted.contains(np.array([5, 5, 9, 5, 7]), np.array([2, 1, 3, 4, 1]))
    assert found.tolist() == [True, True, True, False, False]


BAD_ROWS = {
    "missing required field(s): user_id": (
        "B-1",
        "2026-01-05",
        "",
        "Widget",
        "1",
        "4.50",
        "4.50",
        "North",
    ),
    "quantity is not a whole number": (
        "B-2",
        "2026-01-05",
        "u",
        "Widget",
        "1.5",
        "4.50",
        "6.75",
        "North",
    ),
    "unit_price is not a number": ("B-3", "2026-01-05", "u", "Widget", "1", "abc", "4.50", "North"),
    "quantity must be positive": ("B-4", "2026-01-05", "u", "Widget", "0", "4.50", "0.00", "North"),
    "unit_price must be positive": (
        "B-5",
        "2026-01-05",
        "u",
        "Widget",
        "1",
        "-4.50",
        "-4.50",
        "North",
    ),
    "total_amount differs from quantity x unit_price by 0.0200": (
        "B-6",
        "2026-01-05",
        "u",
        "Widget",
        "2",
        "4.50",
        "9.02",
        "North",
    ),
    "order_date does not parse": ("B-7", "2026-02-30", "u", "Widget", "1", "4.50", "4.50", "North"),
    "duplicate order line": (
        "O-1",
        "2026-01-05",
        "amina.otieno1",
        "Widget",
        "2",
        "4.50",
        "9.00",
        "North",
    ),
}


def test_each_kind_of_bad_row_is_quarantined_with_its_reason(warehouse: Warehouse, tmp_path: Path) -> None:
    rows = [
        *GOOD_ROWS,
        ("B-8", "2026-01-05", "u", "Widget", "1", "4.50", "4.51", "North"),
    ]  # within a cent
    rows += list(BAD_ROWS.values())
    path = write_csv(tmp_path / "in" / "mixed.csv", rows)
    with path.open("a") as fh:
        fh.write("B-9,2026-01-05,u,Widget,1,4.50,4.50,North,EXTRA\n\n")  # extra field, blank line

    stats = load_csv_folder(tmp_path / "in", warehouse)

    assert stats.read == 4 + len(BAD_ROWS) + 1
    assert stats.loaded == 4
    assert stats.rejected == len(BAD_ROWS) + 1
    assert stats.loaded + stats.rejected == stats.read
    assert count(warehouse, ORDERS) == stats.loaded
    rejected = warehouse.query(
        "select source_locator, source_line, reason, raw_record from raw_sales.rejected_rows"
    )
    assert len(rejected) == stats.rejected
    reasons = {line: reason for _, line, reason, _ in rejected}
    for offset, expected in enumerate(BAD_ROWS, start=len(GOOD_ROWS) + 3):
        assert expected in reasons[offset], (offset, reasons)
    extra = len(GOOD_ROWS) + 3 + len(BAD_ROWS)
    assert reasons[extra] == "wrong number of fields for the header"
    locators = {locator for locator, *_ in rejected}
    assert f"shop/mixed.csv:{extra}" in locators
    raw = {line: raw for _, line, _, raw in rejected}
    assert json.loads(raw[len(GOOD_ROWS) + 3])["order_id"] == "B-1"


def test_a_legacy_export_loads_through_configuration_alone(warehouse: Warehouse, tmp_path: Path) -> None:
    header = "Order No;Order Date;Clerk;Article;Qty;Price;Amount;Branch Region"
    lines = [
        header,
        "L-1;05/01/2026;amina.otieno1;Café Crème;2;2.80;5.60;Nord",
        "L-2;06/01/2026;brian.santos2;Würstchen;1;3.10;3.10;Süd",
    ]
    folder = tmp_path / "legacy"
    folder.mkdir()
    (folder / "till.csv").write_bytes(("\r\n".join(lines) + "\r\n").encode("cp437"))

    stats = load_csv_folder(folder, warehouse, **LEGACY_TILL)

    assert (stats.read, stats.loaded, stats.rejected) == (2, 2, 0)
    rows = warehouse.query(
        "select order_id, cast(order_date as varchar), product_name, region, _source_name "
        "from raw_sales.orders order by order_id"
    )
    assert rows == [
        ("L-1", "2026-01-05", "Café Crème", "Nord", "legacy_till"),
        ("L-2", "2026-01-06", "Würstchen", "Süd", "legacy_till"),
    ]


def test_a_file_without_the_mapped_headers_is_rejected_and_the_others_load(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    legacy = {"order_date": "Order Date"}
    write_csv(tmp_path / "in" / "a_standard.csv", GOOD_ROWS)  # its header says date, not Order Date
    write_csv(
        tmp_path / "in" / "b_legacy.csv",
        [("O-7", "2026-01-07", "amina.otieno1", "Widget", "1", "4.50", "4.50", "North")],
        header=tuple("Order Date" if name == "date" else name for name in HEADER),
    )

    stats = load_csv_folder(tmp_path / "in", warehouse, columns=legacy)

    assert stats.loaded == 1 and stats.rejected == 1 and stats.read == 2
    assert stats.files_loaded == ["shop/b_legacy.csv"]
    assert len(stats.files_rejected) == 1 and stats.files_rejected[0].startswith("shop/a_standard.csv: ")
    (locator, reason), *_ = warehouse.query("select source_locator, reason from raw_sales.rejected_rows")
    assert locator == "shop/a_standard.csv"
    assert "header(s) ['Order Date'] not found" in reason and "column mapping" in reason


def test_a_missing_folder_says_which(tmp_path: Path) -> None:
    from loaders.sales.helpers import FileSource

    with pytest.raises(ConfigurationError, match="does not exist"):
        FileSource.from_config({"name": "x", "path": str(tmp_path / "nope")}).files()


@pytest.mark.parametrize("block_size", [64, 1 << 20])
def test_streaming_blocks_keep_line_numbers(tmp_path: Path, block_size: int) -> None:
    from loaders.sales.helpers import read_csv_batches

    path = tmp_path / "f.csv"
    path.write_text("a,b\n1,2\n3,4,5\n\n6,7\n8,9\n")
    malformed: list[tuple[int, str]] = []

    batches = list(read_csv_batches(path, block_size=block_size, malformed=malformed))

    lines = [line for batch in batches for line in batch.lines.to_pylist()]
    values = [v for batch in batches for v in batch.table.column("a").to_pylist()]
    assert list(zip(values, lines, strict=True)) == [("1", 2), ("6", 5), ("8", 6)]
    assert malformed == [(3, "3,4,5")]


def test_awkward_text_and_numbers_arrive_exactly(warehouse: Warehouse, tmp_path: Path) -> None:
    import csv

    folder = tmp_path / "in"
    folder.mkdir()
    rows = [
        ("Q-1", "2026-01-05", "o'brien", 'Bolt, "Hex" 5mm', "3", "0.3333", "0.9999", "North, Upper"),
        ("Q-2", "2026-12-31", "zoë", "Line\\break", "1", "12345678901234.5", "12345678901234.50", "Süd"),
    ]
    with (folder / "q.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            (
                "order_id",
                "date",
                "user_id",
                "product_name",
                "quantity",
                "unit_price",
                "total_amount",
                "region",
            )
        )
        writer.writerows(rows)

    stats = load_csv_folder(folder, warehouse)

    assert (stats.loaded, stats.rejected) == (2, 0)
    loaded = warehouse.query(
        "select order_id, cast(order_date as varchar), user_id, product_name, quantity, "
        "cast(unit_price as varchar), cast(total_amount as varchar), region, _source_file, "
        "_source_line from raw_sales.orders order by order_id"
    )
    assert [row[:5] for row in loaded] == [
        ("Q-1", "2026-01-05", "o'brien", 'Bolt, "Hex" 5mm', 3),
        ("Q-2", "2026-12-31", "zoë", "Line\\break", 1),
    ]
    from decimal import Decimal

    assert [(Decimal(row[5]), Decimal(row[6])) for row in loaded] == [
        (Decimal("0.3333"), Decimal("0.9999")),
        (Decimal("12345678901234.5"), Decimal("12345678901234.5")),
    ]
    assert [row[7:] for row in loaded] == [("North, Upper", "shop/q.csv", 2), ("Süd", "shop/q.csv", 3)]
    from datetime import UTC, datetime

    ((count_at, latest_at),) = warehouse.query(
        "select count(distinct _loaded_at), max(_loaded_at) from raw_sales.orders"
    )
    assert count_at == 1
    assert abs((datetime.now(UTC) - latest_at).total_seconds()) < 600


def test_every_rejected_line_is_kept_once_with_all_its_reasons(warehouse: Warehouse, tmp_path: Path) -> None:
    """Identical bad lines are two rejections (their lines differ); a rerun of the file stores none
    twice; a line with several problems names them all."""
    cancelled = ("O-9", "2026-01-05", "", "Widget", "1", "0.00", "0.00", "North")
    write_csv(tmp_path / "shop" / "a.csv", [*GOOD_ROWS, cancelled, cancelled, cancelled])

    first = load_csv_folder(tmp_path / "shop", warehouse)
    rows = warehouse.query("select source_line, reason from raw_sales.rejected_rows order by source_line")

    assert first.rejected == 3 == len(rows)
    assert [line for line, _ in rows] == [5, 6, 7]
    assert {reason for _, reason in rows} == {
        "missing required field(s): user_id; unit_price must be positive"
    }
    again = LoadStats()
    load(
        sales_csv(
            file_sources=[{"name": "shop", "path": str(tmp_path / "shop")}],
            stats=again,
            full_refresh=True,
            copy_to=warehouse if warehouse.target == "postgres" else None,
        ),
        "sales_csv",
        warehouse,
    )
    assert again.rejected == 3
    assert count(warehouse, "select count(*) from raw_sales.rejected_rows") == 3
