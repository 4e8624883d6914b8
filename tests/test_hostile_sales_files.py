"""Hostile sales CSV files, on both targets: every record read is loaded or quarantined (counted from the
tables, not from the summary), a file that cannot be read is one file-level rejection with a clear reason,
and the good file beside it loads."""

from __future__ import annotations

import codecs
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from loaders.common.warehouse import Warehouse
from tests.sales_fixtures import GOOD_ROWS, count, load_csv_folder, write_csv

HEADER = "order_id,date,user_id,product_name,quantity,unit_price,total_amount,region"


def row(
    key: str, product: str = "Widget", quantity: str = "2", price: str = "4.50", total: str = "9.00"
) -> str:
    return f"{key},2026-01-05,amina.otieno1,{product},{quantity},{price},{total},North"


def text(*lines: str, end: str = "\n") -> bytes:
    return (end.join(lines) + end).encode()


@dataclass(frozen=True)
class Case:
    content: bytes
    loaded: int  # order lines of the hostile file loaded
    rejected: int  # rows of the quarantine it leaves
    says: str = ""  # in the reason (or the file-level reason)
    encoding: str = "utf-8"
    file_rejected: bool = False


LONG = "W" * 100_000
CASES = {
    "utf-8 byte-order mark": Case(codecs.BOM_UTF8 + text(HEADER, row("H-1"), row("H-2")), 2, 0),
    "utf-8 byte-order mark, configured cp1252": Case(
        codecs.BOM_UTF8 + text(HEADER, row("H-1"), row("H-2")), 2, 0, encoding="cp1252"
    ),
    "utf-16 with its byte-order mark": Case(
        "\n".join([HEADER, row("H-1"), row("H-2"), ""]).encode("utf-16"), 2, 0
    ),
    "0-byte file": Case(b"", 0, 1, "the file is empty", file_rejected=True),
    "header only": Case(text(HEADER), 0, 0),
    "blank first line": Case(text("", HEADER, row("H-1")), 0, 1, "no header", file_rejected=True),
    "duplicated header in an unmapped column": Case(
        text(HEADER + ",note,note", row("H-1") + ",a,b"),
        0,
        1,
        "duplicated header name(s) ['note']",
        file_rejected=True,
    ),
    "semicolons where commas are expected": Case(
        text(HEADER.replace(",", ";"), row("H-1").replace(",", ";")),
        0,
        1,
        "is the delimiter ';'?",
        file_rejected=True,
    ),
    "headers in other case and spacing": Case(
        text("ORDER_ID,Date,User Id,product-name,Quantity,UNIT_PRICE,total amount, Region ", row("H-1")), 1, 0
    ),
    "the configured header and one like it": Case(text(HEADER + ",Order ID", row("H-1") + ",x"), 1, 0),
    "two headers like the configured one": Case(
        text(HEADER.replace("order_id", "ORDER_ID") + ",Order ID", row("H-1") + ",x"),
        0,
        1,
        "matches ['ORDER_ID', 'Order ID']",
        file_rejected=True,
    ),
    "header not in the configured encoding": Case(
        text(HEADER).replace(b"region", b"r\xe9gion"),
        0,
        1,
        "the header is not utf-8 text",
        file_rejected=True,
    ),
    "undecodable bytes after the header": Case(
        text(HEADER, row("H-1")) + row("H-2", product="Wid\xffget").encode("latin-1") + b"\n",
        0,
        1,
        "reading stopped after line 1",
        file_rejected=True,
    ),
    "ragged rows": Case(
        text(HEADER, "H-1,2026-01-05,amina.otieno1,Widget,2,4.50,9.00", row("H-2") + ",extra", row("H-3")),
        1,
        2,
        "wrong number of fields",
    ),
    "a quoted newline inside a field": Case(text(HEADER, row("H-1", product='"Wid\nget"')), 1, 0),
    "values that look like SQL": Case(
        text(HEADER, row("H-1", product='"\'); drop table raw_sales.orders; --"')), 1, 0
    ),
    "a very long field": Case(text(HEADER, row("H-1", product=LONG)), 1, 0),
    "a key repeated within the file": Case(
        text(HEADER, row("H-1"), row("H-1")), 1, 1, "duplicate order line"
    ),
    "a key of the good file repeated": Case(text(HEADER, row("O-1")), 0, 1, "was already read in this run"),
    "blank lines only": Case(text(HEADER, "", "", ""), 0, 0),
    "words and commas for numbers": Case(
        text(HEADER, row("H-1", quantity="two", price='"4,50"')),
        0,
        1,
        "quantity is not a whole number; unit_price is not a number",
    ),
    "CRLF line ends": Case(text(HEADER, row("H-1"), row("H-2"), end="\r\n"), 2, 0),
    "no newline at the end": Case(text(HEADER, row("H-1"))[:-1], 1, 0),
    "a zero price and no customer": Case(
        text(HEADER, "H-1,2026-01-05,,Widget,1,0.00,0.00,North"),
        0,
        1,
        "missing required field(s): user_id; unit_price must be positive",
    ),
}


