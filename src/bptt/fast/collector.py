"""Python's cyclic garbage collector held off for a section of the fast backend's set-up: its
imports and each kernel's loading or compiling (fast/ahead.py), where Numba makes hundreds of
thousands of objects that a full collection would traverse, one or more times."""
from __future__ import annotations

import contextlib
import gc
import threading

_state = {"depth": 0, "was": False}
_lock = threading.Lock()


@contextlib.contextmanager
def held():
    """A section in which Python's cyclic garbage collector does not run: the fast backend's
    imports and each kernel's loading or compiling. Numba makes hundreds of thousands of objects,
    and a full collection traverses them all: on a cold cache, two to four collections cost 0.05 to
    0.1 s of a first gradient's second (docs/performance.md). Reference counting frees what it
    always frees; the collector is set back as it was when the outermost section ends."""
    with _lock:
        if _state["depth"] == 0:
            _state["was"] = gc.isenabled()
            gc.disable()
        _state["depth"] += 1
    try:
        yield
    finally:
        with _lock:
            _state["depth"] -= 1
            if _state["depth"] == 0 and _state["was"]:
                gc.enable()
