"""Reading and checking community records: barangay codes against the PSGC, figures, flags, times."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from loaders.common.files import FileRejected, HashingReader, byte_order_mark, header_key
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


# A field longer than this stops its file (the csv module's default, 128 KiB, is too tight for notes).
FIELD_LIMIT = 16 << 20


def read_records(
    stream: HashingReader, required: Sequence[str] = (), optional: Sequence[str] = ()
) -> Iterator[tuple[int, dict[str, str], str | None]]:
    """(line number, record, problem) for each row of a CSV file with a header, read from ``stream``
    (UTF-8 unless a byte-order mark says otherwise); the stream is left open.

    The ``required`` and ``optional`` columns are found by name, else ignoring case, spaces, underscores
    and hyphens, and the record names them as configured (the others as the file does). ``problem`` is
    set for a row whose field count differs from the header's. A file without a usable header, or that
    cannot be read past a line, raises ``FileRejected`` (the rows before that line have been yielded).
    """
    csv.field_size_limit(max(csv.field_size_limit(), FIELD_LIMIT))
    encoding, length = byte_order_mark(stream)
    if length:
        stream.skip(length)
    text = io.TextIOWrapper(stream, encoding=encoding or "utf-8", newline="")
    line = 1
    try:
        reader = csv.reader(text)
        header = _header(reader, required, optional)
        width = len(header)
        for row in reader:
            line = reader.line_num
            if not any(value.strip() for value in row):
                continue  # a blank line is not a record
            record = dict(zip(header, row, strict=False))
            if len(row) != width:
                record = {f"field {i + 1}": value for i, value in enumerate(row)}
                yield line, record, f"{len(row)} fields where the header has {width}"
            else:
                yield line, record, None
    except (UnicodeDecodeError, csv.Error) as exc:
        reason = str(exc).splitlines()[0][:300]
        raise FileRejected(
            f"reading stopped after line {line}, the rest of the file is not read: {reason}", line=line + 1
        ) from None
    finally:
        text.detach()


def _header(reader: Any, required: Sequence[str], optional: Sequence[str]) -> list[str]:
    """The header with the configured columns named as configured; ``FileRejected`` for none usable."""
    try:
        header = next(reader)
    except StopIteration:
        raise FileRejected("the file is empty: no header line") from None
    sample = ",".join(header)[:1000]
    if not any(name.strip() for name in header):
        raise FileRejected("the first line is blank: no header", sample=sample)
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise FileRejected(
            f"duplicated header name(s) {repeated}: every column needs a name of its own",
            line=1,
            sample=sample,
        )
    named = list(header)
    missing = []
    for wanted in (*required, *optional):
        if wanted in header:
            continue
        alike = [i for i, name in enumerate(header) if header_key(name) == header_key(wanted)]
        if len(alike) > 1:
            raise FileRejected(
                f"header {wanted!r} matches {[header[i] for i in alike]}: rename one of them",
                line=1,
                sample=sample,
            )
        if alike:
            named[alike[0]] = wanted
        elif wanted in required:
            missing.append(wanted)
    if missing:
        raise FileRejected(
            f"header(s) {missing} not found (the file has {header[:20]}); fix the file or "
            "sources.communities' column settings",
            line=1,
            sample=sample,
        )
    return named


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
