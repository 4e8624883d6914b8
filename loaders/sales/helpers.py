"""Reading and validating sales records: CSV streaming through Arrow, vectorised checks, quarantine."""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from pgpq import ArrowToPostgresBinaryEncoder

from loaders.common.files import FileRejected, HashingReader, byte_order_mark, header_key
from loaders.common.pgcopy import CopyStream
from loaders.common.quarantine import LoadStats, rejected_table, rejection  # noqa: F401 - re-exported
from loaders.common.warehouse import ROOT, ConfigurationError
from loaders.sales.settings import (
    CSV_BLOCK_SIZE,
    DATASET,
    DEFAULT_COLUMN_MAP,
    EXTRA_COLUMNS,
    MERGE_KEY,
    MONEY,
    OPTIONAL_COLUMNS,
    ORDER_COLUMNS,
    ORDER_LINE_KEY,
    ORDERS_SCHEMA,
    TOTAL_TOLERANCE,
)

_INTEGER = r"^\s*[+-]?\d{1,18}\s*$"
_DECIMAL = r"^\s*[+-]?(\d{1,14}(\.\d{0,4})?|\.\d{1,4})\s*$"
_MAX_MONEY = 10**14 - 1  # the largest whole part a MONEY value holds


@dataclass(frozen=True)
class RecordShape:
    """What one source's order lines look like, as configuration declares it: which of its headers (or
    API fields) holds each column, which columns identify a line within the run, and which may be
    missing (and what stands in for them, ``OPTIONAL_COLUMNS``)."""

    columns: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_COLUMN_MAP))
    key: tuple[str, ...] = ORDER_LINE_KEY
    optional: frozenset[str] = frozenset()

    @classmethod
    def declared(
        cls, where: str, columns: dict[str, str] | None, key: Any = None, optional: Any = None
    ) -> RecordShape:
        """The shape from a source's ``columns``, ``key`` and ``optional`` settings (``where`` names the
        source in errors); raise ``ConfigurationError`` for one that cannot work."""
        allowed = ORDER_COLUMNS + EXTRA_COLUMNS
        mapped = dict(DEFAULT_COLUMN_MAP) | dict(columns or {})
        key = tuple(key) if key else ORDER_LINE_KEY
        optional = frozenset(optional or ())
        unknown = sorted((set(mapped) | set(key) | optional) - set(allowed))
        if unknown:
            raise ConfigurationError(
                f"{where} names unknown columns {unknown}; the columns are {', '.join(allowed)}"
            )
        if key[0] != "order_id" or len(set(key)) != len(key):
            raise ConfigurationError(
                f"{where}: key {list(key)} must start with order_id and name each column once "
                '(for example key = ["order_id", "line_number"])'
            )
        if not optional <= set(OPTIONAL_COLUMNS) or optional & set(key):
            rules = ", ".join(f"{name} (then {rule})" for name, rule in OPTIONAL_COLUMNS.items())
            raise ConfigurationError(
                f"{where}: optional {sorted(optional)} is not allowed; a column may be optional if it is "
                f"not in the key and is one of: {rules}"
            )
        for name in key:  # a key column beyond the standard ones is read from a header of its name
            mapped.setdefault(name, name)
        return cls(columns=mapped, key=key, optional=optional)

    @property
    def line_columns(self) -> tuple[str, ...]:
        """The key's columns after order_id: together, a line's identity within its order."""
        return self.key[1:]

    def line_keys(self, trimmed: dict[str, Any], rows: pa.Array | None = None) -> pa.Array:
        """The ``line_key`` of every row (or of the rows at ``rows``): the line's key columns, the one
        value as it is, several as a JSON list; "" when the key is order_id alone."""
        values = [
            trimmed[name] if rows is None else pc.take(trimmed[name], rows) for name in self.line_columns
        ]
        if len(values) == 1:
            return values[0]
        length = len(trimmed["order_id"]) if rows is None else len(rows)
        if not values:
            return pa.repeat(pa.scalar("", pa.string()), length)
        lists = zip(*(v.to_pylist() for v in values), strict=True)
        return pa.array([json.dumps(list(parts), ensure_ascii=False) for parts in lists], pa.string())


