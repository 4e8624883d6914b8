"""Declared record shapes of the sales sources, on DuckDB and PostgreSQL: a key of the source's own (an
order may list one product twice), an optional total computed when absent, and lines loaded before keys
were declared merging with what is loaded now."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from loaders.common.warehouse import ConfigurationError, Warehouse
from loaders.sales import add_line_keys
from loaders.sales.helpers import RecordShape
from tests.sales_fixtures import GOOD_ROWS, count, load_csv_folder, write_csv

NUMBERED = (
    "order_id",
    "line",
    "date",
    "user_id",
    "product_name",
    "quantity",
    "unit_price",
    "total_amount",
    "region",
)
TWICE = [
    ("T-1", "1", "2026-01-05", "amina.otieno1", "Widget", "2", "4.50", "9.00", "North"),
    ("T-1", "2", "2026-01-05", "amina.otieno1", "Widget", "1", "4.00", "4.00", "North"),  # a second price
    ("T-1", "3", "2026-01-05", "amina.otieno1", "Gadget", "1", "12.00", "12.00", "North"),
]
BY_LINE = {"key": ["order_id", "line_number"], "columns": {"line_number": "line"}}


def test_an_order_listing_a_product_twice_keeps_both_lines(warehouse: Warehouse, tmp_path: Path) -> None:
    write_csv(tmp_path / "in" / "orders.csv", TWICE, header=NUMBERED)

    stats = load_csv_folder(tmp_path / "in", warehouse, **BY_LINE)

    assert (stats.read, stats.loaded, stats.rejected) == (3, 3, 0)
    rows = warehouse.query("select line_key, product_name, quantity from raw_sales.orders order by line_key")
    assert rows == [("1", "Widget", 2), ("2", "Widget", 1), ("3", "Gadget", 1)]


def test_a_changed_line_replaces_its_line_only(warehouse: Warehouse, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "in" / "orders.csv", TWICE, header=NUMBERED)
    load_csv_folder(tmp_path / "in", warehouse, **BY_LINE)
    changed = [TWICE[0], ("T-1", "2", "2026-01-05", "amina.otieno1", "Widget", "3", "4.00", "12.00", "North")]
    write_csv(path, [*changed, TWICE[2]], header=NUMBERED)

    load_csv_folder(tmp_path / "in", warehouse, **BY_LINE)

    rows = warehouse.query("select line_key, quantity from raw_sales.orders order by line_key")
    assert rows == [("1", 2), ("2", 3), ("3", 1)]


def test_a_line_number_repeated_is_rejected_naming_the_declared_key(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    repeated = [*TWICE, ("T-1", "3", "2026-01-05", "amina.otieno1", "Gizmo", "1", "1.00", "1.00", "North")]
    write_csv(tmp_path / "in" / "orders.csv", repeated, header=NUMBERED)

    stats = load_csv_folder(tmp_path / "in", warehouse, **BY_LINE)

    assert (stats.loaded, stats.rejected) == (3, 1)
    assert count(warehouse, "select count(*) from raw_sales.orders") == 3
    (reason,) = warehouse.query("select reason from raw_sales.rejected_rows")[0]
    assert reason == ("duplicate order line: (order_id, line_number) = (T-1, 3) was already read in this run")


def test_a_file_without_totals_loads_them_computed_when_declared_optional(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    header = ("order_id", "date", "user_id", "product_name", "quantity", "unit_price", "region")
    rows = [
        ("N-1", "2026-01-05", "amina.otieno1", "Widget", "3", "4.3333", "North"),
        ("N-2", "2026-01-05", "amina.otieno1", "Widget", "99999999999", "99999.00", "North"),  # too large
    ]
    write_csv(tmp_path / "in" / "orders.csv", rows, header=header)

    stats = load_csv_folder(tmp_path / "in", warehouse, optional=["total_amount"])

    assert (stats.read, stats.loaded, stats.rejected) == (2, 1, 1)
    assert warehouse.query("select total_amount from raw_sales.orders") == [(Decimal("12.9999"),)]
    (reason,) = warehouse.query("select reason from raw_sales.rejected_rows")[0]
    assert reason == "quantity x unit_price is too large to be a total"


def test_a_blank_total_is_computed_and_a_given_one_still_checked(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    rows = [
        ("B-1", "2026-01-05", "amina.otieno1", "Widget", "2", "4.50", "", "North"),
        ("B-2", "2026-01-05", "amina.otieno1", "Widget", "2", "4.50", "10.00", "North"),
    ]
    write_csv(tmp_path / "in" / "orders.csv", rows)

    stats = load_csv_folder(tmp_path / "in", warehouse, optional=["total_amount"])

    assert (stats.loaded, stats.rejected) == (1, 1)
    assert warehouse.query("select order_id, total_amount from raw_sales.orders") == [
        ("B-1", Decimal("9.0000"))
    ]
    (reason,) = warehouse.query("select reason from raw_sales.rejected_rows")[0]
    assert reason.startswith("total_amount differs from quantity x unit_price by 1.0000")


def test_without_the_declaration_a_file_without_totals_is_refused(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    header = ("order_id", "date", "user_id", "product_name", "quantity", "unit_price", "region")
    write_csv(
        tmp_path / "in" / "orders.csv", [("N-1", "2026-01-05", "a.b", "Widget", "3", "4.00", "North")], header
    )

    stats = load_csv_folder(tmp_path / "in", warehouse)

    assert stats.files_rejected and "header(s) ['total_amount'] not found" in stats.files_rejected[0]
    assert stats.loaded == 0


def test_lines_loaded_before_keys_were_declared_merge_with_new_ones(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    """A warehouse from before ``line_key``: the column is added and filled, and a re-exported line
    replaces its old version instead of landing beside it."""
    path = write_csv(tmp_path / "in" / "orders.csv", GOOD_ROWS)
    load_csv_folder(tmp_path / "in", warehouse)
    warehouse.query("alter table raw_sales.orders drop column line_key")

    add_line_keys(warehouse)
    changed = [
        *GOOD_ROWS[:2],
        ("O-2", "2026-01-06", "brian.santos2", "Widget", "3", "4.50", "13.50", "South"),
    ]
    write_csv(path, changed)
    load_csv_folder(tmp_path / "in", warehouse)

    rows = warehouse.query("select order_id, line_key, quantity from raw_sales.orders order by 1, 2")
    assert rows == [("O-1", "Gadget", 1), ("O-1", "Widget", 2), ("O-2", "Widget", 3)]


@pytest.mark.parametrize(
    ("key", "optional", "says"),
    [
        (["line_number"], None, "must start with order_id"),
        (["order_id", "colour"], None, "unknown columns ['colour']"),
        (None, ["region"], "optional ['region'] is not allowed"),
        (["order_id", "total_amount"], ["total_amount"], "not in the key"),
    ],
)
def test_a_shape_that_cannot_work_is_a_setting_to_fix(
    key: list[str] | None, optional: list[str] | None, says: str
) -> None:
    with pytest.raises(ConfigurationError, match=r"file source 'shop'.*") as caught:
        RecordShape.declared("file source 'shop'", None, key, optional)
    assert says in str(caught.value)
