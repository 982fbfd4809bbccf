"""Many random cross-checks at once: `python -m bptt.frameworks --cases 200 --seed 0`.

Each case draws a cell (each registered cell and variant the framework has: Elman, LSTM, GRU in
PyTorch's reset-after form or Keras's reset-before form, LRU, minGRU, minLSTM, linear), sizes N,
T, D, H, O, an activation (Elman), a head, biases, dense or id inputs, the initial state (h0, or
the pair (h0, c0) for an LSTM; an LRU's h0 is [Re h0, Im h0]), masked targets, a truncation K in
{None, 0, 1, 3, T, T + 2} and a reduction, and runs compare() for each framework. The report
gives, per framework, the number of cases, how many passed and the largest relative error seen,
and the cases and passes of each cell.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from .. import cells as registry
from ..activations import ACTIVATIONS
from ..model import model_class
from ._common import SPELLED, announce  # noqa: F401  (bptt.frameworks.stress.announce, as before)


def random_model(rng, D, H, O, *, cell="rnn", activation="tanh", head="softmax", b=False, c=False, bh=False):
    """A model with weights drawn from rng, small enough that no unit saturates exactly.

    cell: a registered cell or alias (registry.variants()). b, bh, c: whether the model has the input bias
    (role "input bias") and any other optional parameter of the cell's own (an LRU's gamma_log), the
    recurrent bias (role "recurrent bias") and the head's bias. A weight with an H axis last is
    N(0, 0.8 / sqrt(H)), the others N(0, 0.7); vectors (biases, an LRU's nu_log, theta_log, gamma_log,
    the linear cell's lam) N(0, 0.3).
    """
    cls, settings = registry.resolve(cell)
    if "activation" in cls.settings:
        settings["activation"] = activation
    keep = {"input bias": b, None: b, "recurrent bias": bh}
    params = {}
    for name, p in cls.params.items():
        shape = registry.sizes(p.shape, D, H)
        if p.optional and not keep.get(p.role, True):
            continue
        scale = 0.3 if len(shape) == 1 else 0.8 / np.sqrt(H) if p.shape[-1] == "H" else 0.7
        params[name] = rng.normal(0, scale, shape)
    cell_ = cls(**settings)
    params = {k: v for k, v in params.items() if cell_.uses(k)}  # not one these settings do not use (modReLU's bm)
    params["V"] = rng.normal(0, 0.7, (O, cell_.out(H)))
    if c:
        params["c"] = rng.normal(0, 0.3, O)
    return model_class(cls)(**params, **settings, head=head)


def random_case(rng, N, T, D, H, O, *, batched, activation, head, b, c, dense, h0, mask, cell="rnn",
                bh=False):
    """(model, x, y, h0) drawn from rng (see random_model for the model).

    x: ids (N, T) / (T,) or dense (N, T, D) / (T, D); y: ids with about 40% -1 when mask, or real
    values with about 40% NaN rows for head "mse"; h0 (N, S) / (S,) or None (S the width of the
    cell's state entry: H, or 2H for an LRU), for an LSTM the pair (h0, c0).
    """
    m = random_model(rng, D, H, O, cell=cell, activation=activation, head=head, b=b, c=c, bh=bh)
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
    shapes = [(N, S) if batched else (S,) for S in m.state_sizes]
    hh = rng.normal(0, 0.5, shapes[0]) if h0 else None
    if h0 and len(shapes) > 1:
        hh = (hh,) + tuple(rng.normal(0, 0.5, shape) for shape in shapes[1:])
    return m, x, y, hh


def ambiguous(x, D) -> bool:
    """Integer (N, T) ids with T = D whose rows are all one-hot: bptt refuses them (rightly)."""
    x = np.asarray(x)
    return x.dtype.kind == "i" and x.ndim == 2 and x.shape[1] == D and bool(
        np.all((x == 0) | (x == 1)) and np.all(x.sum(-1) == 1))


WHY_SLOW = {"jax": ": JAX compiles each case's shapes anew", "tensorflow": ": TensorFlow traces each case anew"}


def stress(cases=100, *, seed=0, frameworks=None, max_size=(3, 8, 4, 6, 4), cells=None, progress=None) -> dict:
    """Run `cases` random cross-checks per framework: {name: {"cases", "passed", "worst_rel_err",
    "seconds", "cells": {cell: {"cases", "passed"}}}}.

    max_size: the largest (N, T, D, H, O) drawn. cells: the cells drawn from (registry.variants() by default),
    each framework drawing from those it has.
    progress: None, or a function of one line of text, told when a framework is about to be imported
    and then after every twentieth of the cases (and at least every 2 s): "torch: 40/200 cases, 40
    passed, 6 s".
    """
    from . import available, compare, reference

    names = available() if frameworks is None else list(frameworks)
    cells = registry.variants() if cells is None else tuple(registry.canonical(c) for c in cells)
    for cell in cells:
        if cell not in registry.variants():
            raise ValueError(f"unknown cell {cell!r}: expected some of {', '.join(registry.variants())}")
    activations = tuple(ACTIVATIONS)
    rng = np.random.default_rng(seed)
    out = {}
    every = max(1, cases // 20)
    for name in names:
        start, passed, worst, done = time.perf_counter(), 0, 0.0, 0
        pool = [c for c in cells if registry.resolve(c)[0].name in reference(name).CELLS]  # the cells it has
        per_cell = {cell: {"cases": 0, "passed": 0} for cell in pool}
        if not pool:
            raise ValueError(f"{name} has none of the cells {', '.join(cells)}: it has {', '.join(reference(name).CELLS)}")
        if progress is not None:
            announce([name], progress)
        last = start
        while done < cases:
            cell = pool[rng.integers(len(pool))]
            N, T, D, H, O = (int(rng.integers(1, k + 1)) for k in max_size)
            kw = dict(activation=activations[rng.integers(len(activations))], head=("softmax", "mse")[rng.integers(2)],
                      b=bool(rng.integers(2)), c=bool(rng.integers(2)), dense=bool(rng.integers(2)),
                      h0=bool(rng.integers(2)), mask=bool(rng.integers(2)), bh=bool(rng.integers(2)))
            m, x, y, h0 = random_case(rng, N, T, D, H, O, batched=N > 1 or bool(rng.integers(2)), cell=cell, **kw)
            if ambiguous(x, D):
                continue
            K = (None, 0, 1, 3, T, T + 2)[rng.integers(6)]
            r = compare(m, x, y, frameworks=[name], truncate=K, h0=h0, reduction=("sum", "mean")[rng.integers(2)])
            passed += r.passed
            per_cell[cell]["cases"] += 1
            per_cell[cell]["passed"] += r.passed
            worst = max(worst, max(row.max_rel_err for row in r.rows))
            done += 1
            now = time.perf_counter()
            if progress is not None and (done % every == 0 or done == cases or now - last > 2.0):
                why = WHY_SLOW.get(name, "") if (now - start) / done > 1.0 else ""
                progress(f"{name}: {done}/{cases} cases, {passed} passed, {now - start:.0f} s "
                         f"({(now - start) / done:.2g} s a case{why})")
                last = now
        out[name] = {"cases": done, "passed": passed, "worst_rel_err": worst,
                     "seconds": round(time.perf_counter() - start, 1), "cells": per_cell}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bptt.frameworks", description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=100, help="random cases per framework (default 100)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random cases (default 0)")
    p.add_argument("--frameworks", help="comma-separated torch,jax,tensorflow (default: every installed one)")
    p.add_argument("--cells", help=f"comma-separated cells to draw from: {','.join(registry.variants())} (default: all)")
    args = p.parse_args(argv)
    names = args.frameworks.split(",") if args.frameworks else None
    cells = None
    if args.cells:
        unknown = [c for c in args.cells.split(",") if registry.canonical(c) not in registry.variants()]
        if unknown:
            p.error(f"unknown cell {unknown[0]!r}: expected some of {', '.join(registry.variants())}")
        cells = tuple(args.cells.split(","))
    ok = True
    import sys

    def say(line):  # progress on stderr, the results on stdout
        print(line, file=sys.stderr, flush=True)

    for name, r in stress(args.cases, seed=args.seed, frameworks=names, cells=cells, progress=say).items():
        ok &= r["passed"] == r["cases"]
        by_cell = ", ".join(f"{cell} {c['passed']}/{c['cases']}" for cell, c in r["cells"].items())
        print(f"{name:<11} {r['passed']}/{r['cases']} passed, worst relative error {r['worst_rel_err']:.2e} "
              f"({by_cell})")
    return 0 if ok else 1