@dataclass(frozen=True)
class FileSource:
    """One folder of CSV exports and how to read them, declared in configuration."""

    name: str
    path: Path
    pattern: str = "*.csv"
    encoding: str = "utf-8"
    delimiter: str = ","
    quote_char: str = '"'
    date_format: str = "%Y-%m-%d"
    shape: RecordShape = field(default_factory=RecordShape)

    @classmethod
    def from_config(cls, raw: dict[str, Any]) -> FileSource:
        try:
            name = str(raw["name"])
            path = Path(str(raw["path"]))
        except KeyError as exc:
            raise ConfigurationError(
                f"a sales_csv file source needs {exc.args[0]!r} "
                "(see [[sources.sales_csv.file_sources]] in .dlt/config.toml)"
            ) from None
        shape = RecordShape.declared(
            f"file source {name!r}", raw.get("columns"), raw.get("key"), raw.get("optional")
        )
        return cls(
            name=name,
            path=path if path.is_absolute() else ROOT / path,
            pattern=str(raw.get("pattern", "*.csv")),
            encoding=str(raw.get("encoding", "utf-8")),
            delimiter=str(raw.get("delimiter", ",")),
            quote_char=str(raw.get("quote_char", '"')),
            date_format=str(raw.get("date_format", "%Y-%m-%d")),
            shape=shape,
        )

    def files(self) -> list[Path]:
        if not self.path.is_dir():
            raise ConfigurationError(
                f"file source {self.name!r}: folder {self.path} does not exist; "
                "create it or fix sources.sales_csv.file_sources.path"
            )
        return sorted(p for p in self.path.glob(self.pattern) if p.is_file())


@dataclass
class CsvBatch:
    """A block of a CSV file as strings, with the file line of every row (the header is line 1)."""

    table: pa.Table
    lines: pa.Array


HEADER_PEEK = 64 << 10
HEADER_MAX = 4 << 20
DELIMITERS = (",", ";", "\t", "|")


