"""A first run that compiles says so at a terminal: bptt demo in a pseudo-terminal with an empty
Numba cache never goes 5 s without a line, and a compile that lasts says that it compiles."""
import os
import pty
import select
import subprocess
import sys
import time


def test_a_cold_demo_at_a_terminal_says_that_it_compiles_and_is_never_silent_for_5_s(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}  # an empty cache: every kernel compiles
    main, sub = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "bptt.cli", "demo", "--frameworks", "none"], stdin=sub,
                            stdout=sub, stderr=sub, env=env, close_fds=True)
    os.close(sub)
    text, last, gaps = b"", time.monotonic(), []
    while True:
        ready, _, _ = select.select([main], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            now = time.monotonic()
            if b"\n" in chunk:
                gaps.append(now - last)
                last = now
            text += chunk
        elif proc.poll() is not None:
            break
    os.close(main)
    assert proc.wait(timeout=60) == 0, text.decode(errors="replace")[-2000:]
    out = text.decode(errors="replace")
    assert "all checks passed" in out
    assert max(gaps) < 5.0, gaps
    if "bptt: compiling" in out:  # compiling took more than a second here: it said so, and when it ended
        assert "bptt: compiling the fast backend's kernels for this machine, once..." in out
        assert "bptt: compiled in" in out


def test_a_compile_that_lasts_is_said_and_so_is_its_end():
    from types import SimpleNamespace

    from bptt.fast import numerics
    from bptt.fast.compiling import Announcer

    lines = []
    announcer = Announcer(say=lines.append)
    ours = SimpleNamespace(data={"dispatcher": SimpleNamespace(py_func=numerics.softmax_error.py_func)})
    theirs = SimpleNamespace(data={"dispatcher": SimpleNamespace(py_func=len)})
    announcer.on_start(theirs)  # another library's compile: not ours to announce
    announcer.on_end(theirs)
    time.sleep(0.2)
    assert lines == []
    announcer.on_start(ours)
    time.sleep(1.4)
    announcer.on_end(ours)
    deadline = time.monotonic() + 20  # the watcher thread closes it IDLE s later, later on a busy machine
    while not (lines and lines[-1].startswith("bptt: compiled in")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lines[0] == "bptt: compiling the fast backend's kernels for this machine, once..."
    assert lines[-1] == "bptt: compiled in 1 s (cached: later runs load them at once)"
    assert all(line.startswith("bptt: still compiling") for line in lines[1:-1])  # a watcher kept waiting
