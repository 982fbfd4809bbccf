"""Run a command while watching for silence: its stdout and stderr are read as they come, each
chunk stamped, and the longest gap between the start, the chunks and the end is measured.

The clock starts when the process starts, not at its first byte: a command that prints nothing
until it is done must count as silent for all that time, which a clock started at the first byte
would hide. The interpreter's own start and `import bptt` sit inside the first gap; they take a
fraction of a second (tests/test_imports.py keeps `import bptt` light, the heavy frameworks load
inside the functions that use them), and what follows them is the command's to fill: long work says
what it does on stderr (bptt.progress), every HEARTBEAT seconds, well under GAP, so a loaded machine
that runs everything two or three times slower still keeps each gap under GAP. The heartbeats are
clocked by a thread, not by units of work, so a slower machine does not stretch them.

    got = watched([sys.executable, "-c", code], cwd=folder)
    got.stdout, got.stderr, got.returncode   # as subprocess.run(..., text=True) gives them
    got.gap, got.at, got.before              # the longest silence, when it began, what was printed last
"""
from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import dataclass

GAP = 5.0  # seconds: the longest a documented command may go without printing anything


@dataclass(frozen=True)
class Watched:
    returncode: int
    stdout: str
    stderr: str
    gap: float     # the longest silence, in seconds (start to first chunk, chunk to chunk, last chunk to end)
    at: float      # when that silence began, in seconds after the start
    before: str    # the last line printed before it ("" when it began at the start)
    timed_out: bool = False


def watched(args, *, cwd=None, env=None, shell=False, timeout=600) -> Watched:
    """Run args (a list, or a string with shell=True) with both pipes read by threads as the bytes come."""
    start = time.monotonic()
    proc = subprocess.Popen(args, cwd=cwd, env=env, shell=shell, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            executable="/bin/bash" if shell else None)
    lock, chunks = threading.Lock(), []  # (time, which pipe, bytes)

    def read(stream, which):
        while True:
            data = stream.read1(65536)
            if not data:
                return
            with lock:
                chunks.append((time.monotonic(), which, data))

    readers = [threading.Thread(target=read, args=(proc.stdout, 1), daemon=True),
               threading.Thread(target=read, args=(proc.stderr, 2), daemon=True)]
    for r in readers:
        r.start()
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        timed_out = True
    for r in readers:
        r.join()
    end = time.monotonic()
    proc.stdout.close()
    proc.stderr.close()
    stamps = [(start, b"")] + [(t, data) for t, _, data in chunks] + [(end, b"")]
    gap, at, before = 0.0, 0.0, ""
    for (t0, data0), (t1, _) in zip(stamps, stamps[1:]):
        if t1 - t0 > gap:
            gap, at = t1 - t0, t0 - start
            before = _last_line(b"".join(d for t, d in stamps if t <= t0))
    text = {w: b"".join(d for _, which, d in chunks if which == w).decode(errors="replace") for w in (1, 2)}
    return Watched(proc.returncode, text[1], text[2], gap, at, before, timed_out)


def _last_line(data: bytes) -> str:
    lines = [l for l in data.decode(errors="replace").replace("\r", "\n").splitlines() if l.strip()]
    return lines[-1].strip()[:120] if lines else ""


def silence(got: Watched, what: str) -> str:
    """A sentence for a failure: what ran, how long it was silent, from when, after which line."""
    after = f"after the line {got.before!r}" if got.before else "from its start"
    return (f"{what} printed nothing for {got.gap:.1f} s (more than {GAP:.0f} s), {after}, {got.at:.1f} s in: "
            "long work says what it does on stderr (bptt.progress)")