@dataclass
class CsvFile:
    """A CSV file opened for reading: its encoding (a byte-order mark decides it), its header."""

    reader: HashingReader
    encoding: str
    header: list[str]
    header_text: str
    delimiter: str
    quote_char: str

    @classmethod
    def open(cls, reader: HashingReader, *, encoding: str, delimiter: str, quote_char: str) -> CsvFile:
        """Read the header; raise ``FileRejected`` for a file with no usable one."""
        marked, length = byte_order_mark(reader)
        if marked:
            reader.skip(length)
            encoding = marked  # the mark says what the file is, whatever the configuration says
        size = HEADER_PEEK
        while True:
            start = reader.peek(size)
            # undecodable bytes further down are the rows' problem (they stop the file there), not the
            # header's: decode leniently here and look at the header line alone
            decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
            text = decoder.decode(start, final=len(start) < size)
            if "\n" in text or len(start) < size or size >= HEADER_MAX:
                break
            size *= 4
        if not text.strip():
            raise FileRejected("the file is empty: no header line")
        first_line = text.splitlines()[0] if text else ""
        if "\ufffd" in first_line:
            raise FileRejected(
                f"the header is not {encoding} text: check the file source's encoding",
                line=1,
                sample=first_line[:1000],
            )
        try:
            header = next(csv.reader(io.StringIO(text), delimiter=delimiter, quotechar=quote_char))
        except (csv.Error, StopIteration) as exc:
            raise FileRejected(f"the header line cannot be read: {exc}", sample=first_line[:1000]) from None
        if not any(name.strip() for name in header):
            raise FileRejected("the first line is blank: no header", sample=first_line[:1000])
        repeated = sorted({name for name in header if header.count(name) > 1})
        if repeated:
            raise FileRejected(
                f"duplicated header name(s) {repeated}: every column needs a name of its own",
                line=1,
                sample=first_line[:1000],
            )
        return cls(reader, encoding, header, first_line[:1000], delimiter, quote_char)

    def resolve(self, columns: dict[str, str], optional: frozenset[str] = frozenset()) -> dict[str, str]:
        """``columns`` (canonical -> configured header) with each header as this file spells it: the
        same name, else the one header equal to it but for case, spaces, underscores and hyphens; an
        ``optional`` column the file does not have is left out. Raise ``FileRejected`` for a header
        that is missing (naming a delimiter the header line seems to use instead) or matched twice."""
        resolved: dict[str, str] = {}
        missing: list[str] = []
        for canonical, wanted in columns.items():
            if wanted in self.header:
                resolved[canonical] = wanted
                continue
            alike = [name for name in self.header if header_key(name) == header_key(wanted)]
            if len(alike) > 1:
                raise FileRejected(
                    f"header {wanted!r} matches {alike}: rename one of them",
                    line=1,
                    sample=self.header_text,
                )
            if alike:
                resolved[canonical] = alike[0]
            elif canonical not in optional:
                missing.append(wanted)
        if missing:
            hint = ""
            if len(self.header) == 1:
                used = [d for d in DELIMITERS if d != self.delimiter and d in self.header[0]]
                if used:
                    hint = f" (is the delimiter {used[0]!r}? this file source reads {self.delimiter!r})"
            raise FileRejected(
                f"header(s) {missing} not found (the file has {self.header[:20]}){hint}; "
                "fix the file or the column mapping of its file source",
                line=1,
                sample=self.header_text,
            )
        return resolved

    def batches(
        self, *, block_size: int = CSV_BLOCK_SIZE, malformed: list[tuple[int, str]] | None = None
    ) -> Iterator[CsvBatch]:
        """Stream the rows in Arrow blocks, every column as a string, never the whole file in memory.

        Rows with the wrong number of fields go to ``malformed`` as (line, text) instead of failing
        the file; blank lines (every field empty) are not records and are dropped. Bytes that cannot
        be decoded stop the file there (``FileRejected`` with the line reached): the rows before them
        are read."""
        skipped: list[int] = []

        def on_invalid(row: Any) -> str:
            skipped.append(row.number)
            if malformed is None:
                return "error"
            malformed.append((row.number, row.text))
            return "skip"

        def stopped(exc: Exception, line: int) -> FileRejected:
            message = str(exc).strip().splitlines()[0][:300]
            return FileRejected(
                f"reading stopped after line {line - 1}, the rest of the file is not read: {message}",
                line=line,
            )

        try:
            reader = self._open_arrow(block_size, on_invalid)
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:  # Arrow reads the first block at once
            raise stopped(exc, 2) from None
        next_line = 2
        consumed = 0  # entries of ``skipped`` already placed
        while True:
            try:
                record_batch = reader.read_next_batch()
            except StopIteration:
                return
            except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
                raise stopped(exc, next_line) from None
            table = pa.Table.from_batches([record_batch])
            lines, next_line, consumed = _line_numbers(table.num_rows, next_line, skipped, consumed)
            yield CsvBatch(*_without_blank_rows(table, lines))

    def _open_arrow(self, block_size: int, on_invalid: Any) -> Any:
        return pacsv.open_csv(
            self.reader,
            # One thread keeps the row numbers the invalid-row handler reports.
            read_options=pacsv.ReadOptions(block_size=block_size, encoding=self.encoding, use_threads=False),
            parse_options=pacsv.ParseOptions(
                delimiter=self.delimiter,
                quote_char=self.quote_char,
                invalid_row_handler=on_invalid,
                ignore_empty_lines=False,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in self.header}, strings_can_be_null=False
            ),
        )


def read_csv_batches(
    path: Path,
    *,
    encoding: str = "utf-8",
    delimiter: str = ",",
    quote_char: str = '"',
    block_size: int = CSV_BLOCK_SIZE,
    malformed: list[tuple[int, str]] | None = None,
) -> Iterator[CsvBatch]:
    """The batches of the CSV file at ``path`` (see ``CsvFile.batches``)."""
    with HashingReader(path) as reader:
        opened = CsvFile.open(reader, encoding=encoding, delimiter=delimiter, quote_char=quote_char)
        yield from opened.batches(block_size=block_size, malformed=malformed)


def map_columns(table: pa.Table, columns: dict[str, str]) -> pa.Table:
    """The canonical columns from a block whose headers ``CsvFile.resolve`` matched to them."""
    return pa.table({canonical: table.column(header) for canonical, header in columns.items()})


