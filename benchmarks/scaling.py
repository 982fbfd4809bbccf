"""Part 4: time and peak memory of bptt.gradients against T, H and N, beside the matrix-multiply floor.

The floor is what this machine's BLAS needs for the same products, measured here with NumPy (the
faster of all threads and one thread, each part timed interleaved with bptt):
  sequential  2 T products (N, H) @ (H, H), one after another (forward W s_{t-1}, backward W^T delta_t),
              called in a loop with out= as cheaply as NumPy allows
  large       the four products over all steps at once: S V^T (T*N, H)(H, O), dQ V (T*N, O)(O, H),
              delta^T S (H, T*N)(T*N, H) for dW, dQ^T S (O, T*N)(T*N, H) for dV
bptt does these products and everything else besides (tanh, softmax, the ids' gather and scatter,
checks of the inputs); bptt / floor says how much that costs. Peak memory is traced with
tracemalloc while one gradient runs (the trace, the errors and the gradients).
"""
from __future__ import annotations

import tracemalloc

import numpy as np

import bptt

from .harness import fmt_time, interleaved

O = 64
SWEEPS = {
    "T": [(32, T, 128) for T in (25, 50, 100, 200, 400, 800)],
    "H": [(32, 100, H) for H in (32, 64, 128, 256, 512)],
    "N": [(N, 100, 128) for N in (1, 4, 16, 64, 256)],
}
QUICK = {"T": [(32, T, 128) for T in (25, 100, 400)], "H": [(32, 100, H) for H in (32, 128, 512)],
         "N": [(N, 100, 128) for N in (1, 16, 256)]}
LARGE_TN = 10_000  # the floor target applies where T * N is at least this


def floor_fns(N, T, H, dtype):
    rng = np.random.default_rng(0)
    a, W, out = (rng.standard_normal(s).astype(dtype) for s in ((N, H), (H, H), (N, H)))
    S, dQ, dZ = (rng.standard_normal(s).astype(dtype) for s in ((T * N, H), (T * N, O), (T * N, H)))
    V = rng.standard_normal((O, H)).astype(dtype)

    def sequential():
        for _ in range(2 * T):
            np.matmul(a, W, out=out)

    def large():
        S @ V.T
        dQ @ V
        dZ.T @ S
        dQ.T @ S
    return sequential, large


