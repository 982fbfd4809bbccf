"""Run a command while watching for silence: its stdout and stderr are read as they come, each
chunk stamped, and the longest gap between the start, the chunks and the end is measured.

What counts. A command (a ```sh line: `bptt ...`, `python -m bptt...`) is watched from the moment
its process starts to the moment it ends: the first byte may come late, and a clock started there
would hide a command that prints nothing until it is done; and all of it is bptt's, its imports of
the frameworks (announced, bptt.progress) and its exit (bptt.progress.leave) included. A python
block is a user's script: its own leading import lines (`import torch` takes seconds on any
machine, in any script, before a line of bptt runs) and the interpreter's teardown after its last
statement (TensorFlow's lasts seconds) are Python's and the frameworks', not bptt's to report on,
so the test marks the block's start after its leading imports and its end after its last
statement (marked(code) writes a byte to the file descriptor WATCH_FD names; watched(...,
marks=True) opens it) and the clock runs between the marks. The interpreter's own start and
`import bptt` sit inside the first gap of a command; they take a fraction of a second
(tests/test_imports.py keeps `import bptt` light). Python's stdout is unbuffered
(PYTHONUNBUFFERED=1, as the docs test sets it), so lines arrive when printed, as in a terminal.

Long work fills the gaps itself: it says what it does on stderr (bptt.progress) every HEARTBEAT =
2 s, well under GAP, clocked by a thread rather than by units of work, so a loaded 2-core machine
that runs everything two or three times slower still keeps each gap under GAP.

    got = watched([sys.executable, "-c", code], cwd=folder)
    got.stdout, got.stderr, got.returncode   # as subprocess.run(..., text=True) gives them
    got.gap, got.at, got.before              # the longest silence, when it began, what was printed last
"""
from __future__ import annotations

import ast
import os
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


def marked(code: str) -> str:
    """A python block with its start marked after its leading import lines and its end after its last line."""
    body = ast.parse(code).body
    lines = code.splitlines()
    lead = 0
    for stmt in body:
        if not isinstance(stmt, (ast.Import, ast.ImportFrom)):
            break
        if any(other is not stmt and other.lineno <= stmt.end_lineno and other.end_lineno >= stmt.lineno
               and not isinstance(other, (ast.Import, ast.ImportFrom)) for other in body):
            break  # an import sharing its line with other code (import sys; sys.path...): the block starts there
        lead = stmt.end_lineno
    mark = "__import__('os').write(int(__import__('os').environ['WATCH_FD']), b'{}')"
    return "\n".join(lines[:lead] + [mark.format("s")] + lines[lead:] + [mark.format("e")]) + "\n"


def watched(args, *, cwd=None, env=None, shell=False, timeout=600, marks=False) -> Watched:
    """Run args (a list, or a string with shell=True) with both pipes read by threads as the bytes come;
    marks: the clock runs between the bytes s and e written to the descriptor WATCH_FD names."""
    mark_r = mark_w = None
    if marks:
        mark_r, mark_w = os.pipe()
        env = {**(os.environ if env is None else env), "WATCH_FD": str(mark_w)}
    start = time.monotonic()
    proc = subprocess.Popen(args, cwd=cwd, env=env, shell=shell, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            executable="/bin/bash" if shell else None, pass_fds=(mark_w,) if marks else ())
    if marks:
        os.close(mark_w)
    lock, chunks = threading.Lock(), []  # (time, which pipe, bytes); pipe 3: the marks

    def read(stream, which):
        while True:
            data = stream.read1(65536)
            if not data:
                return
            with lock:
                chunks.append((time.monotonic(), which, data))

    readers = [threading.Thread(target=read, args=(proc.stdout, 1), daemon=True),
               threading.Thread(target=read, args=(proc.stderr, 2), daemon=True)]
    if marks:
        readers.append(threading.Thread(target=read, args=(os.fdopen(mark_r, "rb"), 3), daemon=True))
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
    given = b"".join(d for _, which, d in chunks if which == 3)
    first = next((t for t, which, _ in chunks if which == 3), start) if b"s" in given else start
    last = ([t for t, which, _ in chunks if which == 3][-1]) if b"e" in given else end
    said = [(t, data) for t, which, data in chunks if which != 3]
    stamps = [(first, b"".join(d for t, d in said if t <= first))] + [(t, d) for t, d in said if first < t < last] \
        + [(last, b"")]
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