def _is_blank(array: pa.ChunkedArray) -> pa.ChunkedArray:
    return pc.fill_null(pc.equal(pc.utf8_trim_whitespace(array), ""), True)


def _matches(array: pa.ChunkedArray, pattern: str) -> pa.ChunkedArray:
    return pc.fill_null(pc.match_substring_regex(array, pattern), False)


@dataclass
class ValidatedBatch:
    good: pa.Table
    rejected_index: list[int]
    reasons: list[str]


def _line_numbers(n: int, next_line: int, skipped: list[int], consumed: int) -> tuple[pa.Array, int, int]:
    """The file line of each of a block's ``n`` rows, from ``next_line`` on, past the lines Arrow
    skipped (``skipped[consumed:]``); with the next line and the skipped entries placed so far."""
    if consumed == len(skipped):
        return pa.arange(next_line, next_line + n), next_line + n, consumed
    numbers = []
    for _ in range(n):
        while consumed < len(skipped) and skipped[consumed] == next_line:
            consumed += 1
            next_line += 1
        numbers.append(next_line)
        next_line += 1
    return pa.array(numbers, type=pa.int64()), next_line, consumed


def _without_blank_rows(table: pa.Table, lines: pa.Array) -> tuple[pa.Table, pa.Array]:
    """Blank lines (every field empty) are not records."""
    blank = None
    for name in table.column_names:
        empty = pc.equal(table.column(name), "")
        blank = empty if blank is None else pc.and_(blank, empty)
    if blank is None or not pc.any(blank).as_py():
        return table, lines
    keep = pc.invert(blank)
    if isinstance(keep, pa.ChunkedArray):
        keep = keep.combine_chunks()
    return table.filter(keep), lines.filter(keep)


def validate_orders(
    table: pa.Table,
    *,
    date_format: str,
    seen_keys: SeenKeys,
    source_name: str,
    source_file: str | None,
    lines: pa.Array | None,
    loaded_at: datetime,
    shape: RecordShape | None = None,
) -> ValidatedBatch:
    """Check a batch of canonical string columns; return typed good rows and the rejects' reasons.

    The checks run vectorised in Arrow; reasons are spelled out only for the (few) bad rows.
    ``seen_keys`` holds the order-line keys read earlier in this run: a repeat is rejected,
    so one run never carries two versions of a line. ``shape`` says which columns are the key and
    which may be missing; a column the batch lacks is missing on every row.
    """
    shape = shape or RecordShape()
    n = table.num_rows
    for name in (*ORDER_COLUMNS, *shape.line_columns):
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(n, pa.string()))
    checked = _check_values(table, shape, date_format)
    rejected: dict[int, str] = {
        i: _reason(i, **checked.checks) for i in pc.indices_nonzero(pc.invert(checked.ok)).to_pylist()
    }
    line_key = shape.line_keys(checked.trimmed)
    _reject_repeats(checked, line_key, shape, seen_keys, rejected)
    rejected_index = sorted(rejected)
    reasons = [rejected[i] for i in rejected_index]
    if lines is None:
        lines = pa.nulls(n, type=pa.int64())
    trimmed = checked.trimmed
    good = pa.Table.from_arrays(
        [
            trimmed["order_id"],
            pc.cast(checked.dates, pa.date32()),
            trimmed["user_id"],
            trimmed["product_name"],
            line_key,
            checked.checks["quantity"],
            checked.checks["unit_price"],
            checked.total,
            trimmed["region"],
            pa.repeat(pa.scalar(source_name, pa.string()), n),
            pa.repeat(pa.scalar(source_file, pa.string()), n),
            lines,
            pa.repeat(pa.scalar(loaded_at, pa.timestamp("us", tz="UTC")), n),
        ],
        schema=ORDERS_SCHEMA,
    )
    if rejected_index:
        keep = pc.invert(
            pc.is_in(pa.array(range(n), pa.int64()), value_set=pa.array(rejected_index, pa.int64()))
        )
        good = good.filter(keep)
    return ValidatedBatch(good=good, rejected_index=rejected_index, reasons=reasons)


