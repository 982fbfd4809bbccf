"""Progress lines for long work, on stderr: what runs now, and a heartbeat while it runs, so that
no command goes more than a few seconds without a line (tests/test_docs.py watches every documented
command for a silence over 5 s).

A command that runs stages of unknown length (a method of bptt approx, a framework's import and
cases) says on stderr which stage starts, and every HEARTBEAT seconds while it lasts how long it has
run:

    with Stages("bptt approx") as stage:
        stage("RTRL (O(S^2 P) a step)")
        ...
        stage("UORO")

prints "bptt approx: RTRL (O(S^2 P) a step)...", then "bptt approx: RTRL (O(S^2 P) a step), 2 s..."
and so on, each line flushed. With delay=D a stage says nothing until it has lasted D seconds (a
library function that is usually quick, bptt.check or bptt.compare, stays quiet then); a delayed
Stages inside another one leaves the talking to the outer one. The heartbeat is a thread's, so it
keeps its pace however long one unit of work takes.

Work counted in units (steps, parts, sequences) shows bar(total, desc, unit): a tqdm bar in a
terminal; on a pipe or a log file (stderr not a terminal), or when asked to be quiet, plain lines
"desc: 40/200 steps, 6 s..." every HEARTBEAT seconds instead, so a log shows that the work goes on
without a bar's carriage returns. The lines go to the stderr the process had when they started,
even while a framework's import holds file descriptor 2 (bptt.frameworks.tensorflow does).

leave(code) ends a command line's process without the frameworks' teardown, which is seconds of
silence after its last line once TensorFlow or PyTorch is loaded.
"""
from __future__ import annotations

import os
import sys
import threading
import time

HEARTBEAT = 2.0  # seconds between the lines of a stage that goes on
_ACTIVE = threading.Lock()


def stderr_lines():
    """A function of one line that writes it, flushed, to the stderr of now: to a copy of file
    descriptor 2 where sys.stderr has one (so that a later redirection of fd 2 does not swallow it),
    else (a captured sys.stderr) through print. Returns (say, close): close() closes the copy."""
    try:
        sys.stderr.flush()
        fd = os.dup(sys.stderr.fileno())
    except (AttributeError, OSError, ValueError):
        return (lambda line: print(line, file=sys.stderr, flush=True)), (lambda: None)
    stream = os.fdopen(fd, "w", buffering=1, errors="replace")
    return (lambda line: (stream.write(line + "\n"), stream.flush())), stream.close


class Stages:
    """A context that says each stage as it starts and keeps saying that it runs (see the module's
    notes). say: where the lines go (a function of one line; stderr by default)."""

    def __init__(self, prefix, say=None, every=HEARTBEAT, delay=0.0):
        self.prefix, self.every, self.delay = prefix, every, delay
        self.say, self._close = (say, lambda: None) if say else stderr_lines()
        self.name, self.started, self._said, self._muted = None, None, False, False
        self._lock, self._stop = threading.Lock(), threading.Event()
        self._beat = threading.Thread(target=self._run, name="bptt-progress", daemon=True)

    _active = 0  # Stages entered and not left: a delayed one inside another stays quiet, the outer one speaks

    def __enter__(self):
        with _ACTIVE:
            self._muted = bool(self.delay) and Stages._active > 0
            Stages._active += 1
        if not self._muted:
            self._beat.start()
        return self

    def __call__(self, name):
        """Start a stage: say its name now (with a delay: once it has lasted that long)."""
        with self._lock:
            self.name, self.started, self._said = name, time.monotonic(), not self.delay
        if not self.delay and not self._muted:
            self.say(f"{self.prefix}: {name}...")

    def set(self, name):
        """Rename the stage that runs (the next heartbeat says the new name); its clock goes on."""
        with self._lock:
            if self.started is None:
                self.started = time.monotonic()
            self.name = name

    def __exit__(self, *exc):
        self._stop.set()
        if not self._muted:
            self._beat.join()
        with _ACTIVE:
            Stages._active -= 1
        self._close()
        return False

    def _run(self):
        last = time.monotonic()
        while not self._stop.wait(0.1):
            with self._lock:
                name, started, said = self.name, self.started, self._said
            now = time.monotonic()
            if name is None:
                continue
            if not said:
                if now - started >= self.delay:
                    self.say(f"{self.prefix}: {name}, {now - started:.0f} s...")
                    self._said, last = True, now
            elif now - max(last, started) >= self.every:
                self.say(f"{self.prefix}: {name}, {now - started:.0f} s...")
                last = now


