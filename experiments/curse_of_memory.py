"""The curse of memory (Zucchet & Orvieto 2024, "Recurrent neural networks: vanishing and exploding
gradients are not the end of the story"), measured with bptt's exact sensitivities and reproduced in
the shape of the paper's teacher-student experiment.

    OPENBLAS_NUM_THREADS=1 python experiments/curse_of_memory.py [--parts closed sensitivity teacher]
        [--steps 200] [--batch 16] [--jobs 2] [--out experiments/results/curse_of_memory.json]

Three parts (and a fourth, pilot, when named), each written into the results file as it finishes (a run of some parts keeps the others'):

closed       E[(dh/dtheta)^2] of h_t = lambda h_{t-1} + gamma x_t on AR(1) inputs (unit variance,
             autocorrelation rho) for lambda in LAMBDAS and rho in RHOS, under the four parametrisations
             of bptt.memory.closed_forms (raw lambda; lambda = exp(-exp(nu)); the input normalised by
             gamma = sqrt(1 - lambda^2) tied to lambda; both): the closed form beside a Monte Carlo
             estimate from the `linear` cell's exact sensitivities (bptt.memory.monte_carlo, --samples
             sequences).
sensitivity  the state's sensitivity to each recurrent parameter as the memory grows (|lambda| or
             rho(W) in MEMORIES), beside the classic error flow of the same sequences (bptt.flow):
             `linear` (d h/d lam, B = 1), `lru` with and without the normalisation (d h/d nu_log,
             theta_log, gamma_log; phases uniform on [0, pi]), and a tanh Elman cell with W = rho x
             orthogonal and small input weights (U, V Gaussian with std 0.01, so that its units stay
             near the linear part of tanh) (d s/d W); H = 16, N = 4 Gaussian sequences of T = 1000
             steps and Gaussian targets, read at the last step (bptt.memory.sensitivity).
teacher      the paper's linear teacher-student identification: a teacher LRU of TEACHER_UNITS complex
             units (complex diagonal, its input normalised), |lambda| uniform on the ring
             [nu0, (1 + nu0) / 2] (the square uniform, as the LRU's initialisation draws it), phases
             uniform on [0, pi], one input, one output whose scale is set to unit variance on held-out
             sequences; Gaussian inputs, T = 300, the mse head (the loss a mean over steps: 1 is the
             loss of predicting 0). Students, H = 64 each, trained by Adam for --steps updates on
             fresh batches of --batch sequences (the same batches for every student):
                 rnn    a tanh Elman network, PyTorch's initialisation (W uniform on +-1/sqrt(H)), biases
                 lru    an LRU, its ring initialised as the teacher's: [nu0, (1 + nu0) / 2], phases
                        on [0, pi], normalised (gamma_log)
                 cdiag  the same complex diagonal recurrence without the normalisation (gamma = 1)
             The learning rates (LR) were chosen once, by the pilot part (every student at nu0 = 0.9
             for 150 updates with each rate of PILOT_LR: the one with the lowest held-out loss), and
             are the same at every nu0. The
             final loss is measured on 256 held-out sequences. One seed per (nu0, student).
             The LRU students run on the reference engine (a loop over the steps) until a fast
             kernel for the cell lands; the script calls bptt.gradients and gets faster with it.

The figures (docs/memory-closed.png, docs/memory-teacher.png) and the tables of docs/memory.md are
drawn from the results file by `python docs/generate.py --write` (make docs), with `figures` below.
"""
import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import bptt  # noqa: E402
from bptt import memory  # noqa: E402
from bptt.train import adam  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "curse_of_memory.json"
LAMBDAS, RHOS = (0.5, 0.9, 0.99, 0.999), (0.0, 0.9)
MEMORIES = (0.5, 0.9, 0.99, 0.999)
NU0 = (0.36, 0.6, 0.8, 0.9, 0.95, 0.97, 0.99)
STUDENTS = ("rnn", "lru", "cdiag")
LABELS = {"rnn": "tanh Elman RNN", "lru": "LRU", "cdiag": "complex diagonal, no normalisation"}
LR = {"rnn": 1e-2, "lru": 3e-2, "cdiag": 3e-2}  # from the pilot part (see the docstring)
PILOT_LR, PILOT_NU0, PILOT_STEPS = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1), 0.9, 150
TEACHER_UNITS, HIDDEN, LENGTH, HELD_OUT = 10, 64, 300, 256


# --- part 1: the closed forms against the Monte Carlo ------------------------------------------------
def closed(samples, seed):
    rows = []
    for lam in LAMBDAS:
        for rho in RHOS:
            t = time.perf_counter()
            mc = memory.monte_carlo(lam, rho, n=samples, seed=seed)
            cf = memory.closed_forms(lam, rho)
            rows.append({"lam": lam, "rho": rho, "closed": {k: float(v) for k, v in cf.items()},
                         "monte_carlo": {k: {"mean": e.mean, "se": e.se} for k, e in mc.items()}})
            print(f"closed  lambda = {lam:<6} rho = {rho:<4} "
                  + "  ".join(f"{k} {e.mean / cf[k]:.4f}" for k, e in mc.items())
                  + f"  ({time.perf_counter() - t:.1f} s)", flush=True)
    return {"samples": samples, "seed": seed, "lambdas": list(LAMBDAS), "rhos": list(RHOS), "rows": rows}


