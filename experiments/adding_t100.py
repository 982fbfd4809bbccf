"""The adding problem at T = 100 with Hochreiter & Schmidhuber's criterion: the LSTM against the Elman variants.

    OPENBLAS_NUM_THREADS=1 python experiments/adding_t100.py [--methods LSTM vanilla clip clip+Omega IRNN]
        [--seeds 0 1 2] [--steps 3000] [--optimizer adam] [--lr 0.001]

The task is Hochreiter & Schmidhuber's (1997, experiment 4), as bptt.tasks.Adding(variant="hochreiter")
generates it: pairs (value in [-1, 1], marker), two marked values, target 0.5 + (X1 + X2) / 4 at the
last step, training lengths T..T + T/10 = 100..110, 1000 held-out sequences of length 105. Their
criterion: a run succeeds when every held-out sequence is processed correctly, |error| < 0.04 at
the last step (predicting the mean 0.5 gets about 17% of them right). Each run is evaluated every 250
updates and stops at the first evaluation that meets it; one that has not met it after --steps
updates is a failure.

Every method gets the same budget: H = 50, batch 20, the same optimiser and learning rate, --steps
updates (3000: the budget of experiments/success_vs_length.py). The methods are experiments/success_vs_length.py's (vanilla, clip, clip+Omega, IRNN; the
LSTM with its forget-gate bias at +1 and clipping at 1; GRU on request). Adam rather than that
script's Nesterov momentum: the loss is one squared error per sequence (about 0.04 at the baseline),
whose gradients are too small for a fixed learning rate to move the gated cells in a few thousand
updates. Results are appended to experiments/results/adding_t100.jsonl as they come (re-running
skips finished runs); --table-only prints the table from it.
"""
import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from bptt.train import Diverged, resolve, train
from success_vs_length import METHODS

HERE = Path(__file__).resolve().parent
T = 100
COMMON = {"task": "adding", "variant": "hochreiter", "length": T, "hidden": 50, "batch": 20}
DEFAULT_METHODS = ["LSTM", "vanilla", "clip", "clip+Omega", "IRNN"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="+", default=DEFAULT_METHODS, choices=list(METHODS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--optimizer", default="adam")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--table-only", action="store_true", help="print the table from the results file")
    args = ap.parse_args()
    out = HERE / "results" / "adding_t100.jsonl"
    if not args.table_only:
        run(args, out)
    print(table([json.loads(l) for l in out.read_text().splitlines()] if out.exists() else []))


def run(args, out):
    key = lambda r: (r["method"], r["seed"], r["max_steps"], r["optimizer"], r["lr"])  # noqa: E731
    done = {key(r) for r in map(json.loads, out.read_text().splitlines())} if out.exists() else set()
    for seed in args.seeds:  # seed by seed, so that a stopped run leaves every method with equal seeds
        for method in args.methods:
            rec = {"method": method, "T": T, "seed": seed, "max_steps": args.steps, "optimizer": args.optimizer,
                   "lr": args.lr}
            if key(rec) in done:
                continue
            cfg = resolve({**COMMON, **METHODS[method], "optimizer": args.optimizer, "lr": args.lr, "seed": seed,
                           "steps": args.steps, "eval_every": 250, "checkpoint_every": args.steps,
                           "stop_on_success": True, "fallback": "stop"})
            t0 = time.perf_counter()
            with tempfile.TemporaryDirectory() as d:
                try:
                    s = train(cfg, d, progress=False, log=lambda *a: None)
                    rec.update(success=bool(s["test_success"]), steps=s["steps"], test_mse=s["test_mse"],
                               test_correct=s["test_correct"])
                except Diverged as e:
                    rec.update(success=False, diverged=str(e))
            rec["wall_s"] = time.perf_counter() - t0
            with open(out, "a") as f:
                f.write(json.dumps(rec) + "\n")
            print(json.dumps(rec), flush=True)


def table(rows):
    """Per method: successes / runs, updates to success, held-out share with |error| < 0.04, test MSE."""
    lines = [f"adding problem, T = {T} (Hochreiter & Schmidhuber 1997: success = every held-out |error| < 0.04; "
             "memoryless MSE 0.0396)", "",
             "| method | budget | success | updates to success | share with abs(error) < 0.04 | held-out MSE |",
             "|---|---|---|---|---|---|"]
    for method in METHODS:
        for budget in sorted({(r["optimizer"], r["lr"], r["max_steps"]) for r in rows if r["method"] == method}):
            rs = [r for r in rows if r["method"] == method and (r["optimizer"], r["lr"], r["max_steps"]) == budget]
            wins = [r["steps"] for r in rs if r["success"]]
            fin = [r for r in rs if "test_mse" in r]
            shares = ", ".join(f"{r['test_correct']:.3f}" for r in fin) or "-"
            mse = ", ".join(f"{r['test_mse']:.2g}" for r in fin) or "-"
            div = sum("diverged" in r for r in rs)
            lines.append(f"| {method} | {budget[0]} lr {budget[1]:g}, {budget[2]} updates | {len(wins)}/{len(rs)}"
                         + (f" ({div} diverged)" if div else "") + f" | {statistics.median(wins) if wins else '-'}"
                         f" | {shares} | {mse} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
