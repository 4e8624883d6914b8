"""Counting HTTP attempts, shared by the sources that call APIs (the sales API, ODK Central).

dlt's client retries around ``Session.send``, so an adapter mounted on its session sees every attempt:
the counts make the retries visible in the run summary and the audit.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

from requests import Session
from requests.adapters import HTTPAdapter


@dataclass
class RequestStats:
    """Attempts made, failed attempts (429, 5xx, timeouts, connection errors) and logins; safe to
    count from several threads (attachment downloads run in parallel)."""

    requests: int = 0
    http_errors: int = 0
    logins: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, *, failed: bool = False) -> None:
        with self._lock:
            self.requests += 1
            self.http_errors += int(failed)


class Counts(Protocol):
    """Where attempts are counted: ``RequestStats``, or a run's ``LoadStats`` (one thread)."""

    def count(self, *, failed: bool = False) -> None: ...


class CountingAdapter(HTTPAdapter):
    """An adapter that counts every attempt that goes through it into ``stats``."""

    def __init__(self, stats: Counts, pool_maxsize: int = 10) -> None:
        super().__init__(pool_maxsize=pool_maxsize)
        self.stats = stats

    def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            response = super().send(request, *args, **kwargs)
        except Exception:
            self.stats.count(failed=True)
            raise
        self.stats.count(failed=response.status_code == 429 or response.status_code >= 500)
        return response


def counted(session: Session, stats: Counts, pool_maxsize: int = 10) -> CountingAdapter:
    """Mount a counting adapter on ``session`` for http and https; returns it."""
    adapter = CountingAdapter(stats, pool_maxsize)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return adapter
