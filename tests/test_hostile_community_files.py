"""Hostile community record files, on both targets: every record read is loaded or quarantined (counted
from the tables, not from the summary), a file that cannot be read is one file-level rejection with a
clear reason, the good file beside it loads, and a record whose clock is behind the cursor is not lost."""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from pathlib import Path

import pytest

from loaders.common.quarantine import LoadStats
from loaders.common.warehouse import Warehouse
from loaders.registry import RunOptions, run_sync

HEADER = "record_id,barangay_code,estimated_population,households,is_deleted,updated_at"
WHEN = "2026-02-01T08:00:00Z"
LONG = "N" * 200_000


def row(
    key: str, code: str = "1204701002", people: str = "500", at: str = WHEN, deleted: str = "false"
) -> str:
    return f"{key},{code},{people},120,{deleted},{at}"


def text(*lines: str, end: str = "\n") -> bytes:
    return (end.join(lines) + end).encode()


@dataclass(frozen=True)
class Case:
    content: bytes
    loaded: int  # records of the hostile file in raw_communities.records
    rejected: int  # rows of the quarantine it leaves
    says: str = ""  # in the reason (or the file-level reason)
    file_rejected: bool = False


CASES = {
    "utf-8 byte-order mark": Case(codecs.BOM_UTF8 + text(HEADER, row("H-1"), row("H-2")), 2, 0),
    "utf-16 with its byte-order mark": Case(
        "\n".join([HEADER, row("H-1"), row("H-2"), ""]).encode("utf-16"), 2, 0
    ),
    "0-byte file": Case(b"", 0, 1, "the file is empty", file_rejected=True),
    "header only": Case(text(HEADER), 0, 0),
    "blank lines only": Case(text(HEADER, "", ",,,,,", ""), 0, 0),
    "blank first line": Case(text("", HEADER, row("H-1")), 0, 1, "no header", file_rejected=True),
    "duplicated header in an unused column": Case(
        text(HEADER + ",note,note", row("H-1") + ",a,b"),
        0,
        1,
        "duplicated header name(s) ['note']",
        file_rejected=True,
    ),
    "headers in other case and spacing": Case(
        text("Record ID,BARANGAY_CODE,Estimated Population,households,Is-Deleted,Updated At", row("H-1")),
        1,
        0,
    ),
    "a required column missing": Case(
        text(HEADER.removesuffix(",updated_at"), row("H-1").rsplit(",", 1)[0]),
        0,
        1,
        "header(s) ['updated_at'] not found",
        file_rejected=True,
    ),
    "semicolons where commas are expected": Case(
        text(HEADER.replace(",", ";"), row("H-1").replace(",", ";")), 0, 1, "not found", file_rejected=True
    ),
    "ragged rows": Case(
        text(HEADER, row("H-1"), row("H-2") + ",extra", row("H-3").rsplit(",", 1)[0]),
        1,
        2,
        "fields where the header has 6",
    ),
    "a quoted newline inside a field": Case(text(HEADER + ",note", row("H-1") + ',"two\nlines"'), 1, 0),
    "values that look like SQL": Case(text(HEADER, row("'); drop table raw_communities.records; --")), 1, 0),
    "a very long field": Case(text(HEADER + ",note", row("H-1") + f",{LONG}"), 1, 0),
    "undecodable bytes": Case(
        text(HEADER, row("H-1")) + b"H-2,1204701002,5\xff0,120,false," + WHEN.encode() + b"\n",
        0,
        1,
        "reading stopped after line 1",
        file_rejected=True,
    ),
    "an unknown barangay code": Case(
        text(HEADER, row("H-1", code="1099999999")), 0, 1, "unknown barangay code"
    ),
    "a code that is not a code": Case(text(HEADER, row("H-1", code="12-047-01")), 0, 1, "barangay code"),
    "a figure that is not a whole number": Case(text(HEADER, row("H-1", people="1,5")), 0, 1, "fields where"),
    "a negative figure": Case(
        text(HEADER, row("H-1", people="-5")), 0, 1, "estimated_population '-5' is not a whole number"
    ),
    "a flag that is not a flag": Case(
        text(HEADER, row("H-1", deleted="maybe")), 0, 1, "is not true or false"
    ),
    "a time that is not a time": Case(
        text(HEADER, row("H-1", at="yesterday")), 0, 1, "not an ISO 8601 timestamp"
    ),
    "CRLF line ends": Case(text(HEADER, row("H-1"), row("H-2"), end="\r\n"), 2, 0),
    "no newline at the end": Case(text(HEADER, row("H-1"))[:-1], 1, 0),
    "a key repeated with a later time": Case(
        text(HEADER, row("H-1", people="400"), row("H-1", people="450", at="2026-02-02T08:00:00Z")), 1, 0
    ),
    "a key repeated, same time, other values": Case(
        text(HEADER, row("H-1", people="400"), row("H-1", people="450")), 1, 1, "cannot be told"
    ),
    "a key of the good file, a later version": Case(
        text(HEADER, row("G-1", people="900", at="2026-03-01T00:00:00Z")), 1, 0
    ),
}


