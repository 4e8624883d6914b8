"""Test harness, not product: SIGKILL this process at a chosen point, as the OOM killer or `kill -9` would.

``tests/test_operations.py`` puts this folder on ``PYTHONPATH`` of the ``elt`` processes it kills, with
``ELT_TEST_KILL_AT=module:Qualified.name:N``: the process kills itself right after the N-th call of that
function returns (on whatever thread made it). No cleanup runs: no ``finally``, no ``atexit``.
"""

from __future__ import annotations

import functools
import importlib
import os
import signal
import threading

_spec = os.environ.get("ELT_TEST_KILL_AT")
if _spec:
    _module_name, _qualname, _count = _spec.split(":")
    _owner = importlib.import_module(_module_name)
    *_path, _name = _qualname.split(".")
    for _part in _path:
        _owner = getattr(_owner, _part)
    _original = getattr(_owner, _name)
    _calls = {"n": 0}
    _lock = threading.Lock()

    @functools.wraps(_original)
    def _killing(*args, **kwargs):
        result = _original(*args, **kwargs)
        with _lock:
            _calls["n"] += 1
            if _calls["n"] == int(_count):
                os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(_owner, _name, _killing)
