"""Hostile rows in the registration database, on both targets: every row read is loaded or quarantined
(counted from the tables), with a reason that names the problem, and the good rows beside it load."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from loaders.common.quarantine import LoadStats
from loaders.common.warehouse import Warehouse
from loaders.registry import RunOptions, run_sync

LEVEL = {
    "name": "counties",
    "table": "counties",
    "code_column": "code",
    "code_width": 3,
    "name_column": "name",
    "figures": ["registered_voters_2022"],
    "updated_at_column": "updated_at",
}
GOOD = [(1, "MOMBASA", 641913), (2, "KWALE", 328253)]
WHEN = "2026-02-01 00:00:00"


@dataclass(frozen=True)
class Case:
    rows: list[tuple[Any, Any, Any]]  # code, name, registered voters
    loaded: dict[str, Any]  # code -> registered voters, as loaded
    rejected: int
    says: str = ""


CASES = {
    "a code stored as a float": Case([(3.0, "LAMU", 104653)], {"003": 104653}, 0),
    "a code with spaces and zeros": Case([(" 004 ", "TAITA TAVETA", 187600)], {"004": 187600}, 0),
    "a missing code": Case([(None, "NOWHERE", 1)], {}, 1, "code is missing"),
    "a code too long": Case([(12345, "TOO LONG", 1)], {}, 1, "longer than 3 digits"),
    "a code with letters": Case([("A1", "LETTERS", 1)], {}, 1, "is not made of digits"),
    "a fractional code": Case([(3.5, "HALF", 1)], {}, 1, "is not a whole number"),
    "one code written two ways": Case(
        [(5, "GARISSA", 1), ("005", "GARISSA AGAIN", 2)], {"005": 1}, 1, "more than once"
    ),
    "a code of the good rows repeated": Case(
        [("001", "MOMBASA AGAIN", 3)], {}, 1, "code 001 appears more than once"
    ),
    "a negative figure": Case([(6, "WAJIR", -3)], {}, 1, "is not a whole number at least 0"),
    "a figure in words": Case([(6, "WAJIR", "n/a")], {}, 1, "'n/a' is not a number"),
    "a fractional figure": Case([(6, "WAJIR", 10.5)], {}, 1, "is not a whole number"),
    "an infinite figure": Case([(6, "WAJIR", "Infinity")], {}, 1, "is not a whole number"),
    "a figure too large for the warehouse": Case([(6, "WAJIR", "1e30")], {}, 1, "too large to be a count"),
    "a missing figure": Case([(7, "MANDERA", None)], {"007": None}, 0),
    "a name that looks like SQL": Case(
        [(8, "'); drop table raw_registration.counties; --", 9)], {"008": 9}, 0
    ),
    "a very long name": Case([(9, "N" * 100_000, 9)], {"009": 9}, 0),
    "a name in another script": Case([(10, "ኬንያ 🇰🇪", 9)], {"010": 9}, 0),
}


def _database(path: Path, rows: list[tuple[Any, Any, Any]]) -> str:
    url = f"sqlite:///{path}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        # no declared types: SQLite keeps each value as given (a float code, words in a figure)
        conn.execute(sa.text("create table counties (code, name, registered_voters_2022, updated_at)"))
        conn.execute(
            sa.text("insert into counties values (:code, :name, :voters, :at)"),
            [{"code": c, "name": n, "voters": v, "at": WHEN} for c, n, v in [*GOOD, *rows]],
        )
    engine.dispose()
    return url


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_hostile_row_is_loaded_or_quarantined_and_the_good_ones_load(
    warehouse: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    case = CASES[name]
    monkeypatch.setenv("SOURCES__REGISTRATION__CREDENTIALS", _database(tmp_path / "source.sqlite", case.rows))
    monkeypatch.setenv("SOURCES__REGISTRATION__LEVELS", json.dumps([LEVEL]))
    stats = LoadStats()

    run_sync("registration", warehouse, RunOptions(), stats)

    loaded = dict(warehouse.query("select code, registered_voters_2022 from raw_registration.counties"))
    assert loaded == {"001": 641913, "002": 328253} | case.loaded
    try:
        reasons = [
            reason for (reason,) in warehouse.query("select reason from raw_registration.rejected_rows")
        ]
    except Exception:  # nothing rejected, no table
        reasons = []
    assert len(reasons) == case.rejected, reasons
    if case.says:
        assert any(case.says in reason for reason in reasons), reasons
    assert stats.read == len(GOOD) + len(case.rows) == stats.loaded + stats.rejected