def _rejected_rows(warehouse: Warehouse) -> list[tuple[str, str]]:
    try:
        return warehouse.query("select source_locator, reason from raw_sales.rejected_rows")
    except Exception:  # no rejection yet, no table
        return []


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_hostile_file_is_loaded_or_quarantined_and_the_good_one_loads(
    warehouse: Warehouse, tmp_path: Path, name: str
) -> None:
    case = CASES[name]
    folder = tmp_path / "shop"
    write_csv(folder / "a_good.csv", GOOD_ROWS)
    (folder / "z_hostile.csv").write_bytes(case.content)

    stats = load_csv_folder(folder, warehouse, encoding=case.encoding)

    orders = count(warehouse, "select count(*) from raw_sales.orders")
    rejected = _rejected_rows(warehouse)
    assert orders == len(GOOD_ROWS) + case.loaded
    assert len(rejected) == case.rejected
    assert stats.read == orders + len(rejected)  # every record read is loaded or quarantined
    assert (stats.loaded, stats.rejected) == (orders, len(rejected))
    assert "shop/a_good.csv" in stats.files_loaded
    assert ("shop/z_hostile.csv" in stats.files_loaded) is not case.file_rejected
    assert any(case.says in reason for _, reason in rejected) if case.says else True
    if case.file_rejected:
        assert len(stats.files_rejected) == 1 and case.says in stats.files_rejected[0]


def test_a_file_still_being_written_is_left_for_the_next_run(
    warehouse: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__SALES_CSV__SETTLE_SECONDS", "60")
    path = write_csv(tmp_path / "shop" / "copying.csv", GOOD_ROWS[:1])

    first = load_csv_folder(tmp_path / "shop", warehouse)

    assert first.files_pending == ["shop/copying.csv"] and first.read == 0
    write_csv(path, GOOD_ROWS)  # the copy completes...
    settled = time.time() - 120
    os.utime(path, (settled, settled))  # ... and settles

    second = load_csv_folder(tmp_path / "shop", warehouse)

    assert second.files_loaded == ["shop/copying.csv"] and second.loaded == len(GOOD_ROWS)


def test_a_file_that_changes_while_it_is_read_is_read_again(
    warehouse: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loader marks a file as loaded with the digest of the bytes it read: one that grew while it
    was read (a copy still running) is not marked, and the next run reads the whole of it."""
    from loaders.sales import helpers

    path = write_csv(tmp_path / "shop" / "growing.csv", GOOD_ROWS[:1])
    batches = helpers.CsvFile.batches

    def appended_while_read(self, **kwargs):
        yield from batches(self, **kwargs)
        with path.open("a") as more:  # the rest of the copy lands after the reader's last block
            more.write(",".join(GOOD_ROWS[2]) + "\n")

    monkeypatch.setattr(helpers.CsvFile, "batches", appended_while_read)
    first = load_csv_folder(tmp_path / "shop", warehouse)
    monkeypatch.undo()
    monkeypatch.setenv("SOURCES__SALES_CSV__SETTLE_SECONDS", "0")

    assert first.files_changed == ["shop/growing.csv"] and first.files_loaded == []
    second = load_csv_folder(tmp_path / "shop", warehouse)
    assert second.files_loaded == ["shop/growing.csv"] and second.read == 2
    assert count(warehouse, "select count(*) from raw_sales.orders") == 2
    third = load_csv_folder(tmp_path / "shop", warehouse)
    assert third.files_skipped == ["shop/growing.csv"]
