"""Success rate against sequence length, the shape of Pascanu, Mikolov & Bengio's (2013) figure 7.

    OPENBLAS_NUM_THREADS=1 python experiments/success_vs_length.py [--tasks adding temporal]
        [--lengths 10 20 40] [--seeds 0 1 2] [--steps 3000]

Methods (H = 50, batch 20, the same optimiser and the same number of updates for all; see METHODS):
  vanilla    tanh, W ~ N(0, 0.1^2) (Pascanu's basic_tanh), no clipping
  clip       the same with global-norm clipping at 1 (Pascanu et al., algorithm 1)
  clip+Omega the same plus Pascanu's regulariser, alpha = 2
  IRNN       relu, W = I (Le, Jaitly & Hinton 2015), clipping at 1
  LSTM       an LSTM cell (H = 50 cells, PyTorch's initialisation, forget-gate bias + 1: Gers et al.
             2000, Jozefowicz et al. 2015), clipping at 1
  GRU        a GRU cell (H = 50, PyTorch's form and initialisation), clipping at 1
  LRU        a linear recurrent unit (Orvieto et al. 2023; H = 50 complex units, the cell's ring
             initialisation: |lambda|^2 uniform on [0, 1], phases on [0, 2 pi], gamma normalisation),
             clipping at 1
  minGRU     a minGRU (Feng et al. 2024; H = 50, its own uniform +-1/sqrt(H) initialisation),
             clipping at 1
  exp        W = expm(A) of a skew A (expRNN, Lezcano-Casado & Martinez-Rubio 2019; bptt.param), A
             from Henaff's initialisation and trained at the same lr, modReLU with its bias, clipping at 1
  coRNN      the coupled oscillator cell (Rusch & Mishra 2021; H = 50, the cell's default dt, gamma,
             eps: the authors' sMNIST settings), clipping at 1
  floss      clip's network and clipping, after gradient flossing of its 5 leading Lyapunov exponents
             before training (Engelken 2023; bptt.floss, `bptt train --floss 5`: 100 Adam updates of
             the regulariser alone on batches of the task)
(With H = 50 the gated networks have more weights: 4x and 3x the Elman cell's U, W, b. The LRU
and the minGRU have no recurrent matrix: one layer, read by the same linear head as the others.)
Each run stops at the first evaluation (every 250 updates) that meets the task's criterion: the
adding problem in Le et al.'s variant (held-out MSE < 0.01 against the 0.167 baseline), the temporal
order problem as Pascanu et al. generate it (no misclassified held-out sequence). A run that has not
met it after --steps updates counts as a failure. Results are appended to
experiments/results/success_vs_length.jsonl as they come (re-running skips finished runs);
the figure is experiments/figures/success_vs_length.png.
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

from bptt.train import Diverged, resolve, train

HERE = Path(__file__).resolve().parent
COMMON = {"hidden": 50, "batch": 20, "optimizer": "nesterov", "lr": 0.01}
METHODS = {
    "vanilla": {"activation": "tanh", "init": "normal", "std": 0.1, "clip_norm": 0},
    "clip": {"activation": "tanh", "init": "normal", "std": 0.1, "clip_norm": 1.0},
    "clip+Omega": {"activation": "tanh", "init": "normal", "std": 0.1, "clip_norm": 1.0, "omega": 2.0},
    "IRNN": {"activation": "relu", "init": "identity", "clip_norm": 1.0},
    "LSTM": {"cell": "lstm", "forget_bias": 1.0, "clip_norm": 1.0},
    "GRU": {"cell": "gru", "clip_norm": 1.0},
    "LRU": {"cell": "lru", "clip_norm": 1.0},
    "minGRU": {"cell": "mingru", "clip_norm": 1.0},
    "exp": {"activation": "modrelu", "param": "exp", "init": "henaff", "clip_norm": 1.0},
    "coRNN": {"cell": "cornn", "clip_norm": 1.0},
    "floss": {"activation": "tanh", "init": "normal", "std": 0.1, "clip_norm": 1.0, "floss": 5},
}
TASKS = {"adding": {"task": "adding", "variant": "le"}, "temporal": {"task": "temporal"}}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", default=list(TASKS))
    ap.add_argument("--lengths", type=int, nargs="+", default=[10, 20, 40])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--methods", nargs="+", default=list(METHODS))
    ap.add_argument("--plot-only", action="store_true", help="redraw the figure and table from the results")
    args = ap.parse_args()
    out = HERE / "results" / "success_vs_length.jsonl"
    if args.plot_only:
        return plot(out, HERE / "figures" / "success_vs_length.png")
    done = {(r["task"], r["method"], r["T"], r["seed"], r["max_steps"])
            for r in map(json.loads, out.read_text().splitlines())} if out.exists() else set()
    for task in args.tasks:
        for T in args.lengths:
            for method in args.methods:
                for seed in args.seeds:
                    if (task, method, T, seed, args.steps) in done:
                        continue
                    cfg = resolve({**TASKS[task], **COMMON, **METHODS[method], "length": T, "seed": seed,
                                   "steps": args.steps, "eval_every": 250, "checkpoint_every": args.steps,
                                   "stop_on_success": True, "fallback": "stop"})
                    t0 = time.perf_counter()
                    with tempfile.TemporaryDirectory() as d:
                        try:
                            s = train(cfg, d, progress=False)
                            rec = {"success": bool(s["test_success"]), "steps": s["steps"], "test_loss": s["test_loss"]}
                        except Diverged as e:
                            rec = {"success": False, "diverged": str(e)}
                    rec = {"task": task, "method": method, "T": T, "seed": seed, "max_steps": args.steps,
                           "wall_s": time.perf_counter() - t0, **rec}
                    with open(out, "a") as f:
                        f.write(json.dumps(rec) + "\n")
                    print(json.dumps(rec), flush=True)
    plot(out, HERE / "figures" / "success_vs_length.png")


FIGURE = "experiments/figures/success_vs_length.png"
DODGE = 0.05  # log2 units between neighbouring methods' points at one length


def plot(results, path):
    """Write the figure of the results file to path (as docs/generate.py writes it: the same bytes)
    and print the table."""
    from bptt import plots

    rows = [json.loads(l) for l in Path(results).read_text().splitlines() if l.strip()]
    fig = figure(rows)
    plots.finish(fig)
    fig.savefig(path, dpi=plots.DPI, metadata={"Software": None})
    print(f"wrote {path}")
    print(table(rows))


def figures(rows) -> dict:
    """{path from the repository's root: matplotlib Figure}: docs/generate.py draws it from the results."""
    return {FIGURE: figure(rows)}


def figure(rows):
    """Success rate against T, one panel per task, one line per method. At each length the methods'
    points stand side by side (a small shift along T, DODGE in log2 units, so that equal rates stay
    visible); the rates themselves are plotted exactly. The legend sits below the panels."""
    from matplotlib.figure import Figure
    from bptt.plots import require_matplotlib

    require_matplotlib()
    tasks = [t for t in TASKS if any(r["task"] == t for r in rows)]
    fig = Figure(figsize=(5 * len(tasks), 4.4), layout="constrained")
    axes = fig.subplots(1, len(tasks), squeeze=False)[0]
    handles = {}
    for ax, task in zip(axes, tasks):
        allT = sorted({r["T"] for r in rows if r["task"] == task})
        for i, (method, marker) in enumerate(zip(METHODS, "osD^vPXh*<>")):
            rs = [r for r in rows if r["task"] == task and r["method"] == method]
            Ts = sorted({r["T"] for r in rs})
            if not Ts:
                continue
            rate = [sum(r["success"] for r in rs if r["T"] == T) / sum(1 for r in rs if r["T"] == T) for T in Ts]
            n = sum(1 for r in rs if r["T"] == Ts[0])
            shift = 2 ** ((i - (len(METHODS) - 1) / 2) * DODGE)
            (h,) = ax.plot([T * shift for T in Ts], rate, marker=marker, color=f"C{i}", label=f"{method} ({n} seeds)")
            handles.setdefault(method, h)
        ax.set_xscale("log", base=2)
        ax.set_xticks(allT, [str(T) for T in allT])
        ax.minorticks_off()
        ax.set_ylim(-0.05, 1.05)
        ax.set_xlabel("sequence length T")
        ax.set_ylabel("success rate")
        ax.set_title({"adding": "adding problem (Le et al. variant)", "temporal": "temporal order"}[task], fontsize=10)
    fig.legend(handles=list(handles.values()), loc="outside lower center", ncol=4, fontsize=8)
    fig.suptitle("success rate against length; at each T the methods' points stand side by side (shifted a little "
                 "along T), at their exact rates", fontsize=9)
    return fig


def table(rows):
    """Successes / runs for each task, method and length, as a Markdown table."""
    lines = []
    for task in TASKS:
        rs = [r for r in rows if r["task"] == task]
        Ts = sorted({r["T"] for r in rs})
        if not Ts:
            continue
        lines += [f"| {task} | " + " | ".join(f"T = {T}" for T in Ts) + " |", "|---" * (len(Ts) + 1) + "|"]
        for method in [m for m in METHODS if any(r["method"] == m for r in rs)]:
            cells = []
            for T in Ts:
                c = [r for r in rs if r["method"] == method and r["T"] == T]
                cells.append(f"{sum(r['success'] for r in c)}/{len(c)}" if c else "")
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
