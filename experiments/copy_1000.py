"""The copy task at L = 1000: expRNN's setup against a plain tanh RNN, each under a wall-clock budget.

    nice -n 5 python experiments/copy_1000.py [--minutes 30] [--baseline-minutes 10] [--steps 4000]

The task is bptt's copy (Arjovsky et al. 2016; bptt.tasks.synthetic) at length 1000: 10 symbols, 999
blanks, the delimiter, 10 blanks, 1020 steps in all, the 10 symbols to be emitted in the last 10.
Lezcano-Casado & Martinez-Rubio's copying script (lezcano/expRNN, `1_copying.py`, L = 1000) has the
same length, the same 1001 steps from the last symbol to the first answer and the same memoryless
baseline, 10 ln 8 / (L + 20) nats per step; its delimiter falls on the first answer's step, ours one
step before. The loss is the mean cross-entropy over all 1020 steps, as theirs.

Runs, each through bptt.train with the settings in RUNS and a budget (bptt train --minutes):
  expRNN   H = 190, W = expm(A) of a skew A from Henaff's initialisation, modReLU with its bias,
           RMSprop (decay 0.9: bptt's; PyTorch's default, theirs, is 0.99) at lr 2e-4 for U, V, the
           biases and at 2e-5 for A, batch 128, no clipping (theirs: none), --minutes
  tanh     the baseline: H = 190, tanh, W, U, V uniform on +-1/sqrt(fan-in) (PyTorch's nn.RNN),
           the same optimiser, rate and batch, --baseline-minutes
Both read U and V from bptt's uniform initialisation (theirs: Kaiming normal), and both have an input
bias b and an output bias c. Each run stops at --steps updates (4000: their script's iterations) or
when its budget is spent, whichever comes first; the held-out set (500 sequences) is scored every
--eval-every updates and at the last. Writes experiments/results/copy_1000.json; the figure,
experiments/figures/copy_1000.png, is drawn from it by figures() (docs/generate.py: make docs).
"""
import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "copy_1000.json"
FIGURE = "experiments/figures/copy_1000.png"
COMMON = {"task": "copy", "length": 1000, "hidden": 190, "batch": 128, "optimizer": "rmsprop", "lr": 2e-4,
          "clip_norm": 0, "dtype": "float32"}
RUNS = {
    "expRNN": {"activation": "modrelu", "param": "exp", "param_lr": 2e-5, "init": "henaff"},
    "tanh": {"activation": "tanh", "init": "uniform"},
}
LABELS = {"expRNN": "expRNN: W = expm(A), Henaff init, modReLU", "tanh": "tanh RNN, uniform init"}
PAPER_ITERATIONS = 4000  # lezcano/expRNN 1_copying.py: --T, the number of updates


def commit():
    """The repository's commit, with '+changes' when the work tree differs from it."""
    def git(*a):
        return subprocess.run(["git", *a], cwd=HERE, capture_output=True, text=True).stdout.strip()
    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def run_one(name, minutes, steps, eval_every, seed):
    from bptt.train import resolve, train

    cfg = resolve({**COMMON, **RUNS[name], "steps": steps, "minutes": minutes, "seed": seed,
                   "eval_every": eval_every, "checkpoint_every": steps})
    t0 = time.time()
    with tempfile.TemporaryDirectory() as d:
        s = train(cfg, d, progress=False)
        rows = [json.loads(l) for l in (Path(d) / "metrics.jsonl").read_text().splitlines()]
    curve = [{"update": r["step"], "loss": r["loss"], "wall_s": r["wall_s"]} for r in rows]
    held = [{"update": r["step"], "wall_s": r["wall_s"], "test_loss": r["test_loss"], "test_recall": r["test_recall"]}
            for r in rows if "test_loss" in r]
    out = {"name": name, "label": LABELS[name], "minutes": minutes, "config": cfg.to_dict(), "updates": s["steps"],
           "out_of_minutes": s["out_of_minutes"], "wall_s": s["wall_s"], "elapsed_s": time.time() - t0,
           "final_test_loss": s["test_loss"], "final_test_recall": s["test_recall"],
           "best_test_loss": min(h["test_loss"] for h in held), "curve": curve, "held_out": held}
    if cfg.param:
        out["max_orthogonality"] = max(r["orthogonality"] for r in rows)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0, help="expRNN's wall-clock budget")
    ap.add_argument("--baseline-minutes", type=float, default=10.0, help="the tanh baseline's budget")
    ap.add_argument("--steps", type=int, default=PAPER_ITERATIONS, help="updates at most")
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    import bptt
    from bptt.tasks import make

    started, code = time.time(), commit()  # the commit the runs start from
    load = [os.getloadavg()[0]]
    runs = []
    for name, minutes in (("expRNN", args.minutes), ("tanh", args.baseline_minutes)):
        runs.append(run_one(name, minutes, args.steps, args.eval_every, args.seed))
        load.append(os.getloadavg()[0])
        r = runs[-1]
        print(f"{name}: {r['updates']} updates in {r['wall_s'] / 60:.1f} min, best held-out loss "
              f"{r['best_test_loss']:.4f}, last {r['final_test_loss']:.4f} (recall {r['final_test_recall']:.3f})",
              flush=True)
    res = {"bptt_version": bptt.__version__, "commit": code, "python": platform.python_version(),
           "cpus": os.cpu_count(), "nice": os.nice(0), "load_average_1min": load,
           "baseline": float(make("copy", length=COMMON["length"]).baseline),
           "baseline_text": "10 ln 8 / (L + 20)", "target": "held-out loss below 1% of the baseline",
           "paper_iterations": PAPER_ITERATIONS, "settings": {"common": COMMON, "runs": RUNS,
                                                              "eval_every": args.eval_every, "seed": args.seed,
                                                              "steps": args.steps},
           "total_s": time.time() - started, "runs": runs}
    Path(args.out).write_text(json.dumps(res, indent=None) + "\n")
    print(f"wrote {args.out}")


def figures(res) -> dict:
    """{path from the repository's root: matplotlib Figure}: docs/generate.py draws it from the results."""
    return {FIGURE: figure(res)}


def figure(res):
    """Training loss per update (thin) and held-out loss (markers) of each run, the memoryless
    baseline and 1% of it dashed; log scale."""
    from matplotlib.figure import Figure
    from bptt.plots import require_matplotlib

    require_matplotlib()
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.subplots()
    for i, r in enumerate(res["runs"]):
        c = np.array([(p["update"], p["loss"]) for p in r["curve"]])
        h = np.array([(p["update"], p["test_loss"]) for p in r["held_out"]])
        ax.plot(c[:, 0], c[:, 1], color=f"C{i}", lw=0.7, alpha=0.6)
        ax.plot(h[:, 0], h[:, 1], "o", color=f"C{i}", ms=3.5,
                label=f"{r['label']}: {r['updates']} updates in {r['wall_s'] / 60:.0f} min")
    b = res["baseline"]
    ax.axhline(b, color="k", ls=":", lw=1, label=f"memoryless baseline 10 ln 8 / 1020 = {b:.4f}")
    ax.axhline(b / 100, color="k", ls="--", lw=0.8, label="target: 1% of the baseline")
    ax.set_yscale("log")
    ax.set_xlabel("update (batch of 128 sequences)")
    ax.set_ylabel("cross-entropy per step (nats)")
    ax.set_title("copy, L = 1000: training loss (lines) and held-out loss (dots)", fontsize=10)
    ax.legend(fontsize=7.5, loc="best")
    return fig


if __name__ == "__main__":
    main()
