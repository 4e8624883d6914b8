"""Progress of a long load on a terminal, and silence everywhere else.

dlt's tqdm collector shows what dlt counts (rows per resource while extracting, files and jobs while
normalising and loading); the loaders add their own counters through :func:`count` (files read,
OData pages, attachments downloaded). A bar appears only once a load has run for
``ELT_PROGRESS_AFTER_SECONDS`` (3 by default), and only when standard error is a terminal: a Prefect
worker, cron or CI sees nothing. ``ELT_PROGRESS`` overrides the choice: ``auto`` (the default),
``tqdm``, ``log`` (a line every few seconds on standard error, for a log file) or ``off``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from loaders.common.warehouse import ConfigurationError, number_setting

CHOICES = ("auto", "tqdm", "log", "off")
_active: Any = None  # the collector of the load running in this process, when it shows progress


def choice() -> tuple[str, float]:
    """(how progress is shown: tqdm, log or off; after how many seconds), from the environment."""
    chosen = (os.environ.get("ELT_PROGRESS") or "auto").strip().lower()
    if chosen not in CHOICES:
        raise ConfigurationError(f"ELT_PROGRESS must be one of {', '.join(CHOICES)}, not {chosen!r}")
    after = number_setting("ELT_PROGRESS_AFTER_SECONDS", 3.0)
    if chosen == "auto":
        chosen = "tqdm" if sys.stderr.isatty() else "off"
    return chosen, after


def collector() -> Any:
    """The progress collector for the next load (``dlt.pipeline(progress=...)``), or None for none."""
    import dlt

    chosen, after = choice()
    if chosen == "tqdm":
        return dlt.progress.tqdm(delay=after, file=sys.stderr, dynamic_ncols=True)
    if chosen == "log":
        return dlt.progress.log(log_period=max(after, 1.0), logger=sys.stderr, dump_system_stats=False)
    return None


@contextmanager
def showing(progress: Any) -> Iterator[None]:
    """Route :func:`count` to ``progress`` for the duration of one load."""
    global _active
    _active = progress
    try:
        yield
    finally:
        _active = None


def count(name: str, inc: int = 1) -> None:
    """Advance the counter ``name`` (``pages``, ``downloads``, ``files``) of the load shown now; nothing
    when none is shown."""
    if _active is not None:
        _active.update(name, inc)