@dataclass
class _Checked:
    """A batch's values trimmed and typed, which rows pass, and what ``_reason`` needs for the others."""

    trimmed: dict[str, Any]
    dates: Any
    total: Any
    ok: pa.Array
    checks: dict[str, Any]


def _check_values(table: pa.Table, shape: RecordShape, date_format: str) -> _Checked:
    """Every value check of a batch, vectorised: required fields given, numbers and dates that parse,
    positive quantity and price, a total within a cent of quantity x price (or computed, where the
    shape lets a line leave it out and the product fits)."""
    checked = tuple(dict.fromkeys((*ORDER_COLUMNS, *shape.key)))
    required = tuple(name for name in checked if name not in shape.optional)
    trimmed = {name: pc.utf8_trim_whitespace(table.column(name)) for name in checked}
    blank = {name: _is_blank(table.column(name)) for name in required}
    total_given = pc.invert(_is_blank(table.column("total_amount")))
    int_ok = _matches(table.column("quantity"), _INTEGER)
    price_ok = _matches(table.column("unit_price"), _DECIMAL)
    total_ok = pc.and_(total_given, _matches(table.column("total_amount"), _DECIMAL))
    dates, date_ok = _parse_dates(trimmed["order_date"], date_format)

    quantity = pc.cast(pc.if_else(int_ok, trimmed["quantity"], "0"), pa.int64())
    unit_price = pc.cast(pc.if_else(price_ok, trimmed["unit_price"], "0"), MONEY)
    given_total = pc.cast(pc.if_else(total_ok, trimmed["total_amount"], "0"), MONEY)
    expected = pc.multiply(pc.cast(quantity, pa.float64()), pc.cast(unit_price, pa.float64()))
    total_diff = pc.abs(pc.subtract(pc.cast(given_total, pa.float64()), expected))
    # a given total must match; a missing one (where the shape allows it) is computed, if it fits
    total_matches = pc.or_(pc.invert(total_given), pc.less_equal(total_diff, TOTAL_TOLERANCE + 1e-9))
    fits = pc.less_equal(pc.abs(expected), _MAX_MONEY)
    if "total_amount" in shape.optional:
        computable = pc.and_(pc.invert(total_given), fits)
        factor = pc.cast(pc.if_else(computable, quantity, 0), pa.decimal128(19, 0))
        computed = pc.cast(pc.multiply(factor, unit_price), MONEY)
        total = pc.if_else(total_given, given_total, computed)
        total_ok = pc.or_(total_ok, pc.invert(total_given))
    else:
        total = given_total

    any_blank = None
    for name in required:
        any_blank = blank[name] if any_blank is None else pc.or_(any_blank, blank[name])
    ok = pc.and_(pc.invert(any_blank), pc.and_(int_ok, pc.and_(price_ok, total_ok)))
    ok = pc.and_(ok, date_ok)
    ok = pc.and_(ok, pc.and_(pc.greater(quantity, 0), pc.greater(unit_price, 0)))
    ok = pc.and_(ok, pc.and_(total_matches, pc.or_(total_given, fits)))
    ok = ok.combine_chunks() if isinstance(ok, pa.ChunkedArray) else ok
    checks = {
        "blank": blank,
        "int_ok": int_ok,
        "price_ok": price_ok,
        "total_ok": total_ok,
        "total_given": total_given,
        "fits": fits,
        "date_ok": date_ok,
        "quantity": quantity,
        "unit_price": unit_price,
        "total_diff": total_diff,
        "total_matches": total_matches,
        "date_format": date_format,
    }
    return _Checked(trimmed=trimmed, dates=dates, total=total, ok=ok, checks=checks)