def one_thread(fn):
    """fn with BLAS on one thread (threadpoolctl), or fn itself when threadpoolctl is missing."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return fn
    blas = ThreadpoolController()

    def run():
        with blas.limit(limits=1, user_api="blas"):
            fn()
    return run


def peak_memory(fn):
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def measure(N, T, H, dtype, rounds):
    rng = np.random.default_rng(1)
    model = bptt.random_rnn(H, O, O, seed=rng, dtype=dtype)
    x, y = rng.integers(0, O, (N, T)), rng.integers(0, O, (N, T))
    seq, large = floor_fns(N, T, H, dtype)
    t = interleaved({"bptt": lambda: bptt.gradients(model, x, y), "sequential": seq, "large": large,
                     "sequential 1 thread": one_thread(seq), "large 1 thread": one_thread(large)}, rounds=rounds)
    m = {k: v.median for k, v in t.items()}
    # the floor is the faster of BLAS on all threads and on one: small per-step products are
    # faster on one thread (no hand-off to the other thread at every call)
    m["sequential"] = min(m.pop("sequential"), m.pop("sequential 1 thread"))
    m["large"] = min(m.pop("large"), m.pop("large 1 thread"))
    m["floor"] = m["sequential"] + m["large"]
    m["peak_bytes"] = peak_memory(lambda: bptt.gradients(model, x, y))
    return m


def run(report, *, rounds, quick=False, dtype=np.float32, out_dir=None):
    sweeps = QUICK if quick else SWEEPS
    name = np.dtype(dtype).name
    print(f"\n== 4. scaling of bptt.gradients ({name}, O = D = {O}) beside the matrix-multiply floor ==")
    print("   sweep (N, T, H)          bptt        floor       (sequential  large)      bptt/floor  peak memory")
    results = {}
    for axis, points in sweeps.items():
        results[axis] = []
        for N, T, H in points:
            m = measure(N, T, H, dtype, rounds)
            ratio = m["bptt"] / m["floor"]
            results[axis].append(((N, T, H), m))
            print(f"   {axis}  {str((N, T, H)):22s} {fmt_time(m['bptt']):11s} {fmt_time(m['floor']):11s} "
                  f"({fmt_time(m['sequential']):10s} {fmt_time(m['large']):10s}) {ratio:8.2f}   "
                  f"{m['peak_bytes'] / 2**20:8.1f} MiB", flush=True)
            report.record(part="scaling", axis=axis, N=N, T=T, H=H, dtype=name, **m, ratio=ratio)
            if T * N >= LARGE_TN:
                report.target("scaling", f"bptt / matmul floor at (N, T, H) = {(N, T, H)} {name}", ratio, 1.5)
    if out_dir is not None:
        plot(results, out_dir / f"scaling-{name}.png", name)
    return results


def plot(results, path, name):
    """Save figure(results, name) to path (a PNG at bptt.plots.DPI); nothing when matplotlib is missing."""
    try:
        fig = figure(results, name)
    except ValueError as e:  # matplotlib is not installed
        print(f"   ({e}: no plot)")
        return
    from bptt.plots import savefig

    savefig(fig, path)
    print(f"   plot: {path}")


def figure(results, name):
    """Time and peak memory against T, H and N, the floor drawn beside bptt: a matplotlib Figure (no
    pyplot). results: {axis: [((N, T, H), measure's dict), ...]} for axes "T", "H", "N"."""
    from bptt.plots import finish, require_matplotlib

    require_matplotlib()
    from matplotlib import ticker
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 7.4), layout="constrained")
    axes = fig.subplots(2, 3)
    for j, (axis, rows) in enumerate(results.items()):
        i_axis = "NTH".index(axis)
        xs = [p[i_axis] for p, _ in rows]
        ax = axes[0, j]
        for key, style in (("bptt", "o-"), ("floor", "k--"), ("sequential", ":"), ("large", ":")):
            ax.loglog(xs, [m[key] for _, m in rows], style, label={"floor": "matmul floor (sum)",
                      "sequential": "floor: sequential products", "large": "floor: large products"}.get(key, key))
        ax.set_ylabel("seconds per gradient")
        fixed = {"T": "N=32, H=128", "H": "N=32, T=100", "N": "T=100, H=128"}[axis]
        ax.set_title(f"time vs {axis} ({fixed})")
        ax.legend(fontsize=8)
        ax = axes[1, j]
        ax.loglog(xs, [m["peak_bytes"] / 2**20 for _, m in rows], "o-")
        ax.set_ylabel("peak MiB (tracemalloc)")
        ax.set_title(f"memory vs {axis}")
        for ax in axes[:, j]:  # the measured sizes as plain numbers on x
            ax.set_xlabel(axis)
            ax.xaxis.set_major_locator(ticker.FixedLocator(xs))
            ax.xaxis.set_major_formatter(ticker.FixedFormatter([str(x) for x in xs]))
            ax.xaxis.set_minor_formatter(ticker.NullFormatter())
            ax.grid(alpha=0.3, which="major")
    fig.suptitle(f"bptt.gradients, {name}, 2 threads", fontsize=13)
    return finish(fig)


def from_records(records, dtype):
    """The results run() returns, rebuilt from the "scaling" records of results.json for one dtype
    name ("float32", "float64"), to redraw the figure without timing again."""
    out = {}
    for r in records:
        if r.get("part") == "scaling" and r.get("dtype") == dtype:
            m = {k: r[k] for k in ("bptt", "floor", "sequential", "large", "peak_bytes")}
            out.setdefault(r["axis"], []).append(((r["N"], r["T"], r["H"]), m))
    return {axis: out[axis] for axis in ("T", "H", "N") if axis in out}


def replot(results_json, out_dir):
    """Redraw scaling-<dtype>.png in out_dir from a results.json that `python -m benchmarks` wrote."""
    import json
    from pathlib import Path

    records = json.loads(Path(results_json).read_text())["records"]
    for dtype in sorted({r["dtype"] for r in records if r.get("part") == "scaling"}):
        plot(from_records(records, dtype), Path(out_dir) / f"scaling-{dtype}.png", dtype)
