"""The fast backend gives the same bits for the same call, whatever ran before it in the process
and whatever Numba had compiled or cached: the first call of a fresh process with an empty Numba
cache, a later process with the cache warm, and the same calls repeated in one process agree
byte for byte (Elman, LSTM, GRU and the cells whose step is linear in their state, float32 and
float64, one sequence of a few units and a batch large enough for the other loops; and 2-layer
bidirectional stacks of the LSTM, the GRU and the LRU, whose larger size runs the two directions
of a layer at once). Without the JIT, or without a writable cache, every call
still runs and gives the same numbers. Each run is a fresh process (subprocess), as a user's is.
"""
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import bptt
from conftest import need

SRC = Path(__file__).resolve().parents[1] / "src"

# every entry point, each cell, both dtypes, a small and a medium size; prints {case: sha256}
SCRIPT = """
import hashlib, json, sys
import numpy as np
import bptt
import bptt
from bptt.model import random_gated

def digest(*arrays):
    return hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)).hexdigest()

def run():
    out = {}
    for cell in ("elman", "lstm", "gru", "gru-before", "lru", "mingru", "minlstm", "linear"):
        for dtype in (np.float32, np.float64):
            for N, T, H in ((1, 7, 5), (32, 40, 96)):
                rng = np.random.default_rng([N, H])
                if cell == "elman":
                    m = bptt.random_rnn(H, 6, 6, seed=1, dtype=dtype)
                elif cell in ("lstm", "gru", "gru-before"):
                    m = random_gated(cell.split("-")[0], H, 6, 6, seed=1, dtype=dtype, reset_after=cell != "gru-before")
                else:
                    m = bptt.random_model(cell, H, 6, 6, seed=1, dtype=dtype)
                x, y = rng.integers(0, 6, (N, T)), rng.integers(-1, 6, (N, T))
                loss, g = bptt.gradients(m, x, y)
                trace = bptt.forward(m, x)
                lb, gb = bptt.backward(trace, y)
                lk, gk = bptt.gradients(m, x, y, truncate=3)
                arrays = [np.float64(loss), np.float64(lb), np.float64(lk), np.float64(bptt.loss(m, x, y))]
                arrays += [*g.params.values(), *g.state0, *gb.params.values(), *gk.params.values()]
                arrays += [trace.states, trace.q]
                if m.cell.linear():
                    lp, gp = bptt.gradients(m, x, y, scan="parallel")
                    arrays += [np.float64(lp), *gp.params.values(), *gp.state0]
                out[f"{cell} {np.dtype(dtype).name} N={N} H={H}"] = digest(*arrays)
    for cell in ("lstm", "gru", "lru"):  # 2-layer bidirectional stacks (the larger: the directions at once)
        for dtype in (np.float32, np.float64):
            for N, T, H in ((1, 7, 5), (32, 40, 96)):
                rng = np.random.default_rng([N, H])
                s = bptt.random_stack(cell, H, 6, 6, layers=2, bidirectional=True, seed=1, dtype=dtype)
                x, y = rng.integers(0, 6, (N, T)), rng.integers(-1, 6, (N, T))
                loss, g = bptt.gradients(s, x, y)
                lb, gb = bptt.backward(bptt.forward(s, x), y)
                arrays = [np.float64(loss), np.float64(lb), *g.params.values(), *g.state0, *gb.params.values()]
                out[f"stack {cell} {np.dtype(dtype).name} N={N} H={H}"] = digest(*arrays)
    return out

first, second = run(), run()
print(json.dumps({"first": first, "second": second}))
"""


def _run(code, env=None, user=None, args=()):
    """(stdout, stderr) of python -c code args in a fresh process with env's changes (None: unset)."""
    full = {k: v for k, v in os.environ.items() if k not in (env or {})}
    full.update({k: v for k, v in (env or {}).items() if v is not None})
    full.setdefault("PYTHONPATH", str(SRC))
    command = [sys.executable, "-c", code, *map(str, args)]
    if user is not None:  # as another user: setpriv drops root's rights
        command = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"] + command
    done = subprocess.run(command, capture_output=True, text=True, env=full, timeout=900)
    assert done.returncode == 0, done.stderr
    return done.stdout, done.stderr


def test_every_call_gives_the_same_bits_cold_warm_and_repeated(tmp_path):
    need("numba")
    cache = {"NUMBA_CACHE_DIR": str(tmp_path / "numba")}  # empty: the first process compiles everything
    cold = json.loads(_run(SCRIPT, cache)[0])
    warm = json.loads(_run(SCRIPT, cache)[0])  # loads the machine code the first one cached
    assert any((tmp_path / "numba").rglob("*.nbi")), "the first process cached nothing"
    assert len(cold["first"]) == 32 + 12
    assert cold["first"] == cold["second"]  # in one process: first call and later ones
    assert cold == warm  # across processes, cache empty or warm


