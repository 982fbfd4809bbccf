"""What a call says while Numba compiles the kernels it needs: once compiling (one kernel after
another, with gaps under IDLE seconds) has gone on for FIRST_WORD seconds, a line on stderr, then
one every HEARTBEAT seconds until it stops, and how long it took.

A kernel is compiled the first time a call needs it on a machine; Numba keeps the machine code in
its cache, so later processes load it in milliseconds and nothing is said. The lines go to stderr,
a terminal's or a pipe's alike (as all of bptt's progress does, bptt.progress: a log shows why a
cold run waited; stdout, which holds the results, is the same every time). The lines name no
kernel: they tell a user who waits why (docs/performance.md gives the cold and warm figures).
"""
from __future__ import annotations

import atexit
import sys
import threading
import time

from numba.core import event

FIRST_WORD = 1.0  # seconds of compiling before the first line
HEARTBEAT = 2.0  # seconds between the lines after it (bptt.progress.HEARTBEAT)
IDLE = 0.5  # seconds without a compile after which compiling has stopped


class Announcer(event.Listener):
    """A Numba listener of "numba:compile" for bptt's own functions; a watcher thread while they compile."""

    def __init__(self, say=None):
        self.say = say or _to_stderr
        self.lock = threading.Lock()
        self.depth, self.since, self.last, self.watching, self.said = 0, 0.0, 0.0, False, False

    def on_start(self, ev):
        if _ours(ev):
            self.busy(True)

    def on_end(self, ev):
        if _ours(ev):
            self.busy(False)

    def busy(self, starts: bool):
        """A compile (or a wait for one another process runs: ahead.py) starts, or ends."""
        with self.lock:
            now = time.monotonic()
            if not starts:
                self.depth -= 1
                self.last = now
                return
            if not self.watching:
                self.since, self.watching = now, True
                threading.Thread(target=self._watch, name="bptt-compiling", daemon=True).start()
            self.depth += 1

    def finish(self):
        """At exit: the closing line of a compile that was announced and had not been closed yet."""
        with self.lock:
            if self.watching and self.said:
                self.watching = False
                self.say(f"bptt: compiled in {self.last - self.since:.0f} s (cached: later runs load them at once)")

    def _watch(self):
        said_at = None
        while True:
            time.sleep(0.1)
            with self.lock:
                now = time.monotonic()
                if not self.watching:  # closed at exit
                    return
                if self.depth == 0 and now - self.last >= IDLE:  # compiling has stopped
                    self.watching, self.said = False, False
                    took = self.last - self.since
                    break
                busy = now - self.since
            if said_at is None and busy >= FIRST_WORD:
                self.said = True
                self.say("bptt: compiling the fast backend's kernels for this machine, once...")
                said_at = now
            elif said_at is not None and now - said_at >= HEARTBEAT:
                self.say(f"bptt: still compiling, {busy:.0f} s...")
                said_at = now
        if said_at is not None:
            self.say(f"bptt: compiled in {took:.0f} s (cached: later runs load them at once)")


def _to_stderr(line):
    """Print the line on stderr, flushed."""
    print(line, file=sys.stderr, flush=True)


def _ours(ev) -> bool:
    """Whether a compile event is of one of bptt's functions."""
    fn = getattr((ev.data or {}).get("dispatcher"), "py_func", None)
    return getattr(fn, "__module__", "").startswith("bptt.")


ANNOUNCER = Announcer()
_installed = []


def install():
    """Listen to Numba's compilations from now on (once per process)."""
    if not _installed:
        event.register("numba:compile", ANNOUNCER)
        atexit.register(ANNOUNCER.finish)
        _installed.append(ANNOUNCER)
