"""Watch vanishing set in or go away during training: the lag snapshots of two runs on temporal order.

    OPENBLAS_NUM_THREADS=1 python experiments/lag_snapshots.py [--length 40] [--steps 1500]

Both runs are `bptt train --task temporal --length T --snapshots 0,S/3,S` with the task's settings
(H = 50, SGD lr 0.01, clipping at 1); one is the tanh RNN with W ~ N(0, 0.1^2), the other the IRNN
(relu, W = I). Only the last output is scored, so row T-1 of each snapshot, ||dE/ds_k|| for every
step k, shows how much error reaches step k. The two relevant symbols sit at k in [T/10, 2T/10) and
[5T/10, 6T/10). Writes experiments/figures/lag_snapshots.png.
"""
import argparse
import tempfile
from pathlib import Path

import numpy as np

from bptt.train import resolve, train

HERE = Path(__file__).resolve().parent


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--length", type=int, default=40)
    ap.add_argument("--steps", type=int, default=1500)
    args = ap.parse_args()
    T, S = args.length, args.steps
    snaps = [0, S // 3, S]
    runs = {"tanh, W ~ N(0, 0.1^2)": {"activation": "tanh"},
            "IRNN (relu, W = I)": {"activation": "relu", "init": "identity"}}
    tables = {}
    for name, kw in runs.items():
        cfg = resolve({"task": "temporal", "length": T, "steps": S, "snapshots": snaps, "eval_every": S,
                       "checkpoint_every": S, **kw})
        with tempfile.TemporaryDirectory() as d:
            s = train(cfg, d, progress=False)
            tables[name] = {k: np.load(Path(d) / "snapshots" / f"dE_ds_step{k}.npy")[T - 1] for k in snaps}
        print(f"{name}: held-out error {s['test_error']:.3f}, success {s['test_success']}; "
              + ", ".join(f"step {k}: ||dE/ds_0|| / ||dE/ds_(T-1)|| = {v[0] / v[-1]:.3g}"
                          for k, v in tables[name].items()), flush=True)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, (name, tab) in zip(axes, tables.items()):
        for k, v in tab.items():
            ax.semilogy(np.arange(T), v, label=f"step {k}")
        ax.axvspan(T // 10, 2 * T // 10, color="grey", alpha=0.15)
        ax.axvspan(5 * T // 10, 6 * T // 10, color="grey", alpha=0.15)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step k (shaded: where the relevant symbols are)")
        ax.legend(fontsize=8)
    axes[0].set_ylabel(f"||dE/ds_k|| from the output at T-1 = {T - 1}")
    fig.suptitle(f"temporal order, T = {T}: the error reaching each step during training", fontsize=10)
    fig.tight_layout()
    path = HERE / "figures" / "lag_snapshots.png"
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
