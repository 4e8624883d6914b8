"""Values shared by the loaders: codes, counts and content digests (of rows and of files)."""

from __future__ import annotations

import hashlib
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

_DIGITS = re.compile(r"[0-9]+")


def normalise_code(value: Any, width: int) -> str:
    """A code as zero-padded digits of ``width``: ``1``, ``"1"``, ``"001"``, ``1.0`` -> ``"001"``.

    Raises ``ValueError`` (the quarantine reason) for an empty, non-numeric or too-long code."""
    if type(value) is int and value >= 0:  # the common case, fast (46,000 polling stations a run)
        text = str(value)
        if len(text) > width:
            raise ValueError(f"code {text!r} is longer than {width} digits")
        return text.zfill(width)
    if value is None:
        raise ValueError("code is missing")
    if isinstance(value, bool):
        raise ValueError(f"code {value!r} is not a number")
    if isinstance(value, float | Decimal):
        if value != int(value):
            raise ValueError(f"code {value!r} is not a whole number")
        value = int(value)
    text = str(value).strip()
    if not _DIGITS.fullmatch(text):
        raise ValueError(f"code {text[:40]!r} is not made of digits")
    digits = text.lstrip("0") or "0"
    if len(digits) > width:
        raise ValueError(f"code {text!r} is longer than {width} digits")
    return digits.zfill(width)


_BIGINT_MAX = 2**63 - 1  # the warehouse column's largest value


def figure(value: Any, column: str) -> int | None:
    """A count: a whole number at least 0 that a bigint holds, or None when the source has none."""
    if type(value) is int and 0 <= value <= _BIGINT_MAX:  # the common case, fast
        return value
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValueError(f"{column} {value!r} is not a count")
    try:
        number = Decimal(str(value).strip())
    except ArithmeticError:
        raise ValueError(f"{column} {str(value)[:40]!r} is not a number") from None
    if not number.is_finite() or number != number.to_integral_value() or number < 0:
        raise ValueError(f"{column} {str(value)[:40]!r} is not a whole number at least 0")
    if number > _BIGINT_MAX:
        raise ValueError(f"{column} {str(value)[:40]!r} is too large to be a count")
    return int(number)


def row_hash(row: dict[str, Any], columns: tuple[str, ...]) -> str:
    """A digest of the row's content (not its timestamps), to tell changed rows from unchanged ones.

    ``repr`` of the values keeps their types apart (``1`` and ``'1'``) and is stable for the strings,
    integers, booleans, datetimes and None the loaders hash."""
    payload = repr(tuple(row.get(column) for column in columns))
    return hashlib.blake2b(payload.encode(), digest_size=16).hexdigest()


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's content (hex): a file read before and unchanged is skipped."""
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()