def _reject_repeats(
    checked: _Checked, line_key: Any, shape: RecordShape, seen_keys: SeenKeys, rejected: dict[int, str]
) -> None:
    """Order-line keys of the rows that passed: a repeat (in this batch or earlier in the run) is
    rejected. The common case - no repeats - stays vectorised (hashing, sorted lookups)."""
    trimmed = checked.trimmed
    passed = pc.indices_nonzero(checked.ok)
    keys = pc.binary_join_element_wise(
        pc.take(trimmed["order_id"], passed), pc.take(line_key, passed), "\x1f"
    ).to_pylist()
    first, second = SeenKeys.hashes(keys)
    earlier = seen_keys.contains(first, second)
    if len(set(keys)) == len(keys) and not earlier.any():
        seen_keys.add(first, second)
        return
    in_batch: set[str] = set()
    kept = []
    for n, (i, key) in enumerate(zip(passed.to_pylist(), keys, strict=True)):
        if earlier[n] or key in in_batch:
            values = ", ".join(str(trimmed[name][i].as_py()) for name in shape.key)
            rejected[i] = (
                f"duplicate order line: ({', '.join(shape.key)}) = ({values}) was already read in this run"
            )
        else:
            in_batch.add(key)
            kept.append(n)
    seen_keys.add(first[kept], second[kept])