GATED = """
import sys
import numpy as np
import bptt
import bptt
from bptt.model import random_gated
rng = np.random.default_rng(3)
got = {}
got["example"] = bptt.gradients(random_gated("lstm", 2, 3, 3, seed=1), [0, 1, 2], [1, 2, 0])
for cell, after in (("lstm", True), ("gru", True), ("gru", False)):
    for N in (1, 4):
        m = random_gated(cell, 6, 4, 4, seed=2, reset_after=after)
        got[f"{cell} {after} {N}"] = bptt.gradients(m, rng.integers(0, 4, (N, 11)), rng.integers(0, 4, (N, 11)))
np.savez(sys.argv[-1], **{f"{k} {p}": v for k, (loss, g) in got.items()
                          for p, v in [("loss", np.float64(loss)), *g.params.items(), ("h0", g.h0)]})
"""


def _gated_results(path, env=None, user=None):
    _, err = _run(GATED, env, user, [path])
    with np.load(path) as f:
        return dict(f), err


def test_without_the_jit_the_gated_gradients_are_the_compiled_ones(tmp_path):
    need("numba")
    on, _ = _gated_results(tmp_path / "on.npz")
    off, _ = _gated_results(tmp_path / "off.npz", {"NUMBA_DISABLE_JIT": "1"})
    assert on.keys() == off.keys() and len(on) > 40
    for k, a in on.items():
        np.testing.assert_allclose(off[k], a, rtol=1e-12, atol=1e-14, err_msg=k)


LINEAR = """
import sys
import numpy as np
import bptt
import bptt
rng = np.random.default_rng(3)
got = {}
for cell in ("lru", "mingru", "minlstm", "linear"):
    for N in (1, 4):
        m = bptt.random_model(cell, 6, 4, 4, seed=2)
        x, y = rng.integers(0, 4, (N, 11)), rng.integers(0, 4, (N, 11))
        for scan in ("sequential", "parallel"):
            got[f"{cell} {N} {scan}"] = bptt.gradients(m, x, y, scan=scan)
        got[f"{cell} {N} window"] = bptt.gradients(m, x, y, truncate=3)
np.savez(sys.argv[-1], **{f"{k} {p}": v for k, (loss, g) in got.items()
                          for p, v in [("loss", np.float64(loss)), *g.params.items(), ("h0", g.h0)]})
"""


def test_without_the_jit_the_linear_cells_gradients_are_the_compiled_ones(tmp_path):
    need("numba")
    results = []
    for name, env in (("on", None), ("off", {"NUMBA_DISABLE_JIT": "1"})):
        _run(LINEAR, env, args=[tmp_path / f"{name}.npz"])
        with np.load(tmp_path / f"{name}.npz") as f:
            results.append(dict(f))
    on, off = results
    assert on.keys() == off.keys() and len(on) > 100
    for k, a in on.items():
        np.testing.assert_allclose(off[k], a, rtol=1e-12, atol=1e-14, err_msg=k)


def test_without_a_writable_cache_every_call_runs_says_so_once_and_gives_the_same_numbers(tmp_path):
    # a copy of the package no one may write to, a home no one may write to, no NUMBA_CACHE_DIR:
    # Numba finds nowhere to cache; as root the run drops to the user nobody, whom nothing binds
    need("numba")
    root = Path(tempfile.mkdtemp(prefix="bptt-readonly-"))
    try:
        shutil.copytree(SRC / "bptt", root / "src" / "bptt", ignore=shutil.ignore_patterns("__pycache__"))
        (root / "home").mkdir()
        (root / "out").mkdir()
        for path in [root, *root.rglob("*")]:
            mode = stat.S_IMODE(path.stat().st_mode)
            path.chmod(0o777 if path.name == "out" else mode & ~0o222 | 0o444 | (0o111 if path.is_dir() else 0))
        env = {"PYTHONPATH": str(root / "src"), "HOME": str(root / "home"), "NUMBA_CACHE_DIR": None,
               "PYTHONDONTWRITEBYTECODE": "1"}
        got, err = _gated_results(root / "out" / "uncached.npz", env, 65534 if os.geteuid() == 0 else None)
    finally:
        for path in [root, *root.rglob("*")]:
            path.chmod(0o755)
        shutil.rmtree(root)
    want, _ = _gated_results(tmp_path / "cached.npz")
    said = [line for line in err.splitlines() if "no writable cache directory" in line]
    assert len(said) == 1, err
    assert got.keys() == want.keys()
    for k, a in want.items():
        np.testing.assert_array_equal(got[k], a, err_msg=k)  # the same machine code, not cached


