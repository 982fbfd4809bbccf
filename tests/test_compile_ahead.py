"""fast/ahead.py: a cold gradients() call names the kernels it will run, and a forked process
compiles some of them into Numba's cache while this one compiles the others. The names must be
the kernels the call really compiles (else the other process's work is wasted), and the numbers
must be those of the same call with that process turned off (BPTT_COMPILE_AHEAD=0) and of a warm
process. Each run is a fresh process with an empty Numba cache (subprocess)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import need

SRC = Path(__file__).resolve().parents[1] / "src"

# the kernels each Elman call compiles (serially: the process that compiles ahead is off), and the
# ones the call named to ahead.expect that the process had not compiled before it
NAMED = """
import json
import numpy as np
from numba.core import event
import bptt
from bptt.fast import ahead, driver

driver._registered()
named, compiled, depth = [], [], [0]
expect = ahead.expect
ahead.expect = lambda kernels: (named.append([(d.py_func.__qualname__, str(tuple(s))) for d, s in kernels
                                             if tuple(s) not in d.overloads]), expect(kernels))  # not compiled yet

class Compiled(event.Listener):
    def on_start(self, ev):
        if depth[0] == 0 and ev.data["dispatcher"].py_func.__module__.startswith("bptt."):
            compiled[-1].append((ev.data["dispatcher"].py_func.__qualname__, str(tuple(ev.data["args"]))))
        depth[0] += 1
    def on_end(self, ev):
        depth[0] -= 1

event.register("numba:compile", Compiled())
cases = []
for act, dtype, N, T, H, O, dense in (("tanh", np.float32, 32, 100, 128, 64, False),
                                      ("tanh", np.float64, 1, 20, 64, 8, False),
                                      ("relu", np.float64, 4, 30, 40, 6, True),
                                      ("sigmoid", np.float32, 8, 12, 16, 5, False)):
    rng = np.random.default_rng(0)
    D = 7 if dense else O
    m = bptt.random_rnn(H, D, O, seed=1, dtype=dtype, activation=act)
    x = rng.standard_normal((N, T, D)) if dense else rng.integers(0, O, (N, T))
    named.clear()
    compiled.append([])
    bptt.gradients(m, x, rng.integers(0, O, (N, T)))
    cases.append({"named": [k for ks in named for k in ks], "compiled": compiled[-1]})
print(json.dumps(cases))
"""

# the Elman gradients of the startup benchmark, both dtypes, hashed; and whether the other process
# ran (its kernels came from the cache) where ahead.py is on
RESULTS = """
import hashlib, json
import numpy as np
import bptt
from bptt.fast import ahead, elman, numerics

out = {}
for dtype in (np.float32, np.float64):
    rng = np.random.default_rng(0)
    m = bptt.random_rnn(128, 64, 64, seed=rng, dtype=dtype)
    x, y = rng.integers(0, 64, (32, 100)), rng.integers(0, 64, (32, 100))
    loss, g = bptt.gradients(m, x, y)
    out[np.dtype(dtype).name] = hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in
                                                        [np.float64(loss), *g.params.values(), g.h0])).hexdigest()
kernels = [numerics.softmax_error, numerics.scatter_rows]
kernels += [k for per in (elman.forward_steps_blas, elman.backward_steps_blas) for k in per.made.values()]
out["from the cache"] = sum(sum(k._cache_hits.values()) for k in kernels)  # loaded, not compiled
out["enabled"] = ahead.enabled()
run = ahead._state["run"]
out["child left"] = run is not None and run.running(block=True)  # ended once waited for: None left after
print(json.dumps(out))
"""


def _run(code, tmp_path, name, **env):
    full = dict(os.environ, PYTHONPATH=str(SRC), NUMBA_CACHE_DIR=str(tmp_path / name), **env)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=900)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_call_names_the_kernels_it_compiles(tmp_path):
    need("numba")
    cases = _run(NAMED, tmp_path, "serial", BPTT_COMPILE_AHEAD="0")
    assert len(cases) == 4
    for case in cases:
        assert case["compiled"], case  # a cold cache: the call compiled its kernels
        assert [tuple(k) for k in case["named"]] == [tuple(k) for k in case["compiled"]]


def test_compiling_ahead_gives_the_serial_compiles_bits_and_the_warm_ones(tmp_path):
    need("numba")
    ahead = _run(RESULTS, tmp_path, "ahead")
    serial = _run(RESULTS, tmp_path, "serial", BPTT_COMPILE_AHEAD="0")
    warm = _run(RESULTS, tmp_path, "ahead")  # the cache the first process and its helper wrote
    for key in ("float32", "float64"):
        assert ahead[key] == serial[key] == warm[key], key
    assert ahead["child left"] is False
    if ahead["enabled"]:  # two cores, Linux: some kernels came from the other process
        assert ahead["from the cache"] >= 1
    assert serial["from the cache"] == 0
    assert warm["from the cache"] == 8  # four kernels a dtype


# a call that names a kernel with types it cannot compile for (and one it never runs) still runs,
# with the bits of a serial compile
WRONG = """
import hashlib, json
import numpy as np
import bptt
from bptt.fast import ahead, driver, elman, numerics

