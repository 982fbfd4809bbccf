"""min-char-rnn parity: `bptt train` against min-char-rnn's own loop on the same text, same settings.

    OPENBLAS_NUM_THREADS=1 python experiments/min_char_rnn_parity.py [--text FILE] [--steps 5000] [--seeds 0 1 2]

Settings (min-char-rnn's): hidden 100, chunks of 25 with the state carried, Adagrad lr 0.1 (eps 1e-8
inside the square root), element-wise clipping to [-5, 5], batch 1, weights N(0, 0.01^2), zero biases.
bptt runs in float32 (its default); min-char-rnn in float64 (NumPy's default), each from its own
seeded initialisation. Writes experiments/figures/min_char_rnn_parity.png and
experiments/results/min_char_rnn_parity.json, and prints the numbers.
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import min_char_rnn as mcr  # noqa: E402

from bptt.train import resolve, train  # noqa: E402
from bptt.train.loop import build_task  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--text", default=str(HERE.parent / "data" / "tinyshakespeare.txt"))
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    if not Path(args.text).is_file():
        sys.exit(f"text file {args.text} not found: pass --text FILE")
    cfg0 = {"task": "char", "text": args.text, "steps": args.steps, "eval_every": args.steps,
            "checkpoint_every": args.steps}
    task = build_task(resolve(cfg0))
    res = {"steps": args.steps, "seeds": args.seeds, "text": Path(args.text).name, "V": task.D,
           "min_char_rnn": {}, "bptt": {}}
    for seed in args.seeds:
        t = time.perf_counter()
        smooth, _, _ = mcr.train(task.train_ids, task.D, args.steps, seed=seed)
        res["min_char_rnn"][seed] = {"smooth": smooth.tolist(), "s_per_step": (time.perf_counter() - t) / args.steps}
        with tempfile.TemporaryDirectory() as d:
            s = train(resolve({**cfg0, "seed": seed}), d, progress=False)
            rows = [json.loads(l) for l in (Path(d) / "metrics.jsonl").read_text().splitlines()]
        res["bptt"][seed] = {"smooth": [r["smooth_loss"] for r in rows], "s_per_step": s["wall_s"] / args.steps,
                             "test_loss": s["test_loss"]}
        print(f"seed {seed}: final smoothed loss min-char-rnn {smooth[-1]:.3f}, bptt {rows[-1]['smooth_loss']:.3f}; "
              f"ms/step min-char-rnn {1e3 * res['min_char_rnn'][seed]['s_per_step']:.2f}, "
              f"bptt {1e3 * res['bptt'][seed]['s_per_step']:.2f}", flush=True)
    fm = np.array([v["smooth"][-1] for v in res["min_char_rnn"].values()])
    fb = np.array([v["smooth"][-1] for v in res["bptt"].values()])
    tm = np.array([v["s_per_step"] for v in res["min_char_rnn"].values()])
    tb = np.array([v["s_per_step"] for v in res["bptt"].values()])
    res["summary"] = {
        "final_smooth_min_char_rnn": fm.tolist(), "final_smooth_bptt": fb.tolist(),
        "mean_difference": float(fb.mean() - fm.mean()), "seed_spread_min_char_rnn": float(fm.max() - fm.min()),
        "within_spread": bool(abs(fb.mean() - fm.mean()) <= max(fm.max() - fm.min(), fb.max() - fb.min())),
        "ms_per_step_min_char_rnn": float(1e3 * tm.mean()), "ms_per_step_bptt": float(1e3 * tb.mean()),
        "memoryless_baseline_nats_per_char": float(task.baseline), "chance_nats_per_char": float(task.chance)}
    print(json.dumps(res["summary"], indent=1))
    plot(res, HERE / "figures" / "min_char_rnn_parity.png")
    for name in ("min_char_rnn", "bptt"):  # the stored curves keep every 10th update
        for v in res[name].values():
            v["smooth"] = v["smooth"][9::10]
    (HERE / "results" / "min_char_rnn_parity.json").write_text(json.dumps(res))


def plot(res, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, colour in (("min_char_rnn", "tab:blue"), ("bptt", "tab:orange")):
        for i, (seed, v) in enumerate(res[name].items()):
            ax.plot(np.arange(1, len(v["smooth"]) + 1), v["smooth"], color=colour, lw=1, alpha=0.8,
                    label=f"{'min-char-rnn' if name == 'min_char_rnn' else 'bptt train'}" if i == 0 else None)
    s = res["summary"]
    ax.set_xlabel("update (chunks of 25 characters)")
    ax.set_ylabel("smoothed loss per chunk (nats)")
    ax.set_title(f"min-char-rnn parity, {len(res['seeds'])} seeds each: {s['ms_per_step_min_char_rnn']:.2f} vs "
                 f"{s['ms_per_step_bptt']:.2f} ms/step", fontsize=10)
    ax.axhline(25 * s["memoryless_baseline_nats_per_char"], color="grey", ls=":", lw=1,
               label="memoryless baseline (25 x H(next|current))")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