# --- part 2: sensitivity against memory, beside the error flow ---------------------------------------
def models(r, H, seed):
    """{label: (model, parameter read)} at memory r: |lambda| = r for every unit, or rho(W) = r."""
    lin = bptt.random_model("linear", H, 1, 1, seed=seed, head="mse").replace(lam=np.full(H, r), B=np.ones((H, 1)))
    lru = bptt.random_model("lru", H, 1, 1, seed=seed, head="mse", max_phase=np.pi)
    ring = {"nu_log": np.full(H, np.log(-np.log(r))), "gamma_log": np.full(H, 0.5 * np.log1p(-r * r))}
    rnn = bptt.random_rnn(H, 1, 1, seed=seed, init="orthogonal", radius=r, std=0.01, head="mse")
    return {"linear": (lin, "lam"), "lru": (lru.replace(**ring), "nu_log"),
            "lru, no normalisation": (lru.replace(nu_log=ring["nu_log"], gamma_log=None), "nu_log"),
            "rnn (tanh)": (rnn, "W")}


def sensitivity(H=16, N=4, T=1000, seed=0):
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(N, T, 1)), rng.normal(size=(N, T, 1))
    rows = []
    for r in MEMORIES:
        for label, (model, name) in models(r, H, seed).items():
            s = memory.sensitivity(model, x, y)
            flow = s.error_flow(lags=(10, 100))
            at = s.at()
            rows.append({"model": label, "memory": r, "param": name, "state": at["state"], "moment": at[name],
                         "moments": {k: at[k] for k in s.names}, "decay": flow["decay"],
                         "ratio_10": flow["ratio"][10], "ratio_100": flow["ratio"][100]})
            print(f"sensitivity  {label:<24} memory {r:<6} E h^2 {at['state']:.3g}  d h/d {name} {at[name]:.3g}  "
                  f"decay {flow['decay']:.4f}", flush=True)
    return {"H": H, "N": N, "T": T, "seed": seed, "memories": list(MEMORIES), "rows": rows}


# --- part 3: teacher-student -------------------------------------------------------------------------
def teacher(nu0, seed):
    """The teacher LRU (TEACHER_UNITS units, D = O = 1), its output scaled to unit variance."""
    m = bptt.random_model("lru", TEACHER_UNITS, 1, 1, seed=seed, head="mse", r_min=nu0, r_max=(1 + nu0) / 2,
                          max_phase=np.pi)
    m = m.replace(c=np.zeros(1))
    x = np.random.default_rng([seed, 1]).normal(size=(HELD_OUT, LENGTH, 1))
    return m.replace(V=m.V / bptt.forward(m, x).q.std())


def student(kind, nu0, seed):
    if kind == "rnn":
        return bptt.random_rnn(HIDDEN, 1, 1, seed=seed, bias=True, head="mse")
    return bptt.random_model("lru", HIDDEN, 1, 1, seed=seed, head="mse", r_min=nu0, r_max=(1 + nu0) / 2,
                             max_phase=np.pi, normalise=kind == "lru")


