"""Progress lines for long work in a terminal: what runs now, and a heartbeat while it runs.

A command that runs stages of unknown length (a method of bptt approx, a framework's import and
cases) says on stderr which stage starts, and every HEARTBEAT seconds while it lasts how long it has
run, so that no command is silent for long:

    with Stages("bptt approx") as stage:
        stage("RTRL (O(S^2 P) a step)")
        ...
        stage("UORO")

prints "bptt approx: RTRL (O(S^2 P) a step)...", then "bptt approx: RTRL (O(S^2 P) a step), 4 s..."
and so on, each line flushed.
"""
from __future__ import annotations

import sys
import threading
import time

HEARTBEAT = 4.0  # seconds between the lines of a stage that goes on


class Stages:
    """A context that says each stage as it starts and keeps saying that it runs (see the module's
    notes). say: where the lines go (a function of one line; stderr by default)."""

    def __init__(self, prefix, say=None, every=HEARTBEAT):
        self.prefix, self.every = prefix, every
        self.say = say or (lambda line: print(line, file=sys.stderr, flush=True))
        self.name, self.started = None, None
        self._lock, self._stop = threading.Lock(), threading.Event()
        self._beat = threading.Thread(target=self._run, name="bptt-progress", daemon=True)

    def __enter__(self):
        self._beat.start()
        return self

    def __call__(self, name):
        """Start a stage: say its name now."""
        with self._lock:
            self.name, self.started = name, time.monotonic()
        self.say(f"{self.prefix}: {name}...")

    def __exit__(self, *exc):
        self._stop.set()
        self._beat.join()
        return False

    def _run(self):
        last = time.monotonic()
        while not self._stop.wait(0.2):
            with self._lock:
                name, started = self.name, self.started
            now = time.monotonic()
            if name is not None and now - max(last, started) >= self.every:
                self.say(f"{self.prefix}: {name}, {now - started:.0f} s...")
                last = now
