"""Reading and checking community records: barangay codes against the PSGC, figures, flags, times."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO

from loaders.common.values import figure, normalise_code
from loaders.communities.settings import PSGC_CSV

TRUE = {"true", "t", "1", "yes", "y"}
FALSE = {"false", "f", "0", "no", "n", ""}


@lru_cache(maxsize=2)
def barangay_codes(path: Path = PSGC_CSV) -> frozenset[str]:
    """The 10-digit PSGC codes of every barangay (42,011 in the 2025 Q2 publication)."""
    with path.open(newline="", encoding="utf-8") as file:
        return frozenset(
            row["psgc_code_10"] for row in csv.DictReader(file) if row["geographic_level"] == "Bgy"
        )


def read_records(stream: BinaryIO) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, record) for each row of a CSV file with a header, read from ``stream`` (UTF-8, a
    byte-order mark skipped); the stream is left open."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    try:
        reader = csv.DictReader(text)
        for record in reader:
            if any((value or "").strip() for value in record.values()):
                yield reader.line_num, record
    finally:
        text.detach()


def parse_flag(value: Any, column: str) -> bool:
    if isinstance(value, bool):
        return value
    text = ("" if value is None else str(value)).strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise ValueError(f"{column} {value!r} is not true or false")


def parse_time(value: Any, column: str) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = ("" if value is None else str(value)).strip()
    if not text:
        raise ValueError(f"{column} is missing")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{column} {text[:40]!r} is not an ISO 8601 timestamp") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def checked_record(
    record: dict[str, str],
    *,
    key_column: str,
    code_column: str,
    figures: tuple[str, ...],
    known: frozenset[str],
) -> dict[str, Any]:
    """The record as it is loaded, or ``ValueError`` with the reason it is quarantined."""
    record_id = (record.get(key_column) or "").strip()
    if not record_id:
        raise ValueError(f"{key_column} is missing")
    try:
        code = normalise_code(record.get(code_column), 10)
    except ValueError as exc:
        raise ValueError(f"barangay {exc}") from None
    if code not in known:
        raise ValueError(f"unknown barangay code {code} (not a barangay in the PSGC 2025 Q2)")
    row: dict[str, Any] = {"record_id": record_id, "barangay_code": code}
    for column in figures:
        row[column] = figure(record.get(column), column)
    row["is_deleted"] = parse_flag(record.get("is_deleted"), "is_deleted")
    row["updated_at"] = parse_time(record.get("updated_at"), "updated_at")
    return row
