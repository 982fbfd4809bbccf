"""Online learning on the embedded Reber grammar (bptt.tasks "reber"): every method of bptt.approx
on the same stream, the weights updated as the stream goes, the state never reset.

    OPENBLAS_NUM_THREADS=1 python experiments/online_reber.py [--steps 35000] [--hidden 12] [--lr 0.05]

The model: an Elman RNN (tanh, H = 12, W and U Gaussian with std 0.1, biases), D = O = 7 symbols,
softmax head. The stream: the task's training stream (embedded Reber strings back to back); each
method reads it once, symbol by symbol, predicting the next symbol. Plain SGD with the same lr for
every method. RTRL, SnAp-1, SnAp-2 and UORO update after every step with their estimate of dE_t/dtheta
(bptt.approx.online.train); TBPTT(k1, k2) updates every k1 steps through its last k2
(online.train_tbptt). Each final model is scored on the task's held-out stream (task.evaluate): the
mean loss per symbol against the grammar's best possible loss and the memoryless baseline (which
cannot remember the second symbol), and the share of held-out strings predicted correctly.

Writes experiments/results/online_reber.json.
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np

import bptt
from bptt import tasks
from bptt.approx import online

METHODS = ("rtrl", "snap-1", "snap-2", "uoro", "tbptt(1,1)", "tbptt(1,10)", "tbptt(5,5)", "tbptt(5,20)")
OUT = Path(__file__).resolve().parent / "results" / "online_reber.json"


def run(name, model, x, y, lr, seed):
    if name.startswith("tbptt"):
        k1, k2 = (int(v) for v in name[6:-1].split(","))
        return online.train_tbptt(model, x, y, k1, k2, lr=lr)
    return online.train(model, x, y, name, lr=lr, seed=seed)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=35000)
    p.add_argument("--hidden", type=int, default=12)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--methods", nargs="+", default=list(METHODS), help="e.g. rtrl uoro 'tbptt(5,20)'")
    args = p.parse_args(argv)
    task = tasks.make("reber")
    ids = task.train_ids[:args.steps + 1]
    x, y = ids[:-1], ids[1:]
    out = {"steps": len(x), "hidden": args.hidden, "lr": args.lr, "seed": args.seed,
           "optimal_loss": task.optimal_loss(), "baseline": task.baseline, "methods": []}
    print(f"{len(x)} online steps, H = {args.hidden}, SGD lr = {args.lr}; held-out loss: best possible "
          f"{out['optimal_loss']:.4f}, memoryless baseline {out['baseline']:.4f}")
    for name in args.methods:
        model = bptt.random_rnn(args.hidden, task.D, task.O, seed=args.seed, init="normal", std=0.1, bias=True)
        t0 = time.perf_counter()
        final, hist = run(name, model, x, y, args.lr, args.seed)
        ev = task.evaluate(final)
        row = {"method": name, "seconds": time.perf_counter() - t0, "diverged": hist.diverged,
               "updates": hist.updates, "stream_loss_last_5000": float(np.mean(hist.loss[-5000:])),
               "held_out_loss": ev["loss"], "strings_correct": ev["strings_correct"], "success": ev["success"]}
        out["methods"].append(row)
        print(f"{name:12s} held-out loss {row['held_out_loss']:.4f}  strings correct {row['strings_correct']:.3f}  "
              f"stream loss (last 5000) {row['stream_loss_last_5000']:.4f}  updates {row['updates']}"
              + (f"  diverged at {hist.diverged}" if hist.diverged is not None else "")
              + f"  ({row['seconds']:.0f} s)", flush=True)
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1))
    print(f"written {OUT.relative_to(Path.cwd()) if OUT.is_relative_to(Path.cwd()) else OUT}")


if __name__ == "__main__":
    main()
