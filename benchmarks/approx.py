"""Part: the gradient's approximations against BPTT: time per step and peak memory (bptt.approx).

The problem: an Elman network (tanh, D = O = 8, ids in and out, biases), one sequence. Each method
computes the same gradient of the same weights over the same sequence:

  BPTT       bptt.gradients (the default backend) and core.gradients (the reference engine)
  RTRL       bptt.approx.rtrl: the influence matrix M (S x P) carried forward; time O(S^2 P) per
             step (H^4 for Elman), memory O(S P) (H^3), whatever T
  SnAp-1     bptt.approx.snap(order=1): the influence kept on SnAp-1's pattern, O(P) a step, plus
             the initial state's influence (S x S, O(S^3) a step) for its h0 gradient; and SnAp-1
             without the initial state (as the online learner runs it)
  UORO       bptt.approx.uoro: one rank-one estimate
  window     bptt.approx.window_curve: the window's bias for every K at once, O(T^2 G H)

Before timing, RTRL's gradient is compared with BPTT's (1e-10). Peak memory is traced with
tracemalloc (NumPy reports its allocations to it) for BPTT and RTRL at two lengths T: RTRL's must
not grow with T (target: peak at T = 800 within 1.5x of the peak at T = 100), BPTT's grows.
"""
from __future__ import annotations

import time
import tracemalloc

import numpy as np

import bptt
from bptt import approx, core
from bptt.approx import influence

from .harness import fmt_time, interleaved

HIDDEN = (16, 32, 64, 128)


def problem(H, T, seed=0, V=8):
    rng = np.random.default_rng(seed)
    model = bptt.random_rnn(H, V, V, seed=rng, bias=True).replace(b=rng.normal(0, 0.1, H))
    return model, rng.integers(0, V, T), rng.integers(0, V, T)


def peak(fn):
    """(peak bytes traced while fn runs, seconds)."""
    tracemalloc.start()
    try:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        _, top = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return top, dt


def check(model, x, y):
    _, want = core.gradients(model, x, y)
    _, got = approx.rtrl(model, x, y)
    worst = max(float(np.max(np.abs(got.params[k] - v)) / np.max(np.abs(v))) for k, v in want.params.items())
    if worst > 1e-10:
        raise AssertionError(f"RTRL differs from BPTT by {worst:.2g} (relative)")
    return worst