class Lines:
    """bar()'s stand-in off a terminal: tqdm's update / set_postfix / close, said as plain lines on
    stderr every HEARTBEAT seconds (after `delay` s) by a Stages heartbeat."""

    def __init__(self, total, desc, unit, initial=0, delay=1.0, every=HEARTBEAT):
        self.n, self.total, self.unit, self.postfix = initial, total, unit, ""
        self._stages = Stages(desc, every=every, delay=delay).__enter__()
        self._stages(self._text())

    def _text(self):
        count = f"{self.n}/{self.total}" if self.total is not None else f"{self.n}"
        return f"{count} {self.unit}s{self.postfix}"

    def update(self, n=1):
        self.n += n
        if self._stages is not None:
            self._stages.set(self._text())

    def set_postfix(self, values=None, refresh=True, **more):
        self.postfix = "".join(f", {k}={v}" for k, v in {**dict(values or {}), **more}.items())
        if self._stages is not None:
            self._stages.set(self._text())

    def set_postfix_str(self, text, refresh=True):
        self.postfix = f", {text}" if text else ""
        if self._stages is not None:
            self._stages.set(self._text())

    def close(self):
        """Stop the heartbeat; where anything was said, say where the work ended (as a bar's last state)."""
        stages, self._stages = self._stages, None
        if stages is None:
            return
        stages._stop.set()
        if stages._said and not stages._muted:
            stages.say(f"{stages.prefix}: {self._text()}, {time.monotonic() - stages.started:.0f} s")
        stages.__exit__(None, None, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _in_notebook() -> bool:
    """Whether this code runs in a Jupyter kernel (IPython's shell of one), not merely in a process
    that has imported ipykernel (a test suite that runs notebooks does)."""
    ipython = sys.modules.get("IPython")
    try:
        shell = ipython.get_ipython() if ipython is not None else None
    except Exception:  # noqa: BLE001 - an IPython too old or half imported: no notebook
        return False
    return type(shell).__name__ == "ZMQInteractiveShell"


def bar(total, desc, unit="it", *, initial=0, quiet=False, delay=1.0, **tqdm_options):
    """A progress bar for `total` units of work: tqdm in a terminal, plain lines on stderr elsewhere
    or when quiet (no bar: after `delay` seconds, then every HEARTBEAT seconds).
    Both have .n, .update(n), .set_postfix(dict, refresh=False), .set_postfix_str(text), .close() and work
    as a context."""
    if not quiet and (sys.stderr.isatty() or _in_notebook()):
        from tqdm.auto import tqdm
        return tqdm(total=total, desc=desc, unit=unit, initial=initial, delay=delay, **tqdm_options)
    return Lines(total, desc, unit, initial=initial, delay=delay)


HEAVY = ("tensorflow", "torch", "jax")  # frameworks whose teardown at exit takes seconds, silent


def leave(code: int) -> int:
    """The last call of a command line (`bptt`, `python -m bptt.frameworks`): when a heavy framework
    was imported, end the process now with exit status code, after the atexit handlers and a flush
    of stdout and stderr, skipping the frameworks' own teardown (TensorFlow's alone lasts seconds
    after the last line, with nothing said); otherwise return code for sys.exit."""
    if not any(name in sys.modules for name in HEAVY):
        return code
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
