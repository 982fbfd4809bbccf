"""Many random cross-checks at once: `python -m bptt.frameworks --cases 200 --seed 0`.

Each case draws sizes N, T, D, H, O, an activation, a head, biases, dense or id inputs, h0,
masked targets, a truncation K in {None, 0, 1, 3, T, T + 2} and a reduction, and runs compare()
for each framework. The report gives, per framework, the number of cases, how many passed and
the largest relative error seen.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from ..activations import ACTIVATIONS
from ..model import RNN


def random_case(rng, N, T, D, H, O, *, batched, activation, head, b, c, dense, h0, mask):
    """(model, x, y, h0) drawn from rng; weights small enough that no unit saturates exactly.

    x: ids (N, T) / (T,) or dense (N, T, D) / (T, D); y: ids with about 40% -1 when mask, or real
    values with about 40% NaN rows for head "mse"; h0 (N, H) / (H,) or None.
    """
    m = RNN(U=rng.normal(0, 0.7, (H, D)), W=rng.normal(0, 0.8 / np.sqrt(H), (H, H)),
            V=rng.normal(0, 0.7, (O, H)), b=rng.normal(0, 0.3, H) if b else None,
            c=rng.normal(0, 0.3, O) if c else None, activation=activation, head=head)
    lead = (N, T) if batched else (T,)
    x = rng.normal(size=lead + (D,)) if dense else rng.integers(0, D, lead)
    if head == "mse":
        y = rng.normal(size=lead + (O,))
        if mask:
            y[rng.random(lead) < 0.4] = np.nan
    else:
        y = rng.integers(0, O, lead)
        if mask:
            y[rng.random(lead) < 0.4] = -1
    hh = rng.normal(0, 0.5, (N, H) if batched else (H,)) if h0 else None
    return m, x, y, hh


def ambiguous(x, D) -> bool:
    """Integer (N, T) ids with T = D whose rows are all one-hot: bptt refuses them (rightly)."""
    x = np.asarray(x)
    return x.dtype.kind == "i" and x.ndim == 2 and x.shape[1] == D and bool(
        np.all((x == 0) | (x == 1)) and np.all(x.sum(-1) == 1))


def stress(cases=100, *, seed=0, frameworks=None, max_size=(3, 8, 4, 6, 4)) -> dict:
    """Run `cases` random cross-checks per framework: {name: {"cases", "passed", "worst_rel_err", "seconds"}}.

    max_size: the largest (N, T, D, H, O) drawn.
    """
    from . import available, compare

    names = available() if frameworks is None else list(frameworks)
    activations = tuple(ACTIVATIONS)
    rng = np.random.default_rng(seed)
    out = {}
    for name in names:
        start, passed, worst, done = time.perf_counter(), 0, 0.0, 0
        while done < cases:
            N, T, D, H, O = (int(rng.integers(1, k + 1)) for k in max_size)
            kw = dict(activation=activations[rng.integers(len(activations))], head=("softmax", "mse")[rng.integers(2)],
                      b=bool(rng.integers(2)), c=bool(rng.integers(2)), dense=bool(rng.integers(2)),
                      h0=bool(rng.integers(2)), mask=bool(rng.integers(2)))
            m, x, y, h0 = random_case(rng, N, T, D, H, O, batched=N > 1 or bool(rng.integers(2)), **kw)
            if ambiguous(x, D):
                continue
            K = (None, 0, 1, 3, T, T + 2)[rng.integers(6)]
            r = compare(m, x, y, frameworks=[name], truncate=K, h0=h0, reduction=("sum", "mean")[rng.integers(2)])
            passed += r.passed
            worst = max(worst, max(row.max_rel_err for row in r.rows))
            done += 1
        out[name] = {"cases": done, "passed": passed, "worst_rel_err": worst,
                     "seconds": round(time.perf_counter() - start, 1)}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bptt.frameworks", description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=100, help="random cases per framework (default 100)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random cases (default 0)")
    p.add_argument("--frameworks", help="comma-separated torch,jax,tensorflow (default: every installed one)")
    args = p.parse_args(argv)
    names = args.frameworks.split(",") if args.frameworks else None
    ok = True
    for name, r in stress(args.cases, seed=args.seed, frameworks=names).items():
        ok &= r["passed"] == r["cases"]
        print(f"{name:<11} {r['passed']}/{r['cases']} passed, worst relative error {r['worst_rel_err']:.2e}")
    return 0 if ok else 1