class SeenKeys:
    """The order-line keys read so far in a run, in 16 bytes a key instead of a Python set's ~110.

    A key is kept as two 64-bit hashes, Python's own string hash of the key and of the key behind a
    separator (keyed per process, and a run lives in one process), so two different keys are taken
    for one only if both hashes collide (about 2**-128 a pair). The hashes sit in sorted arrays
    merged like a binary counter: adding n keys costs O(n log n), a lookup a binary search per array,
    and 10,000,000 keys take about 160 MB where the set took over a gigabyte.
    """

    def __init__(self) -> None:
        self._levels: list[tuple[np.ndarray, np.ndarray]] = []  # (first sorted, second alongside)

    def __len__(self) -> int:
        return sum(len(first) for first, _ in self._levels)

    @staticmethod
    def hashes(keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
        first = np.fromiter(map(hash, keys), dtype=np.int64, count=len(keys))
        second = np.fromiter(map(hash, map("\x1e".__add__, keys)), dtype=np.int64, count=len(keys))
        return first, second

    def contains(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """Which of the keys (given by their ``hashes``) were added before."""
        found = np.zeros(len(first), dtype=bool)
        if not self._levels or not len(first):
            return found
        order = np.argsort(first)  # sorted needles: numpy's search then walks each array once
        needles = first[order]
        for level_first, level_second in self._levels:
            at = np.searchsorted(level_first, needles)
            hit = level_first[np.minimum(at, len(level_first) - 1)] == needles
            for k in np.flatnonzero(hit):  # a repeat, or (rarely) a first hash shared by two keys
                i, j = order[k], at[k]
                while j < len(level_first) and level_first[j] == first[i]:
                    if level_second[j] == second[i]:
                        found[i] = True
                        break
                    j += 1
        return found

    def add(self, first: np.ndarray, second: np.ndarray) -> None:
        """Add keys (by their ``hashes``) not added before."""
        if not len(first):
            return
        self._levels.append(self._sorted(first, second))
        while len(self._levels) > 1 and len(self._levels[-2][0]) <= len(self._levels[-1][0]):
            (a_first, a_second), (b_first, b_second) = self._levels.pop(-2), self._levels.pop()
            merged_first = np.concatenate((a_first, b_first))
            del a_first, b_first  # the inputs go before the sort: memory stays near 3x the keys
            merged_second = np.concatenate((a_second, b_second))
            del a_second, b_second
            self._levels.append(self._sorted(merged_first, merged_second))

    @staticmethod
    def _sorted(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(first, kind="stable")  # timsort: two sorted runs merge in linear time
        return first[order], second[order]


def _parse_dates(text: pa.ChunkedArray, date_format: str) -> tuple[pa.Array, pa.Array]:
    """Parse dates with ``date_format``; impossible dates (30 February) are invalid, not rolled over."""
    if date_format == "%Y-%m-%d":
        try:  # Arrow's ISO cast is strict and fast; any bad value sends the batch the general way
            dates = pc.cast(text, pa.date32())
            return dates, pc.is_valid(dates)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    parsed = pc.strptime(text, format=date_format, unit="s", error_is_null=True)
    return _strict_dates(text, parsed, date_format)


def _strict_dates(
    text: pa.ChunkedArray, parsed: pa.ChunkedArray, date_format: str
) -> tuple[pa.Array, pa.Array]:
    """Arrow's strptime rolls impossible dates over (2026-02-30 becomes 2026-03-02).

    A rolled-over date always lands on day 1, 2 or 3 of the next month, so only those dates are
    printed back and compared with the text; any that differ are checked again with Python's strict
    parser (which also accepts unpadded days and months). A clean batch checks a tenth of its rows.
    """
    text = text.combine_chunks() if isinstance(text, pa.ChunkedArray) else text
    parsed = parsed.combine_chunks() if isinstance(parsed, pa.ChunkedArray) else parsed
    valid = pc.is_valid(parsed)
    early = pc.indices_nonzero(pc.fill_null(pc.less_equal(pc.day(parsed), 3), False))
    printed = pc.strftime(pc.take(parsed, early), format=date_format)
    differs = pc.not_equal(printed, pc.take(text, early))
    suspects = pc.take(early, pc.indices_nonzero(differs)).to_pylist()
    if not suspects:
        return parsed, valid
    values = parsed.to_pylist()
    raw = text.to_pylist()
    for i in suspects:
        try:
            values[i] = datetime.strptime(raw[i], date_format)
        except ValueError:
            values[i] = None
    repaired = pa.array(values, type=parsed.type)
    return repaired, pc.is_valid(repaired)


def _value(array: pa.ChunkedArray | pa.Array, i: int) -> Any:
    return array[i].as_py()


def _reason(i: int, **checks: Any) -> str:
    """Every problem of row ``i``, not only the first (a cancelled line with a zero price and no
    customer says both)."""
    problems: list[str] = []
    missing = [name for name, array in checks["blank"].items() if _value(array, i)]
    if missing:
        problems.append(f"missing required field(s): {', '.join(missing)}")
    whole = "quantity" not in missing and _value(checks["int_ok"], i)
    priced = "unit_price" not in missing and _value(checks["price_ok"], i)
    given = _value(checks["total_given"], i)
    totalled = given and _value(checks["total_ok"], i)
    if "quantity" not in missing and not whole:
        problems.append("quantity is not a whole number")
    if "unit_price" not in missing and not priced:
        problems.append("unit_price is not a number (at most 4 decimal places)")
    if given and not totalled:
        problems.append("total_amount is not a number (at most 4 decimal places)")
    if "order_date" not in missing and not _value(checks["date_ok"], i):
        problems.append(f"order_date does not parse with format {checks['date_format']!r}")
    if whole and _value(checks["quantity"], i) <= 0:
        problems.append("quantity must be positive")
    if priced and _value(checks["unit_price"], i) <= 0:
        problems.append("unit_price must be positive")
    if whole and priced and totalled and not _value(checks["total_matches"], i):
        diff = _value(checks["total_diff"], i)
        problems.append(f"total_amount differs from quantity x unit_price by {diff:.4f} (more than a cent)")
    if whole and priced and not _value(checks["total_given"], i) and not _value(checks["fits"], i):
        problems.append("quantity x unit_price is too large to be a total")
    return "; ".join(problems)


def original_records(table: pa.Table, columns: dict[str, str], index: list[int]) -> list[dict]:
    """The rejected rows as the source gave them (its own header names), for the quarantine."""
    picked = table.take(pa.array(index, type=pa.int64())) if index else table.slice(0, 0)
    canonical_rows = picked.to_pylist()
    return [{columns[name]: row[name] for name in columns} for row in canonical_rows]


# PostgreSQL's name for each Arrow type of ORDERS_SCHEMA (what dlt created the table with before).
_PG_TYPES = {
    pa.string(): "varchar",
    pa.date32(): "date",
    pa.int64(): "bigint",
    MONEY: "numeric(18,4)",
    pa.timestamp("us", tz="UTC"): "timestamp with time zone",
}


_RUN_TABLE = "orders_of_this_run"


class OrdersCopy:
    """Good order lines COPYed straight into ``raw_sales.orders`` on PostgreSQL, in one transaction.

    The rows stream into a binary ``COPY`` while the next batch is read and checked (``CopyStream``).
    Into an empty table (a first or bulk load) they go into the table itself: no staging, no merge.
    Into a table with rows they go to a temporary table (no WAL), and the same transaction deletes the
    lines they replace (same order-line key) and inserts them: dlt's delete-insert merge, with one scan
    of the table.
    ``commit`` ends it at the end of the extract, before dlt loads the state that records the files
    as read; a run that fails before then leaves the table as it was, and one that fails after it
    reads the same files again next time and replaces the same lines. Nothing connects until the
    first row: a run with nothing new costs nothing here.
    """

    def __init__(self, warehouse: Any, table: str = f"{DATASET}.orders") -> None:
        self.warehouse = warehouse
        self.table = table
        self.seconds: dict[str, float] = {}  # commit's steps, for the benchmark
        self._stack: Any = None
        self._conn: Any = None
        self._stream: Any = None
        self._encoder: Any = None
        self._had_rows = False

    def __enter__(self) -> OrdersCopy:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.commit()
            return
        if self._stream is not None:
            self._stream.abort()
            self._stream = None
        if self._stack is not None:
            stack, self._stack = self._stack, None
            with contextlib.suppress(Exception):  # a lost connection was rolled back by the server
                stack.__exit__(exc_type, exc, tb)  # Warehouse.connect rolls back and closes

    def write(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        if self._stream is None:
            self._open()
        for batch in table.to_batches():
            self._stream.write(self._encoder.write_batch(batch))

    def _open(self) -> None:
        self._stack = contextlib.ExitStack()
        self._conn = self._stack.enter_context(self.warehouse.connect())
        cur = self._conn.cursor()
        schema, name = self.table.split(".")
        columns = ", ".join(
            f"{f.name} {_PG_TYPES[f.type]}{'' if f.nullable else ' not null'}" for f in ORDERS_SCHEMA
        )
        cur.execute(f"create schema if not exists {schema}")
        cur.execute(f"create table if not exists {self.table} ({columns})")
        # a table dlt created before a column was declared gets it, as dlt's schema evolution would; only
        # then: ALTER TABLE holds a lock that keeps every reader of the table waiting until the commit
        cur.execute(
            "select column_name from information_schema.columns where table_schema = %s and table_name = %s",
            (schema, name),
        )
        present = {name for (name,) in cur.fetchall()}
        missing = [f for f in ORDERS_SCHEMA if f.name not in present]
        if missing:
            adds = ", ".join(f"add column {f.name} {_PG_TYPES[f.type]}" for f in missing)
            cur.execute(f"alter table {self.table} {adds}")
        cur.execute(f"select exists (select 1 from {self.table})")
        self._had_rows = bool(cur.fetchone()[0])
        target = self.table
        if self._had_rows:  # the lines go to a temporary table first (no WAL), then replace their keys
            cur.execute(f"create temporary table {_RUN_TABLE} (like {self.table}) on commit drop")
            target = _RUN_TABLE
        # PostgreSQL's binary COPY format, encoded from Arrow by pgpq: half the server's work of
        # parsing the same rows as CSV text (dates, numerics, timestamps), and less to encode
        self._encoder = ArrowToPostgresBinaryEncoder(ORDERS_SCHEMA)
        self._stream = CopyStream(
            self._conn, f"copy {target} ({', '.join(ORDERS_SCHEMA.names)}) from stdin (format binary)"
        )
        self._stream.write(self._encoder.write_header())

    def commit(self) -> None:
        """Finish the COPY, remove the lines it replaces and commit (nothing to do without rows)."""
        if self._stream is None:
            return
        began = time.perf_counter()
        self._stream.write(self._encoder.finish())
        self._stream.close()
        self._stream = None
        copied = time.perf_counter()
        if self._had_rows:
            keys = " and ".join(f"old.{name} = new.{name}" for name in MERGE_KEY)
            cur = self._conn.cursor()
            cur.execute(f"delete from {self.table} as old using {_RUN_TABLE} as new where {keys}")
            names = ", ".join(ORDERS_SCHEMA.names)
            cur.execute(f"insert into {self.table} ({names}) select {names} from {_RUN_TABLE}")
        replaced = time.perf_counter()
        self._stack.close()  # commits
        self._stack = None
        self.seconds = {
            "copy_wait": copied - began,
            "replace": replaced - copied,
            "commit": time.perf_counter() - replaced,
        }