def run(report, *, rounds, hidden=HIDDEN, T=50):
    print(f"\n== approx: time per step of RTRL, SnAp-1, UORO vs BPTT (Elman, D = O = 8, one sequence, T = {T}) ==")
    print("   H     BPTT/step   reference/step  RTRL/step    SnAp-1/step  SnAp-1 no h0 UORO/step    RTRL/BPTT  "
          "(RTRL = BPTT to)")
    times = {}
    for H in hidden:
        model, x, y = problem(H, T)
        worst = check(model, x, y)
        fns = {"bptt": lambda: bptt.gradients(model, x, y), "reference": lambda: core.gradients(model, x, y),
               "rtrl": lambda: approx.rtrl(model, x, y), "snap1": lambda: approx.snap(model, x, y, order=1),
               "snap1_online": lambda: influence.run(model, x, y, influence.SnAp1(initial=False)),
               "uoro": lambda: approx.uoro(model, x, y, seed=0)}
        t = interleaved(fns, rounds=max(3, rounds // 3), warmup=1)
        med = {k: v.median / T for k, v in t.items()}
        times[H] = med
        print(f"   {H:<5d} " + " ".join(f"{fmt_time(med[k]):12s}" for k in fns) +
              f" {med['rtrl'] / med['bptt']:9.0f}x  ({worst:.0e})", flush=True)
        report.record(part="approx", H=H, T=T, **{f"{k}_per_step_s": v for k, v in med.items()})
    Hs = sorted(times)
    if len(Hs) >= 2:
        a, b = Hs[-2], Hs[-1]
        slope = np.log(times[b]["rtrl"] / times[a]["rtrl"]) / np.log(b / a)
        print(f"   RTRL's time per step grows like H^{slope:.2f} from H = {a} to {b} (the bound: H^4)")
        report.record(part="approx", what="rtrl time exponent", H=(a, b), exponent=float(slope))

    print("\n   peak memory (tracemalloc), H = 32:   T     BPTT        RTRL")
    peaks = {}
    for T_ in (100, 800):
        model, x, y = problem(32, T_)
        pb, _ = peak(lambda: core.gradients(model, x, y))
        pr, _ = peak(lambda: approx.rtrl(model, x, y))
        peaks[T_] = (pb, pr)
        print(f"   {'':36s}{T_:<5d} {pb / 2**20:7.2f} MiB {pr / 2**20:7.2f} MiB", flush=True)
        report.record(part="approx", what="peak memory", H=32, T=T_, bptt_bytes=pb, rtrl_bytes=pr)
    report.target("approx", "RTRL peak memory T=800 / T=100 (H=32)", peaks[800][1] / peaks[100][1], 1.5)

    print("\n   the window's bias for every K in one pass (window_curve) vs one full gradient (reference):")
    for T_, H in ((100, 32), (300, 32)):
        model, x, y = problem(H, T_)
        t = interleaved({"curve": lambda: approx.window_curve(model, x, y),
                         "one": lambda: core.gradients(model, x, y)}, rounds=max(3, rounds // 3), warmup=1)
        c, o = t["curve"].median, t["one"].median
        print(f"   T = {T_:<4d} H = {H}: every K {fmt_time(c)}, one gradient {fmt_time(o)}, ratio {c / o:.0f}x",
              flush=True)
        report.record(part="approx", what="window curve", T=T_, H=H, curve_s=c, gradient_s=o)

    window_speed(report, rounds=rounds)


def window_speed(report, *, rounds, T=10_000, H=64, windows=(10, 30, 100, 1000, 5000)):
    """The notebook's window K against full BPTT, both with bptt.gradients (the default backend).

    Exactness first: the window's two algorithms (by lag, O(T K H^2); by blocks, O(T H^3) whatever
    K) against the reference engine's recurrence (core.backprop_window, O(T K H^2)) on a shorter
    sequence, to 1e-10. Beside each K, the products alone of the cheaper way at this machine's GEMM
    rate (NumPy, (4096, H) x (H, H), timed with the rest): by lag 2 T K H^2 flops, by blocks 4 T H^3
    (the two H x H products a position carries). No exact way we know does less work (see
    docs/approx.md, 'The window's speed'). The target is stated on the window's own time, the call's
    time less full BPTT's (both measured in the same run: the forward pass, the output errors and
    the weight gradients are the same in both), within 2x its products floor. The whole call is
    not compared with the floor: at short windows the floor is below what any gradient of this
    size costs (K = 10: about 9 ms of products, while the forward pass alone, 10,000 steps one
    after another, takes about as long), so no algorithm could bring that ratio near 2. (Against
    full BPTT, which carries one vector a step, long windows cannot come within a small factor:
    the ratio is printed too.)"""
    print(f"\n   the notebook's window K vs full BPTT (Elman tanh, H = {H}, D = O = 8, one sequence, float64):")
    model, x, y = problem(H, 2000, seed=1)
    worst = 0.0
    for K in (20, 150, 700):  # by lag; by blocks (2K >= 3H); by blocks with a short last block
        _, want = core.gradients(model, x, y, truncate=K)
        _, got = bptt.gradients(model, x, y, truncate=K)
        worst = max(worst, max(float(np.max(np.abs(got.params[k] - v)) / np.max(np.abs(v)))
                               for k, v in want.params.items()))
    if worst > 1e-10:
        raise AssertionError(f"the window differs from the reference by {worst:.2g} (relative)")
    print(f"   (T = 2000, K = 20, 150, 700: equal to the reference engine's window to {worst:.0e})")
    model, x, y = problem(H, T, seed=1)
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((4096, H)), rng.standard_normal((H, H))
    c = np.empty_like(a)
    fns = {"full": lambda: bptt.gradients(model, x, y), "gemm": lambda: np.matmul(a, b, out=c)}
    fns.update({f"K={K}": (lambda K=K: bptt.gradients(model, x, y, truncate=K)) for K in windows})
    t = interleaved(fns, rounds=max(3, rounds // 3), warmup=1)
    full, rate = t["full"].median, 2 * 4096 * H * H / min(t["gemm"].samples)  # its best sample
    print(f"   T = {T}: full BPTT {fmt_time(full)}; this machine's GEMM rate {rate / 1e9:.0f} GFLOP/s")
    print("   K       window     / full BPTT    way         fewer products of the two ways, at that rate   "
          "(window - full BPTT) / products")
    for K in windows:
        w = t[f"K={K}"].median
        way = "by lag" if 2 * K < 3 * H else "by blocks"
        floor = min(2 * T * K * H * H, 4 * T * H ** 3) / rate
        print(f"   K = {K:<5d} {fmt_time(w):10s} {w / full:6.1f}x      {way:10s}  {fmt_time(floor):10s} "
              f"{floor / full:5.1f}x {'':27s}{(w - full) / floor:5.2f}", flush=True)
        report.record(part="approx", what="window speed", T=T, H=H, K=K, window_s=w, full_s=full,
                      products_floor_s=floor)
        report.target("approx", f"window K={K}, its time over full BPTT / its products floor (T={T}, H={H})",
                      (w - full) / floor, 2.0)
