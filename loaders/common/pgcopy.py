"""Rows streamed into a PostgreSQL table with ``COPY FROM STDIN`` while the caller prepares the next batch."""

from __future__ import annotations

import queue
import threading
from typing import Any

_END = b""
_ABORT = object()


class CopyAborted(RuntimeError):
    """The run stopped before its COPY was finished (the transaction is rolled back)."""


class CopyStream:
    """One ``COPY ... FROM STDIN`` statement on ``connection``, fed a batch of bytes at a time
    (in the format the statement names).

    A thread runs the statement: psycopg2's ``copy_expert`` sends each batch with the GIL released and
    the server parses it on another core, so the caller reads and checks the next batch meanwhile. At
    most ``depth`` batches wait in between, which bounds memory whatever the size of the load. Nothing
    is committed here: the statement runs in the connection's transaction, and the caller commits or
    rolls back. ``close`` finishes the statement and raises its error; ``abort`` stops it.
    """

    def __init__(self, connection: Any, sql: str, depth: int = 3) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._copy, args=(connection, sql), name="copy", daemon=True)
        self._thread.start()
        self._open = True

    def _copy(self, connection: Any, sql: str) -> None:
        try:
            with connection.cursor() as cursor:
                cursor.copy_expert(sql, self)
        except BaseException as exc:  # reported by close() in the caller's thread
            self._error = exc

    def read(self, size: int = -1) -> bytes:
        """``copy_expert``'s side: the next batch, ``b""`` at the end (any length is sent as it is)."""
        item = self._queue.get()
        if item is _ABORT:
            raise CopyAborted("the load stopped before its COPY finished")
        return item  # type: ignore[no-any-return]

    def write(self, data: bytes) -> None:
        """Queue one batch of rows; wait while ``depth`` batches are queued. An empty batch is skipped."""
        if data:
            self._put(data)

    def _put(self, item: Any) -> None:
        while True:
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                if not self._thread.is_alive():  # the COPY failed and reads no more
                    self._raise()

    def _raise(self) -> None:
        self._open = False
        error = self._error or CopyAborted("the COPY stopped before its end")
        raise error

    def close(self) -> None:
        """End the statement and wait for the server to take every row; raise if it failed."""
        if not self._open:
            return
        self._open = False
        if self._thread.is_alive():
            self._put(_END)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        """Stop the statement (the server discards what it took); the caller then rolls back."""
        if not self._open:
            return
        self._open = False
        if self._thread.is_alive():
            try:
                self._queue.put(_ABORT, timeout=60)
            except queue.Full:
                return  # the server stopped reading: the caller's rollback or close ends the statement
        self._thread.join(timeout=60)
