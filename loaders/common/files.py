"""Reading source files safely: hashed from the bytes actually read, byte-order marks honoured, files
still being written left for the next run, files that changed while read not marked as loaded.

A loader marks a file as loaded with the SHA-256 of what it read, in the same pass (``HashingReader``),
not with a digest taken before or after: a file copied in while it was read is read again next time.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import os
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from loaders.common import progress
from loaders.common.values import file_sha256

if TYPE_CHECKING:
    from loaders.common.quarantine import LoadStats

# Byte-order marks, longest first, and the encoding each one says the file is in.
BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
DEFAULT_SETTLE_SECONDS = 10.0


class FileRejected(ValueError):
    """A file that cannot be read (at all, or past ``line``): quarantined as one file-level rejection
    with this reason, while the other files go on."""

    def __init__(self, reason: str, *, line: int | None = None, sample: str = "") -> None:
        super().__init__(reason)
        self.line = line
        self.sample = sample  # what of the file shows the problem (its header line), for the quarantine


def header_key(name: str) -> str:
    """A header name without case, spaces, underscores or hyphens: ``Initial_Password``,
    ``initial password`` and ``INITIALPASSWORD`` are one name, ``E-mail`` is ``email``."""
    return re.sub(r"[\s_\-]+", "", name.lower())


def settling(path: Path, settle_seconds: float) -> bool:
    """Whether ``path`` was modified less than ``settle_seconds`` ago (it may still be being written)."""
    return settle_seconds > 0 and time.time() - path.stat().st_mtime < settle_seconds


@dataclass(frozen=True)
class Snapshot:
    size: int
    mtime_ns: int
    inode: int

    @classmethod
    def of(cls, stat: os.stat_result) -> Snapshot:
        return cls(stat.st_size, stat.st_mtime_ns, stat.st_ino)


class HashingReader(io.RawIOBase):
    """A file's bytes as a binary stream, hashed as they pass (every byte once, whoever reads it).

    ``peek`` looks at the start without losing it; ``skip`` hides bytes (a byte-order mark) from the
    reader but not from the hash; ``finish`` hashes the rest unread and says whether the file changed
    while it was open."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._file = path.open("rb")
        self._before = Snapshot.of(os.fstat(self._file.fileno()))
        self._hash = hashlib.sha256()
        self._buffer = b""
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def _pull(self, size: int) -> bytes:
        data = self._file.read(size)
        self._hash.update(data)
        self.bytes_read += len(data)
        return data

    def peek(self, size: int) -> bytes:
        """The next ``size`` bytes (fewer at the end), left to be read."""
        while len(self._buffer) < size:
            data = self._pull(size - len(self._buffer))
            if not data:
                break
            self._buffer += data
        return self._buffer[:size]

    def skip(self, size: int) -> None:
        self.peek(size)
        self._buffer = self._buffer[size:]

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(target).cast("B")
        if self._buffer:
            n = min(len(view), len(self._buffer))
            view[:n] = self._buffer[:n]
            self._buffer = self._buffer[n:]
            return n
        data = self._pull(len(view))
        view[: len(data)] = data
        return len(data)

    def finish(self) -> tuple[str, bool]:
        """(SHA-256 of the whole file as read, whether it changed while it was read). The rest of the
        file, if the reader stopped early, is hashed too."""
        while self._pull(1 << 20):
            pass
        after_open = Snapshot.of(os.fstat(self._file.fileno()))
        try:
            after_path = Snapshot.of(self.path.stat())
        except FileNotFoundError:
            after_path = None
        changed = (
            after_open != self._before or after_path != self._before or self.bytes_read != self._before.size
        )
        return self._hash.hexdigest(), changed

    def close(self) -> None:
        self._file.close()
        super().close()


def byte_order_mark(reader: HashingReader) -> tuple[str | None, int]:
    """(the encoding a byte-order mark at the start says, its length), or (None, 0)."""
    start = reader.peek(4)
    for mark, encoding in BOMS:
        if start.startswith(mark):
            return encoding, len(mark)
    return None, 0


def files_to_read(
    files: Iterable[tuple[str, Path]],
    loaded: dict[str, str],
    stats: LoadStats,
    settle_seconds: float = DEFAULT_SETTLE_SECONDS,
) -> Iterator[tuple[str, HashingReader]]:
    """(file id, the file open for reading) for each of ``files`` (id, path) a loader must read.

    Left out, and counted in ``stats``: a file modified less than ``settle_seconds`` ago (it may still be
    being copied in; the next run reads it) and one read before and unchanged (its SHA-256 in
    ``loaded``, the loader's state). When the loader has had its turn with a file, the file is marked in
    ``loaded`` with the digest of the bytes read, unless it changed meanwhile (then it stays unmarked
    and the next run reads it again); one the loader rejected whole (it added to
    ``stats.files_rejected``) is marked, not counted as loaded."""
    for file_id, path in files:
        if settling(path, settle_seconds):
            stats.files_pending.append(file_id)
            continue
        # a file never read before is hashed once, as it is read
        if file_id in loaded and loaded[file_id] == file_sha256(path):
            stats.files_skipped.append(file_id)
            continue
        rejected_before = len(stats.files_rejected)
        with HashingReader(path) as reader:
            yield file_id, reader
            digest, changed = reader.finish()
        progress.count("files")
        if changed:
            loaded.pop(file_id, None)
            stats.files_changed.append(file_id)
            continue
        loaded[file_id] = digest
        if len(stats.files_rejected) == rejected_before:
            stats.files_loaded.append(file_id)