def train_one(kind, nu0, steps, batch, seed, lr=None):
    """One student on one teacher: its held-out losses at the start and the end, the training loss
    every few steps, and the wall time."""
    start = time.perf_counter()
    lr = LR[kind] if lr is None else lr
    tch = teacher(nu0, seed)
    model = student(kind, nu0, seed + 1)
    x_test = np.random.default_rng([seed, 2]).normal(size=(HELD_OUT, LENGTH, 1))
    y_test = bptt.forward(tch, x_test).q
    test = lambda m: float(bptt.loss(m, x_test, y_test, reduction="mean"))  # noqa: E731
    first = test(model)
    opt = adam(lr)
    params = dict(model.params)
    state = opt.init(params)
    rng = np.random.default_rng([seed, 3])  # the same batches for every student of this teacher
    curve, every, diverged = [], max(1, steps // 50), False
    for step in range(steps):
        x = rng.normal(size=(batch, LENGTH, 1))
        try:
            loss, g = bptt.gradients(model, x, bptt.forward(tch, x).q, reduction="mean")
        except FloatingPointError:  # the forward pass or the gradient overflowed
            diverged = True
            break
        if step % every == 0 or step == steps - 1:
            curve.append([step, float(loss)])
        params, state = opt.update(g.params, state, params)
        model = model.replace(**params)
    final = None if diverged else test(model)
    return {"student": kind, "nu0": nu0, "lr": lr, "steps": steps, "batch": batch, "seed": seed,
            "initial_loss": first, "final_loss": final, "curve": curve,
            "seconds": round(time.perf_counter() - start, 1)}


def pilot(batch, seed, jobs):
    """The learning rates' pilot: every student at nu0 = PILOT_NU0 for PILOT_STEPS updates with each
    rate of PILOT_LR (LR holds, for each student, the one with the lowest held-out loss)."""
    start = time.perf_counter()
    tasks = [(kind, PILOT_NU0, PILOT_STEPS, batch, seed, lr) for kind in STUDENTS for lr in PILOT_LR]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        runs = list(pool.map(_train, tasks))
    for r in runs:
        print(f"pilot  {r['student']:<6} lr {r['lr']:<7g} loss {r['final_loss']}", flush=True)
    return {"nu0": PILOT_NU0, "steps": PILOT_STEPS, "batch": batch, "seed": seed, "lrs": list(PILOT_LR),
            "wall_seconds": round(time.perf_counter() - start, 1), "runs": runs}


def teacher_student(steps, batch, seed, jobs, nu0s=NU0, students=STUDENTS):
    start = time.perf_counter()
    tasks = [(kind, nu0, steps, batch, seed) for nu0 in nu0s for kind in students]
    tasks.sort(key=lambda t: t[0] == "rnn")  # the slow ones first, so the pool ends together
    runs = []
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for r in pool.map(_train, tasks):
            print(f"teacher  nu0 = {r['nu0']:<5} {r['student']:<6} loss {r['initial_loss']:.3g} -> "
                  f"{r['final_loss'] if r['final_loss'] is None else format(r['final_loss'], '.3g')}  "
                  f"({r['seconds']} s)", flush=True)
            runs.append(r)
    runs.sort(key=lambda r: (STUDENTS.index(r["student"]), r["nu0"]))
    return {"teacher_units": TEACHER_UNITS, "hidden": HIDDEN, "length": LENGTH, "held_out": HELD_OUT,
            "steps": steps, "batch": batch, "seed": seed, "jobs": jobs, "lr": LR, "nu0": list(nu0s),
            "wall_seconds": round(time.perf_counter() - start, 1), "runs": runs}


def _train(task):
    return train_one(*task)


# --- figures (docs/generate.py draws them from the results file) ------------------------------------
def figures(results) -> dict:
    """{path from the repository's root: matplotlib Figure} for the parts the results hold."""
    out = {}
    if "closed" in results:
        out["docs/memory-closed.png"] = memory.figure(results["closed"]["rows"])
    if "teacher" in results:
        out["docs/memory-teacher.png"] = teacher_figure(results["teacher"])
    return out


def teacher_figure(part):
    """Final held-out loss against nu0 per student (left), and the training curves at the largest
    nu0 (right)."""
    from matplotlib.figure import Figure
    from bptt.plots import require_matplotlib

    require_matplotlib()
    fig = Figure(figsize=(9.6, 3.8), layout="constrained")
    left, right = fig.subplots(1, 2)
    top = max(part["nu0"])
    for i, kind in enumerate(STUDENTS):
        mine = [r for r in part["runs"] if r["student"] == kind]
        if not mine:
            continue
        done = [r for r in mine if r["final_loss"] is not None]
        left.plot([r["nu0"] for r in done], [r["final_loss"] for r in done], "o-", color=f"C{i}", label=LABELS[kind])
        for r in mine:
            if r["nu0"] == top and r["curve"]:
                steps, losses = zip(*r["curve"])
                right.plot(steps, losses, color=f"C{i}", label=LABELS[kind])
    left.set_yscale("log")
    left.set_xlabel("ν₀ (the teacher's |λ| lies in [ν₀, (1 + ν₀)/2])")
    left.set_ylabel("held-out loss (1 = predicting 0)")
    left.set_title(f"after {part['steps']} Adam steps")
    left.legend(fontsize=8)
    right.set_yscale("log")
    right.set_xlabel("Adam step")
    right.set_ylabel("training loss")
    right.set_title(f"training, ν₀ = {top:g}")
    for ax in (left, right):
        ax.grid(True, which="major", alpha=0.3)
    return fig


# --- the command ---------------------------------------------------------------------------------------
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--parts", nargs="+", choices=("closed", "sensitivity", "teacher", "pilot"),
                   default=["closed", "sensitivity", "teacher"], help="pilot (the learning rates' choice) "
                   "runs only when named")
    p.add_argument("--samples", type=int, default=20_000, help="Monte Carlo sequences per (lambda, rho)")
    p.add_argument("--steps", type=int, default=200, help="Adam updates per student")
    p.add_argument("--batch", type=int, default=16, help="sequences per update")
    p.add_argument("--nu0", type=float, nargs="+", default=list(NU0))
    p.add_argument("--students", nargs="+", choices=STUDENTS, default=list(STUDENTS))
    p.add_argument("--jobs", type=int, default=2, help="processes for the teacher part")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    start = time.perf_counter()
    for part in args.parts:
        t = time.perf_counter()
        if part == "closed":
            results[part] = closed(args.samples, args.seed)
        elif part == "sensitivity":
            results[part] = sensitivity(seed=args.seed)
        elif part == "pilot":
            results[part] = pilot(args.batch, args.seed, args.jobs)
        else:
            results[part] = teacher_student(args.steps, args.batch, args.seed, args.jobs, tuple(args.nu0),
                                            tuple(args.students))
        results[part]["part_seconds"] = round(time.perf_counter() - t, 1)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out} ({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