def _good_file(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "a_good.csv").write_bytes(text(HEADER, row("G-1"), row("G-2", code="1204701001")))


def _rejected(warehouse: Warehouse) -> list[tuple[str, str]]:
    try:
        return warehouse.query("select source_locator, reason from raw_communities.rejected_rows")
    except Exception:  # nothing rejected, no table
        return []


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_hostile_file_is_loaded_or_quarantined_and_the_good_one_loads(
    warehouse: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    case = CASES[name]
    folder = tmp_path / "communities"
    _good_file(folder)
    (folder / "z_hostile.csv").write_bytes(case.content)
    monkeypatch.setenv("SOURCES__COMMUNITIES__FILES_PATH", str(folder))
    stats = LoadStats()

    run_sync("communities", warehouse, RunOptions(), stats)

    from_file = dict(warehouse.query("select source_file, count(*) from raw_communities.records group by 1"))
    rejected = [
        (where, reason) for where, reason in _rejected(warehouse) if where.startswith("z_hostile.csv")
    ]
    assert from_file.get("z_hostile.csv", 0) == case.loaded
    assert len(rejected) == case.rejected, rejected
    if case.says:
        assert any(case.says in reason for _, reason in rejected), rejected
    good_left = 1 if name == "a key of the good file, a later version" else 2
    assert from_file.get("a_good.csv", 0) == good_left  # the good file loads whatever its neighbour is
    assert bool(stats.files_rejected) == case.file_rejected
    if case.file_rejected:
        assert stats.files_rejected[0].startswith("z_hostile.csv: ")
        assert rejected[0][1].startswith("file not read")
    # what was read is loaded, quarantined, or the same version of a record read twice
    assert stats.read == stats.loaded + stats.rejected + stats.unchanged


def test_a_record_behind_the_cursor_is_loaded_when_new_or_newer_and_kept_out_when_older(
    warehouse: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A device whose clock is behind: its new records (and newer versions) are older than the cursor
    but load; a stale copy of a stored record does not overwrite the stored version."""
    folder = tmp_path / "communities"
    folder.mkdir()
    (folder / "a.csv").write_bytes(
        text(HEADER, row("C-1", at="2026-03-01T00:00:00Z"), row("C-2", at="2026-02-10T00:00:00Z"))
    )
    monkeypatch.setenv("SOURCES__COMMUNITIES__FILES_PATH", str(folder))
    run_sync("communities", warehouse, RunOptions(), LoadStats())
    (folder / "b.csv").write_bytes(
        text(
            HEADER,
            row("C-3", people="700", at="2026-01-15T00:00:00Z"),  # new, written by a slow clock
            row("C-2", people="650", at="2026-02-20T00:00:00Z"),  # newer than stored, behind the cursor
            row("C-1", people="1", at="2026-02-01T00:00:00Z"),  # older than the stored version
        )
    )
    second = LoadStats()

    run_sync("communities", warehouse, RunOptions(), second)

    stored = dict(warehouse.query("select record_id, estimated_population from raw_communities.records"))
    assert stored == {"C-1": 500, "C-2": 650, "C-3": 700}
    assert (second.read, second.loaded, second.unchanged, second.rejected) == (3, 2, 1, 0)