def test_without_the_jit_the_numerics_run_as_python_with_the_compiled_arithmetic(tmp_path):
    # the bit casts of exp have Python forms: interpreted, sigma and tanh give the compiled values
    # (to the rounding of the fused multiply-adds the compiler may form)
    need("numba")
    from bptt.fast import numerics
    code = """
import sys
import numpy as np
import bptt
from bptt.fast import numerics
z = np.load(sys.argv[1])
out = {}
for dtype in ("float32", "float64"):
    for name in ("sigmoid", "tanh"):
        got = np.empty_like(z.astype(dtype))
        getattr(numerics, name + "_values")(z.astype(dtype), got)
        out[dtype + " " + name] = got
np.savez(sys.argv[2], **out)
"""
    z = np.concatenate([np.linspace(-30, 30, 601), [0.0, -0.0, 1e-30, 800.0, -800.0, np.inf, -np.inf, np.nan]])
    path = tmp_path / "z.npy"
    np.save(path, z)
    _run(code, {"NUMBA_DISABLE_JIT": "1"}, args=[path, tmp_path / "off.npz"])
    with np.load(tmp_path / "off.npz") as off:
        for key, got in off.items():
            dtype, name = key.split()
            want = np.empty_like(z.astype(dtype))
            getattr(numerics, name + "_values")(z.astype(dtype), want)
            np.testing.assert_array_max_ulp(got, want, maxulp=2, dtype=np.dtype(dtype))


def _digests_under(policy):
    """{case: bytes of every result} for calls that hand work to the helper thread where it exists:
    the products over steps in halves, a batch in parts (two, or four for the LSTM of H = 128), a
    truncation window's tiles and blocks, the pipeline of blocks, a stack's two directions at once;
    every task run by the helper thread ("always") or by the calling thread ("never", what a
    machine with no free core gets)."""
    from bptt.fast import runtime

    out = {}
    with runtime.helper_policy(policy):
        for cell, (N, T, H) in (("rnn", (1, 300, 128)), ("rnn", (32, 64, 256)), ("lstm", (32, 40, 96)),
                                ("lstm", (32, 40, 128)), ("gru", (1, 300, 128)), ("lru", (32, 80, 96)),
                                ("mingru", (32, 80, 96))):
            for dtype in (np.float32, np.float64):
                rng = np.random.default_rng([N, T, H])
                m = bptt.random_model(cell, H, 16, 16, seed=1, dtype=dtype)
                x, y = rng.integers(0, 16, (N, T)), rng.integers(-1, 16, (N, T))
                loss, g = bptt.gradients(m, x, y)
                lb, gb = bptt.backward(bptt.forward(m, x), y)
                out[f"{cell} {N} {T} {H} {np.dtype(dtype).name}"] = b"".join(
                    np.ascontiguousarray(a).tobytes() for a in
                    [np.float64(loss), np.float64(lb), *g.params.values(), *g.state0, *gb.params.values()])
        m = bptt.random_model("rnn", 64, 16, 16, seed=1)
        x, y = np.random.default_rng(1).integers(0, 16, (2, 1, 3000))
        for K in (10, 100):  # the window by lag (tiles) and by blocks (halves)
            loss, g = bptt.gradients(m, x, y, truncate=K)
            out[f"window {K}"] = b"".join(a.tobytes() for a in [np.float64(loss), *g.params.values(), *g.state0])
        s = bptt.random_stack("lstm", 96, 16, 16, layers=2, bidirectional=True, seed=1)
        x, y = np.random.default_rng(0).integers(0, 16, (2, 32, 60))
        loss, g = bptt.gradients(s, x, y)
        out["stack"] = b"".join(a.tobytes() for a in [np.float64(loss), *g.params.values(), *g.state0])
    return out


def test_the_helper_thread_or_none_gives_the_same_bits():
    """Whether the work off the loop's chain runs on a second thread (a free core) or in the calling
    thread (every core busy) changes the time of a call, never its numbers."""
    need("numba")
    threaded, alone = _digests_under("always"), _digests_under("never")
    assert threaded.keys() == alone.keys()
    differ = [k for k in threaded if threaded[k] != alone[k]]
    assert not differ, f"different bits with and without the helper thread: {differ}"
    assert _digests_under("auto") == alone
