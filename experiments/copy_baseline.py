"""A vanilla tanh RNN on the copy task (Arjovsky, Shah & Bengio 2016) sits at the memoryless baseline.

    OPENBLAS_NUM_THREADS=1 python experiments/copy_baseline.py [--lengths 50 100] [--steps 2000] [--seeds 0 1]

Each run is `bptt train --task copy --length T` with the task's defaults (H = 80, orthogonal W, RMSprop
lr 1e-3, global-norm clipping at 1, batch 20). The held-out loss is compared with 10 ln 8 / (T + 20),
the loss of emitting blanks and then guessing uniformly. Writes experiments/figures/copy_baseline.png
and experiments/results/copy_baseline.json.
"""
import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from bptt.train import resolve, train

HERE = Path(__file__).resolve().parent


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", type=int, nargs="+", default=[50, 100])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = ap.parse_args()
    res = []
    for T in args.lengths:
        for seed in args.seeds:
            cfg = resolve({"task": "copy", "length": T, "steps": args.steps, "seed": seed,
                           "eval_every": max(1, args.steps // 20), "checkpoint_every": args.steps})
            with tempfile.TemporaryDirectory() as d:
                s = train(cfg, d, progress=False)
                rows = [json.loads(l) for l in (Path(d) / "metrics.jsonl").read_text().splitlines()]
            curve = [(r["step"], r["test_loss"]) for r in rows if "test_loss" in r]
            res.append({"T": T, "seed": seed, "baseline": s["baseline"], "final_test_loss": s["test_loss"],
                        "recall": s["test_recall"], "curve": curve, "lag_fraction": rows[-1]["lag_fraction"]})
            print(f"T = {T}, seed {seed}: held-out loss {s['test_loss']:.4f}, baseline {s['baseline']:.4f} "
                  f"(ratio {s['test_loss'] / s['baseline']:.3f}), recall of the 10 symbols {s['test_recall']:.3f}",
                  flush=True)
    (HERE / "results" / "copy_baseline.json").write_text(json.dumps(res))
    plot(res, HERE / "figures" / "copy_baseline.png")


def plot(res, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    colours = dict(zip(sorted({r["T"] for r in res}), ["tab:blue", "tab:orange", "tab:green", "tab:red"]))
    for r in res:
        c = np.array(r["curve"])
        ax.plot(c[:, 0], c[:, 1], color=colours[r["T"]], lw=1, label=f"T = {r['T']}" if r["seed"] == res[0]["seed"] else None)
        ax.axhline(r["baseline"], color=colours[r["T"]], ls=":", lw=1)
    ax.set_xlabel("update")
    ax.set_ylabel("held-out cross-entropy per step (nats)")
    ax.set_title("vanilla tanh RNN on the copy task; dotted: 10 ln 8 / (T + 20)", fontsize=10)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
