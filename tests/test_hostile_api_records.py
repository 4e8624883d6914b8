"""Hostile sales API answers, on both targets: every record read is loaded or quarantined (counted from the
tables), a record read twice because the pages moved is one line, and a window whose records changed
while it was paged is read again by the next run, so a record that slipped between pages is not lost."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import pytest

from loaders.common.warehouse import Warehouse
from testing.samples.sales import SalesApiServer
from tests.test_sales_api import API_KEY, run_api

DAY = (date.today() - timedelta(days=3)).isoformat()


def line(key: str, **changes: Any) -> dict[str, Any]:
    return {
        "order_id": key,
        "date": DAY,
        "user_id": "amina.otieno1",
        "product_name": "Widget",
        "quantity": "2",
        "unit_price": "4.50",
        "total_amount": "9.00",
        "region": "North",
    } | changes


@dataclass(frozen=True)
class Case:
    records: list[Any]
    loaded: int
    rejected: int
    says: str = ""
    unchanged: int = 0
    stored: dict[str, Any] = field(default_factory=dict)  # column -> value of the loaded line


CASES = {
    "numbers as JSON numbers": Case([line("H-1", quantity=2, unit_price=4.5, total_amount=9)], 1, 0),
    "a field missing": Case([{k: v for k, v in line("H-1").items() if k != "user_id"}], 0, 1, "user_id"),
    "a null field": Case([line("H-1", region=None)], 0, 1, "missing required field(s): region"),
    "an object where a number goes": Case(
        [line("H-1", quantity={"value": 2})], 0, 1, "quantity is not a whole"
    ),
    "a record that is not an object": Case(
        ["H-1,2026-01-05,..."], 0, 1, "missing required field(s): order_id"
    ),
    "a date in another format": Case([line("H-1", date=f"{DAY}T25:00")], 0, 1, "order_date does not parse"),
    "values that look like SQL": Case(
        [line("H-1", product_name="'); drop table raw_sales.orders; --")],
        1,
        0,
        stored={"product_name": "'); drop table raw_sales.orders; --"},
    ),
    "a very long field": Case([line("H-1", product_name="W" * 100_000)], 1, 0),
    "fields the loader does not know": Case([line("H-1", coupon="X", tags=["a"])], 1, 0),
    "the same line twice with other values": Case(
        [line("H-1"), line("H-1", region="South")], 1, 1, "duplicate order line"
    ),
    "the same record twice (pages moved)": Case([line("H-1"), line("H-1")], 1, 0, unchanged=1),
    "unicode in names": Case(
        [line("H-1", product_name="Kikapu 🧺 ñandú")], 1, 0, stored={"product_name": "Kikapu 🧺 ñandú"}
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_hostile_record_is_loaded_or_quarantined(warehouse: Warehouse, name: str) -> None:
    case = CASES[name]
    good = [line("G-1"), line("G-2", product_name="Gadget", unit_price="12.00", total_amount="24.00")]
    with SalesApiServer([*good, *case.records], api_key=API_KEY) as api:
        stats = run_api(api, warehouse, page_size=2)

    loaded = warehouse.query("select order_id, product_name from raw_sales.orders where order_id = 'H-1'")
    try:
        rejected = [reason for (reason,) in warehouse.query("select reason from raw_sales.rejected_rows")]
    except Exception:  # nothing rejected, no table
        rejected = []
    assert len(loaded) == case.loaded
    assert len(rejected) == case.rejected, rejected
    if case.says:
        assert any(case.says in reason for reason in rejected), rejected
    for column, value in case.stored.items():
        assert warehouse.query(f"select {column} from raw_sales.orders where order_id = 'H-1'") == [(value,)]
    assert warehouse.query("select count(*) from raw_sales.orders where order_id like 'G-%'") == [(2,)]
    assert stats.unchanged == case.unchanged
    assert stats.read == stats.loaded + stats.rejected + stats.unchanged


class ShiftingApi(SalesApiServer):
    """Removes the first record once the first page has been served: every later record moves up a
    place, and the first record of page 2 moves onto page 1, which the client has already read."""

    def page(self, query: dict[str, list[str]]) -> dict[str, Any]:
        answer = super().page(query)
        if query.get("page", ["1"])[0] == "1" and not getattr(self, "shifted", False):
            self.shifted = True
            self.records.pop(0)
        return answer


def test_a_record_that_slips_between_pages_is_loaded_by_the_next_run(warehouse: Warehouse) -> None:
    old = [line(f"S-{i}", date=(date.today() - timedelta(days=20)).isoformat()) for i in range(1, 7)]
    new = [line("N-1", date=DAY)]
    with ShiftingApi([*old, *new], api_key=API_KEY) as api:
        first = run_api(api, warehouse, page_size=3)
        after_first = {key for (key,) in warehouse.query("select order_id from raw_sales.orders")}
        second = run_api(api, warehouse, page_size=3)

    assert "S-4" not in after_first  # moved onto page 1 after it was read: missed by the first run
    assert any("changed while they were read" in note for note in first.notes)
    assert first.cursor is None  # the cursor did not move past the missed record
    keys = {key for (key,) in warehouse.query("select order_id from raw_sales.orders")}
    assert keys == {"S-1", "S-2", "S-3", "S-4", "S-5", "S-6", "N-1"}  # S-1 was deleted at the source
    assert (second.loaded, second.unchanged) == (1, 5) and second.cursor == DAY
