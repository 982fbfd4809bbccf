"""Part 9: `bptt diagnose` on a saved state dict and an input file, and what each part of it costs.

The case of the issue's target: an embedding, a 2-layer LSTM (H = 64; one direction, then
bidirectional) and a Linear head, a batch of N = 32 sequences of T = 200 ids, every step scored.
Timed: the whole command in a fresh process (imports included: the wall clock a user waits; its
default --lags 4 takes the truncation shares of 4 sequences), and in this process, after a
warm-up, the command's diagnosis (the state dict read, the network rebuilt, bptt's diagnosis) with
the shares of the whole batch, of 4 sequences and without them, each of the diagnosis's numbers
(bptt.diagnosis.numbers, summed over the layers and directions), the reading of the files and
the rebuilding, and the page's writing. Target: the command within 2 s.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

N, T, H, D, V, O, LAYERS = 32, 200, 64, 16, 20, 5, 2
TARGET_S = 2.0
PARTS = ("lag_curve", "memory_path", "saturation", "spectral_radii", "lyapunov_top", "shares_beyond", "step_terms",
         "first_nonfinite", "backprop", "weight_grads")


def files(folder, bidirectional):
    """Write net.pt and batch.npz for the case into folder."""
    import torch

    torch.manual_seed(0)
    sd = {"emb.weight": torch.randn(V, D)}
    lstm = torch.nn.LSTM(D, H, num_layers=LAYERS, bidirectional=bidirectional, batch_first=True)
    sd.update({f"lstm.{k}": v for k, v in lstm.state_dict().items()})
    out = torch.nn.Linear(H * (2 if bidirectional else 1), O)
    sd.update({f"out.{k}": v for k, v in out.state_dict().items()})
    torch.save(sd, folder / "net.pt")
    rng = np.random.default_rng(0)
    np.savez(folder / "batch.npz", x=rng.integers(0, V, (N, T)), y=rng.integers(0, O, (N, T)))


def command(folder) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "bptt.cli", "diagnose", "--torch", str(folder / "net.pt"), "--input",
                    str(folder / "batch.npz"), "--out", str(folder / "page.html")], check=True, capture_output=True)
    return time.perf_counter() - t0


def inside(folder) -> dict:
    """Seconds spent in each part of one diagnosis in this process (after a warm-up run)."""
    from bptt.diagnosis import diagnosed, numbers, page, statedict

    spent = {}

    def timed(module, name):
        f = getattr(module, name)

        def g(*a, **k):
            t = time.perf_counter()
            try:
                return f(*a, **k)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - t
        setattr(module, name, g)
        return f

    def diagnosis(lags=True):
        sd = statedict.load_state_dict(folder / "net.pt")
        p = statedict.parts(sd)
        x, y, ids = statedict.read_input(folder / "batch.npz", p)
        return diagnosed(statedict.network(sd, p, x, y, ids), lags)

    diagnosis()  # warm-up
    saved = [(m, n, timed(m, n)) for m, n in [(numbers, n) for n in PARTS] +
             [(statedict, n) for n in ("load_state_dict", "read_input", "network")]]
    try:
        t0 = time.perf_counter()
        d = diagnosis()
        spent["diagnose"] = time.perf_counter() - t0
    finally:
        for m, n, f in saved:
            setattr(m, n, f)
    t0 = time.perf_counter()
    diagnosis(lags=False)
    spent["diagnose without shares"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    diagnosis(lags=4)  # the command's default: the shares of 4 sequences
    spent["diagnose, shares of 4 sequences"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    page.write(d, folder / "page.html")
    spent["page"] = time.perf_counter() - t0
    return spent


def run(report, *, rounds):
    print(f"\n== 9. bptt diagnose: state dict + input file, {LAYERS}-layer LSTM, H = {H}, T = {T}, N = {N} ==")
    for bi in (False, True):
        folder = Path(tempfile.mkdtemp(prefix="bptt-diagnose-bench-"))
        try:
            files(folder, bi)
            walls = [command(folder) for _ in range(max(1, min(rounds, 3)))]
            wall = float(np.median(walls))
            spent = inside(folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        name = "bidirectional" if bi else "one direction"
        load = os.getloadavg()[0]
        print(f"   {name}: the command {wall:.2f} s (median of {len(walls)}, imports included; load average "
              f"{load:.2f}); in-process: " + ", ".join(f"{k} {v:.3f} s" for k, v in sorted(spent.items(),
                                                                                        key=lambda kv: -kv[1])))
        report.record(part="diagnose", bidirectional=bi, N=N, T=T, H=H, layers=LAYERS, command_s=wall,
                      load=load, **{k.replace(" ", "_") + "_s": v for k, v in spent.items()})
        report.target("diagnose", f"bptt diagnose, {LAYERS}-layer LSTM ({name}), H = {H}, T = {T}, N = {N} (s)",
                      wall, TARGET_S)
