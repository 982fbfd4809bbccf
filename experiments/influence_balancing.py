"""Influence balancing (Tallec & Ollivier 2017, "Unbiasing truncated backpropagation through time"; also
the UORO paper, 2018): truncated BPTT shorter than the dependency learns in the wrong direction and
diverges, while the unbiased online methods (RTRL, UORO) learn.

    OPENBLAS_NUM_THREADS=1 python experiments/influence_balancing.py [--steps 20000] [--lr 1e-5]

The task, as the UORO paper describes it and its public reimplementation in the PES paper's code
(Vicol, Metz & Sohl-Dickstein 2021, influence_balancing.py) sets it up: a linear recurrence of n = 23
units with one scalar parameter theta,

    s_t = A s_{t-1} + theta (1, ..., 1, -1, ..., -1)     (n+ = 10 ones, then 13 minus ones)
    A = 0.5 I + 0.5 (the shift: unit i reads unit i + 1),  s_{-1} = (1, ..., 1),  theta_0 = 0.5
    E_t = (s_t[0] - 1)^2                                 (the PES code's 1/2 (s[0] - 1)^2, times 2)

Unit 1 reads unit 2, which reads unit 3, ...: theta's push on the first 10 units reaches s_t[0]
within 10 steps with a positive sign, its pull on the last 13 only after 10 or more steps. The long-
term effect wins: at the fixed point s[0] = 2 theta (10 - 13) = -6 theta, so theta* = -1/6; a
gradient truncated to fewer than about 40 steps has the wrong sign and drives theta away.

Here it is a bptt model: an Elman RNN with the identity activation, H = 23, one constant input
x_t = 1, U = theta * signs (a tied parameter: bptt.approx.online's basis), W = A and V = e_1 fixed
(head=False), the mse head with target 1. Online learning, plain SGD with the same lr for every
method, the weights updated after every step (TBPTT(1, K): backpropagate K steps at every step).
Also written: the exact window-K gradient dE/dtheta of the first 200 steps at theta_0, for every K
(bptt.approx.lag_table), which shows where the truncated gradient's sign flips.

Writes experiments/results/influence_balancing.json and experiments/results/influence_balancing.png
(`--plot-only` redraws the figure from the JSON).
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np

import bptt
from bptt import approx
from bptt.approx import online

HERE = Path(__file__).resolve().parent
N_UNITS, N_PLUS, THETA0 = 23, 10, 0.5
THETA_STAR = 1 / (2 * (2 * N_PLUS - N_UNITS))  # s*[0] = 2 theta (n+ - n-) = 1: theta* = -1/6


def task(theta=THETA0, steps=1000):
    """(model, x (T, 1), y (T, 1), h0 (n,), basis (P, 1)): the task as a bptt model, theta tied to U."""
    n = N_UNITS
    signs = np.array([1.0] * N_PLUS + [-1.0] * (n - N_PLUS))
    A = 0.5 * np.eye(n) + 0.5 * np.eye(n, k=1)
    V = np.zeros((1, n))
    V[0, 0] = 1.0
    model = bptt.RNN(U=theta * signs[:, None], W=A, V=V, activation="identity", head="mse")
    basis = np.zeros((n + n * n, 1))  # the recurrent parameters' flat layout: U (n, 1), then W (n, n)
    basis[:n, 0] = signs
    return model, np.ones((steps, 1)), np.ones((steps, 1)), np.ones(n), basis


def theta_of(model):
    return float(model.U[0, 0])


def run_method(name, steps, lr, seed=0):
    model, x, y, h0, basis = task(steps=steps)
    t0 = time.perf_counter()
    if name.startswith("tbptt"):
        k1, k2 = (int(v) for v in name[6:-1].split(","))
        final, hist = online.train_tbptt(model, x, y, k1, k2, lr=lr, h0=h0, basis=basis, head=False)
    else:
        final, hist = online.train(model, x, y, name.split(" ")[0], lr=lr, h0=h0, basis=basis, head=False, seed=seed)
    theta = THETA0 + np.array([z[0] for z in hist.z])
    loss = np.asarray(hist.loss)
    return {"method": name, "lr": lr, "seed": seed, "steps": steps, "diverged": hist.diverged,
            "theta_final": float(theta[-1]), "theta_every_100": theta[::100].tolist(),
            "loss_last_1000": float(loss[-1000:].mean()), "seconds": time.perf_counter() - t0,
            "learned": bool(hist.diverged is None and abs(theta[-1] - THETA_STAR) < 0.01)}


def window_gradients(T=200):
    """dE/dtheta of the first T steps at theta_0: the full one and the window K's for K = 0..T."""
    model, x, y, h0, basis = task(steps=T)
    table = approx.lag_table(model, x, y, h0=h0)
    per_K = table.windows()["U"][:, :, 0] @ basis[:N_UNITS, 0]  # (T + 1,): d/dtheta = signs . dE/dU
    return per_K


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--truncations", type=int, nargs="+", default=[1, 5, 10, 20, 30, 40, 50, 80])
    ap.add_argument("--uoro-seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--plot-only", action="store_true", help="redraw the figure from the results file")
    args = ap.parse_args()
    if args.plot_only:
        res = json.loads((HERE / "results" / "influence_balancing.json").read_text())
        return plot(res, HERE / "results" / "influence_balancing.png")
    per_K = window_gradients()
    flip = int(np.flatnonzero(np.sign(per_K) != np.sign(per_K[-1]))[-1]) + 1
    print(f"exact dE/dtheta over the first 200 steps at theta = {THETA0}: full {per_K[-1]:.4g}; window K: "
          + ", ".join(f"K={K} {per_K[K]:.4g}" for K in (0, 5, 10, 20, 30, 40, 50, 80)))
    print(f"the window's gradient has the full gradient's sign from K = {flip} on")
    names = (["rtrl", "snap-1"] + [f"uoro seed {s}" for s in args.uoro_seeds]
             + [f"tbptt(1,{K})" for K in args.truncations])
    runs = []
    for name in names:
        seed = int(name.split()[-1]) if name.startswith("uoro") else 0
        r = run_method(name, args.steps, args.lr, seed)
        runs.append(r)
        end = f"diverged at step {r['diverged']}" if r["diverged"] is not None else f"theta {r['theta_final']:.4f}"
        print(f"{name:16s} {end:28s} mean loss of the last 1000 steps {r['loss_last_1000']:.3g}  "
              f"learned: {r['learned']}  ({r['seconds']:.0f} s)", flush=True)
    res = {"task": {"units": N_UNITS, "positive": N_PLUS, "theta0": THETA0, "theta_star": THETA_STAR},
           "window_gradient_T200": {"K": list(range(len(per_K))), "dE_dtheta": per_K.tolist(), "sign_from_K": flip},
           "runs": runs}
    (HERE / "results" / "influence_balancing.json").write_text(json.dumps(res, indent=1))
    plot(res, HERE / "results" / "influence_balancing.png")


