"""Part 5: a fresh process's first gradient.

Each sample is a new Python process that imports bptt, builds the model and data of the
(N, T, H, O) = (32, 100, 128, 64) gradient row, and times the first bptt.gradients call and the
whole way from before `import bptt` to that gradient's result (the interpreter's own start-up
excluded). The first call waits for the compiled kernels it needs, when installed (Numba's import,
then their machine code from Numba's cache), so that it gives the same bits as every later call;
the second call of the same process is timed too, for comparison.

Two kinds of process: warm, with the kernels in Numba's cache (every run after the first), and
cold, with NUMBA_CACHE_DIR an empty folder of its own (a fresh install's first run: the first
call compiles what it needs, on two cores where it can: bptt/fast/ahead.py). Targets: cold, the
first gradient within 1 s of `import bptt`; warm, import + first gradient within 0.3 s of Numba's
floor, measured in the same run: a fresh process that imports Numba and runs one kernel of its own
from Numba's cache, a kernel with a BLAS product (np.dot, which binds SciPy's BLAS) as bptt's have.
Why a floor and not 0.3 s alone: that process alone takes about 0.5 s on the machine of
docs/performance.md (Numba's import, SciPy's BLAS, Numba's set-up before it loads any cached
kernel), more than the whole 0.3 s, so no design on Numba could meet it; what bptt adds to the
floor (its own import, its kernels' loading, the call) is what it can cut.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import numpy as np

CONFIG = (32, 100, 128, 64)  # (N, T, H, O)
CHILD = """
import json, time
t0 = time.perf_counter()
import numpy as np
import bptt
N, T, H, O = {config}
rng = np.random.default_rng(0)
model = bptt.random_rnn(H, O, O, seed=rng, dtype=np.{dtype})
x, y = rng.integers(0, O, (N, T)), rng.integers(0, O, (N, T))
t1 = time.perf_counter()
bptt.gradients(model, x, y)
t2 = time.perf_counter()
bptt.gradients(model, x, y)
t3 = time.perf_counter()
print(json.dumps({{"import_and_first": t2 - t0, "first": t2 - t1, "second": t3 - t2}}))
"""


# Numba's floor: a module with one cached kernel with a BLAS product, imported and run in a fresh process
FLOOR_MODULE = """
import numba
import numpy as np

@numba.njit(cache=True, nogil=True)
def product(a, b, out):
    np.dot(a, b, out)
"""
FLOOR = """
import json, time
t0 = time.perf_counter()
import numpy as np
import floor_kernel
a = np.ones((4, 4))
floor_kernel.product(a, a, np.empty((4, 4)))
print(json.dumps({"floor": time.perf_counter() - t0}))
"""


def floor_samples(n) -> list:
    """n fresh processes' time to import Numba and run the floor's kernel from a warm cache (s)."""
    with tempfile.TemporaryDirectory(prefix="bptt-floor-") as folder:
        with open(os.path.join(folder, "floor_kernel.py"), "w") as f:
            f.write(FLOOR_MODULE)
        env = dict(os.environ, PYTHONPATH=folder, NUMBA_CACHE_DIR=os.path.join(folder, "cache"))
        runs = [json.loads(subprocess.run([sys.executable, "-c", FLOOR], capture_output=True, text=True, check=True,
                                          env=env).stdout.strip().splitlines()[-1])["floor"] for _ in range(n + 1)]
    return runs[1:]  # the first compiled the kernel


def sample(dtype, cold=False) -> dict:
    code = CHILD.format(config=CONFIG, dtype=np.dtype(dtype).name)
    with tempfile.TemporaryDirectory(prefix="bptt-numba-cache-") as empty:
        env = dict(os.environ, **({"NUMBA_CACHE_DIR": empty} if cold else {}))
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def run(report, *, rounds):
    print(f"\n== 5. a fresh process's first gradient, (N, T, H, O) = {CONFIG}, {rounds} processes each ==")
    floor = []
    for cold in (False, True):
        kind = "cold cache" if cold else "warm cache"
        for dtype in (np.float32, np.float64):
            samples = []
            for _ in range(max(1, rounds // 3) if cold else rounds):  # warm: each beside a floor process
                samples.append(sample(dtype, cold))
                if not cold:
                    floor += floor_samples(1)
            med = {k: float(np.median([s[k] for s in samples])) for k in samples[0]}
            print(f"   {kind}, {np.dtype(dtype).name}: import bptt + first gradient {med['import_and_first'] * 1e3:.0f} "
                  f"ms (the gradient alone {med['first'] * 1e3:.0f} ms; the second call {med['second'] * 1e3:.0f} ms;"
                  f" {len(samples)} processes)", flush=True)
            if cold:
                report.record(part="startup", config=CONFIG, dtype=np.dtype(dtype).name, cold=cold, **med)
                report.target("startup", f"cold cache: first gradient after import bptt {CONFIG} "
                              f"{np.dtype(dtype).name} (s)", med["first"], 1.0)
            else:
                base = float(np.median(floor))
                print(f"   Numba's floor (import Numba, run one cached kernel with a BLAS product): {base * 1e3:.0f} ms"
                      f" ({len(floor)} processes, interleaved)", flush=True)
                report.record(part="startup", config=CONFIG, dtype=np.dtype(dtype).name, cold=cold, floor=base, **med)
                report.target("startup", f"import bptt + first gradient {CONFIG} {np.dtype(dtype).name}, less "
                              f"Numba's floor (s)", med["import_and_first"] - base, 0.3)
