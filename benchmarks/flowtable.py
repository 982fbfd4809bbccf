"""Part 2: the (T, T) table ||dE_t/ds_k|| from bptt.flow vs the direct way, and flow's memory.

The direct way is what one writes with autograd: one forward pass that keeps the graph, then one
PyTorch backward pass per output step t, torch.autograd.grad(E_t, [s_0, ..., s_t]), and the norm
of each dE_t/ds_k. bptt.flow carries the errors of all outputs back together, one matrix product
per step over all outputs at once. Both give the same table, checked to 1e-10 in float64.

Memory: flow keeps the two (T, T) tables of norms and (T, H) working arrays, never a (T, T, H)
array; the peak is measured with tracemalloc (NumPy reports its allocations to it) at T = 4096,
H = 256 and must stay under 1 GiB. The lag analyses (decay_rate, by_lag) read the tables a block
of rows at a time and add no (T, T) array: flow plus both analyses at T = 8192, H = 64 (two 512 MiB
tables) must stay under 1.6 GiB.
"""
from __future__ import annotations

import time
import tracemalloc

import numpy as np

import bptt
from bptt import fast

from .harness import fmt_time, interleaved


def problem(T, H, V=32, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    model = bptt.random_rnn(H, V, V, seed=rng, dtype=dtype)
    return model, rng.integers(0, V, T), rng.integers(0, V, T)


def direct_table(model, x, y):
    """||dE_t/ds_k|| by one autograd backward pass per output t: (T, T)."""
    import torch
    U, W, V = (torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=True) for a in (model.U, model.W, model.V))
    T = len(x)
    s = torch.zeros(model.H, dtype=torch.float64)
    states = []
    for t in range(T):
        s = torch.tanh(U[:, int(x[t])] + W @ s)
        states.append(s)
    logp = torch.log_softmax(torch.stack(states) @ V.T, dim=-1)  # (T, O)
    E = -logp[torch.arange(T), torch.from_numpy(y)]  # (T,): E_t
    table = np.zeros((T, T))
    for t in range(T):
        grads = torch.autograd.grad(E[t], states[:t + 1], retain_graph=True)
        table[t, :t + 1] = [float(torch.linalg.vector_norm(g)) for g in grads]
    return table


def flow_peak_memory(T, H):
    """(peak bytes traced while flow runs, seconds) for one sequence of length T."""
    model, x, y = problem(T, H)
    tracemalloc.start()
    try:
        t0 = time.perf_counter()
        fl = bptt.flow(model, x, y)
        dt = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert fl.dE_ds.shape == (T, T)
    return peak, dt


def analysis_peak_memory(T, H):
    """(peak bytes traced while flow, decay_rate() and by_lag() run on one sequence of length T, seconds)."""
    model, x, y = problem(T, H)
    previous = fast.set_compiled(True)  # waits for the compiled kernels, loaded on a thread that
    fast.set_compiled(previous)         # tracemalloc would count too
    tracemalloc.start()
    try:
        t0 = time.perf_counter()
        fl = bptt.flow(model, x, y)
        fl.decay_rate()
        prof = fl.by_lag()
        dt = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert prof.count.shape == (T,)
    return peak, dt


def run(report, *, rounds, T=256, H=64, memory=(4096, 256), analysis_memory=(8192, 64)):
    """The table against PyTorch at (T, H), then the memory runs: flow alone at memory = (T, H) and
    flow with its analyses at analysis_memory = (T, H); memory=None (--quick) skips both."""
    print(f"\n== 2. flow(...).dE_ds, T = {T}, H = {H}: one pass over all outputs vs one PyTorch backward per output ==")
    model, x, y = problem(T, H)
    ours = bptt.flow(model, x, y).dE_ds
    ref = direct_table(model, x, y)
    diff = float(np.max(np.abs(ours - ref)) / np.max(np.abs(ref)))
    rel = float(np.max(np.abs(ours - ref)[ref > 0] / ref[ref > 0]))
    print(f"   same table: max |difference| / max = {diff:.1e}, largest relative difference of an entry = {rel:.1e}")
    report.target("flow", "max |flow - direct| / max |direct|", diff, 1e-10)
    t = interleaved({"flow": lambda: bptt.flow(model, x, y).dE_ds, "direct": lambda: direct_table(model, x, y)},
                    rounds=max(3, rounds // 2), sample_s=0.0)
    speedup = t["direct"].median / t["flow"].median
    print(f"   flow {fmt_time(t['flow'].median)}, direct (PyTorch, {T} backward passes) "
          f"{fmt_time(t['direct'].median)}: flow is {speedup:.0f}x faster")
    report.record(part="flow", T=T, H=H, flow_s=t["flow"].median, direct_s=t["direct"].median, speedup=speedup)
    report.target("flow", f"direct / flow time (T={T}, H={H})", speedup, 50, ">=")
    if memory:
        Tm, Hm = memory
        peak, dt = flow_peak_memory(Tm, Hm)
        tables = 2 * Tm * Tm * 8
        full = Tm * Tm * Hm * 8
        print(f"   memory at T = {Tm}, H = {Hm} (float64): peak {peak / 2**20:.0f} MiB traced while flow ran "
              f"({dt:.0f} s); the two (T, T) tables alone are {tables / 2**20:.0f} MiB, "
              f"one (T, T, H) array would be {full / 2**30:.0f} GiB")
        report.record(part="flow-memory", T=Tm, H=Hm, peak_bytes=peak, seconds=dt)
        report.target("flow", f"peak memory of flow at T={Tm}, H={Hm} (GiB)", peak / 2**30, 1.0)
    if memory and analysis_memory:
        Ta, Ha = analysis_memory
        peak, dt = analysis_peak_memory(Ta, Ha)
        tables = 2 * Ta * Ta * 8
        print(f"   memory at T = {Ta}, H = {Ha} (float64): peak {peak / 2**30:.2f} GiB traced while flow, "
              f"decay_rate() and by_lag() ran ({dt:.0f} s); flow's two (T, T) tables alone are "
              f"{tables / 2**30:.2f} GiB")
        report.record(part="flow-analysis-memory", T=Ta, H=Ha, peak_bytes=peak, seconds=dt)
        report.target("flow", f"peak memory of flow + decay_rate + by_lag at T={Ta}, H={Ha} (GiB)",
                      peak / 2**30, 1.6)