def plot(res, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    for i, r in enumerate(res["runs"]):
        th = np.asarray(r["theta_every_100"])
        t = np.arange(len(th)) * 100
        style = "-" if not r["method"].startswith("tbptt") else "--"
        ax.plot(t, th, style, color=plt.cm.tab20(i % 20), label=r["method"])
    ax.axhline(res["task"]["theta_star"], color="k", lw=0.8, ls=":")
    ax.set(yscale="symlog", xlabel="online step t", ylabel="theta (symlog)",
           title=f"influence balancing: theta while learning (lr {res['runs'][0]['lr']:g}; dotted: theta* = -1/6)")
    ax.legend(fontsize=7, ncol=2)
    w = res["window_gradient_T200"]
    bx.plot(w["K"], w["dE_dtheta"], color="C0")
    bx.axhline(0, color="k", lw=0.8)
    bx.axvline(w["sign_from_K"], color="C3", ls=":", label=f"sign right from K = {w['sign_from_K']}")
    bx.set(xlabel="window K", ylabel="dE/dtheta of window K (symlog)", yscale="symlog",
           title="exact truncated gradient at theta0 = 0.5, T = 200")
    bx.legend(fontsize=8)
    fig.savefig(path, dpi=150)


if __name__ == "__main__":
    main()