driver._registered()
kernels = elman.Elman.kernels
wrong = (numerics.softmax_error, (ahead.array(np.float32, 3),) * 4)
never = (numerics.scatter_rows, (ahead.array(np.int64, 1), ahead.array(np.float64, 2), ahead.array(np.float64, 2)))
elman.Elman.kernels = staticmethod(lambda model, N, threaded: (lambda fw, bw: ([wrong] + fw, [never] + bw))(
    *kernels(model, N, threaded)))
rng = np.random.default_rng(0)
m = bptt.random_rnn(128, 64, 64, seed=rng, dtype=np.float32)
x, y = rng.integers(0, 64, (32, 100)), rng.integers(0, 64, (32, 100))
loss, g = bptt.gradients(m, x, y)
print(json.dumps({"float32": hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in
                                                     [np.float64(loss), *g.params.values(), g.h0])).hexdigest()}))
"""


def test_a_kernel_named_wrongly_costs_nothing_but_time(tmp_path):
    need("numba")
    assert _run(WRONG, tmp_path, "wrong")["float32"] == _run(RESULTS, tmp_path, "serial", BPTT_COMPILE_AHEAD="0")["float32"]


def test_a_stuck_other_process_is_ended_and_this_one_goes_on(tmp_path, monkeypatch):
    """The other process holds a kernel and never finishes it (stuck, say, on a lock a thread held
    when the process forked): after WAIT_MAX this process ends it and compiles the kernel itself."""
    need("numba")
    import time

    from bptt.fast import ahead

    stuck = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        folder = tmp_path / "claims"
        folder.mkdir()
        run = ahead.Run(stuck.pid, str(folder), [(None, ()), (None, ())])
        assert run.claim(0)  # this process's claim of 0 ...
        (folder / "1").touch()  # ... and the other's of 1, which it never finishes
        monkeypatch.setattr(ahead, "WAIT_MAX", 0.3)
        t = time.monotonic()
        run.wait_for(1)
        assert time.monotonic() - t < 10
        assert not run.running() and not folder.exists()  # ended, reaped, its files removed
        with pytest.raises(ProcessLookupError):
            os.kill(stuck.pid, 0)
    finally:
        stuck.kill()
        stuck.wait()


def test_no_fork_beside_a_threaded_framework():
    """With JAX (or PyTorch, TensorFlow) loaded the process never forks: their threads could hold a
    lock the copy needs, and JAX warns of it on stderr."""
    from bptt.fast import ahead

    saved = sys.modules.get("jax")
    sys.modules["jax"] = saved or type(sys)("jax")
    try:
        assert not ahead.enabled()
    finally:
        if saved is None:
            del sys.modules["jax"]


# the collector while the kernels import, load and compile: off (its full collections traverse
# Numba's objects), and afterwards as the caller had it, on or off
COLLECTOR = """
import gc, json
import numpy as np
from numba.core import event
import bptt

during = []

class Compiling(event.Listener):
    def on_start(self, ev):
        if ev.data["dispatcher"].py_func.__module__.startswith("bptt."):
            during.append(gc.isenabled())
    def on_end(self, ev):
        pass

event.register("numba:compile", Compiling())
x = np.random.default_rng(0).integers(0, 5, (4, 12))
bptt.gradients(bptt.random_rnn(16, 5, 5, seed=0), x, x)
on_after = gc.isenabled()
gc.disable()
bptt.gradients(bptt.random_rnn(16, 5, 5, seed=0, activation="relu"), x, x)
print(json.dumps({"during": during, "on_after": on_after, "off_after": gc.isenabled()}))
"""


def test_the_garbage_collector_is_held_off_while_kernels_compile_and_set_back_after(tmp_path):
    need("numba")
    for ahead in ("0", "1"):  # this process compiles all of them, or some (the other process the rest)
        got = _run(COLLECTOR, tmp_path, f"cache-{ahead}", BPTT_COMPILE_AHEAD=ahead)
        assert got["during"] and not any(got["during"]), got
        assert got["on_after"] is True and got["off_after"] is False, got
