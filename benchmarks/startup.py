"""Part 5: a fresh process's first gradient.

Each sample is a new Python process that imports bptt, builds the model and data of the
(N, T, H, O) = (32, 100, 128, 64) gradient row, and times the first bptt.gradients call and the
whole way from before `import bptt` to that gradient's result (the interpreter's own start-up
excluded). The first call waits for the compiled kernels it needs, when installed (Numba's import,
then their machine code from Numba's cache), so that it gives the same bits as every later call;
the second call of the same process is timed too, for comparison.

Two kinds of process: warm, with the kernels in Numba's cache (every run after the first), and
cold, with NUMBA_CACHE_DIR an empty folder of its own (a fresh install's first run: the first
call compiles what it needs). Targets: warm, import + first gradient within 0.3 s; cold, the first
gradient within 1 s of `import bptt`.
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


def sample(dtype, cold=False) -> dict:
    code = CHILD.format(config=CONFIG, dtype=np.dtype(dtype).name)
    with tempfile.TemporaryDirectory(prefix="bptt-numba-cache-") as empty:
        env = dict(os.environ, **({"NUMBA_CACHE_DIR": empty} if cold else {}))
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def run(report, *, rounds):
    print(f"\n== 5. a fresh process's first gradient, (N, T, H, O) = {CONFIG}, {rounds} processes each ==")
    for cold in (False, True):
        kind = "cold cache" if cold else "warm cache"
        for dtype in (np.float32, np.float64):
            samples = [sample(dtype, cold) for _ in range(max(1, rounds // 3) if cold else rounds)]
            med = {k: float(np.median([s[k] for s in samples])) for k in samples[0]}
            print(f"   {kind}, {np.dtype(dtype).name}: import bptt + first gradient {med['import_and_first'] * 1e3:.0f} "
                  f"ms (the gradient alone {med['first'] * 1e3:.0f} ms; the second call {med['second'] * 1e3:.0f} ms;"
                  f" {len(samples)} processes)", flush=True)
            report.record(part="startup", config=CONFIG, dtype=np.dtype(dtype).name, cold=cold, **med)
            if cold:
                report.target("startup", f"cold cache: first gradient after import bptt {CONFIG} "
                              f"{np.dtype(dtype).name} (s)", med["first"], 1.0)
            else:
                report.target("startup", f"import bptt + first gradient {CONFIG} {np.dtype(dtype).name} (s)",
                              med["import_and_first"], 0.3)
