"""Virtual time for a command subprocess: put this folder on PYTHONPATH and sleeping costs nothing.

Python imports ``sitecustomize`` at start-up. Here ``time.sleep`` advances an offset that
``time.time`` and ``time.monotonic`` add, so a command that honours ``Retry-After: 30`` or backs
off really does wait 30 seconds *of its own time*, and the test still runs at full speed. The
total of those sleeps is written to ``$VIRTUAL_TIME_REPORT`` at exit for tests to assert on.
"""

import atexit
import json
import os
import threading
import time
from pathlib import Path

_lock = threading.Lock()
_offset = [0.0]
_sleeps: list = []
_real_time = time.time
_real_monotonic = time.monotonic


def _virtual_sleep(seconds):
    with _lock:
        if seconds > 0:
            _offset[0] += seconds
        _sleeps.append(seconds)


def _virtual_time():
    return _real_time() + _offset[0]


def _virtual_monotonic():
    return _real_monotonic() + _offset[0]


def _report():
    path = os.environ.get("VIRTUAL_TIME_REPORT")
    if path:
        Path(path).write_text(json.dumps({"sleeps": _sleeps, "total": _offset[0]}), encoding="utf-8")


time.sleep = _virtual_sleep
time.time = _virtual_time
time.monotonic = _virtual_monotonic
atexit.register(_report)
