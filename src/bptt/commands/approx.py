"""`bptt approx`: every approximation of the gradient measured against the exact one, as a table,
JSON or a figure of the window's bias against K over spectral radii."""
from __future__ import annotations

import json

import numpy as np

HELP = "how far truncated and online gradients (window K, TBPTT, RTRL, UORO, SnAp) are from the exact one"
CELLS = ("elman", "lstm", "gru", "gru-before")
RADII = (0.5, 0.75, 1.0, 1.25, 1.5)


def _ints(text, what):
    try:
        vals = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{what} must be comma-separated integers, got {text!r}") from None
    return vals


def _floats(text, what):
    try:
        return [float(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{what} must be comma-separated numbers, got {text!r}") from None


def add_arguments(p):
    p.add_argument("--model", metavar="FILE", help="a model saved with .save (.npz), any cell; default: a random model")
    p.add_argument("--cell", default="elman", help=f"the random model's cell: {', '.join(CELLS)} (default elman; "
                                                    "gru-before is Keras's reset_after=False)")
    p.add_argument("--hidden", type=int, default=16, help="H (default 16)")
    p.add_argument("--inputs", type=int, default=8, help="D, the number of input ids (default 8)")
    p.add_argument("--outputs", type=int, default=8, help="O, the number of output classes (default 8)")
    p.add_argument("--radius", type=float, default=1.0,
                   help="spectral radius of W (of each gate's H x H block for LSTM/GRU) (default 1.0)")
    p.add_argument("--length", type=int, default=50, help="T, steps of the random sequence (default 50)")
    p.add_argument("--batch", type=int, default=1, help="N, random sequences (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed for the model, the data and UORO's signs (default 0)")
    p.add_argument("--windows", default="0,1,2,5,10,20", help="the windows K to list (default 0,1,2,5,10,20)")
    p.add_argument("--tbptt", default="5:5,5:10",
                   help="TBPTT(k1, k2) rules as k1:k2, comma-separated (default 5:5,5:10)")
    p.add_argument("--samples", type=int, default=100, help="n, UORO estimates averaged (default 100)")
    p.add_argument("--delta", type=float, default=0.01,
                   help="the tolerance for the smallest window K (relative error of all parameters; default 0.01)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--plot", metavar="FILE", help="draw cosine and relative bias against K for each radius "
                                                  "of --radii into FILE (a PNG at 150 dpi; needs matplotlib)")
    p.add_argument("--param", default="W", help="the parameter --plot draws: W, U, b, ... or all (default W)")
    p.add_argument("--radii", default=",".join(str(r) for r in RADII),
                   help=f"the spectral radii of --plot (default {','.join(str(r) for r in RADII)})")


def random_model(args, radius, rng):
    """A random model of args.cell with W rescaled to the spectral radius (each gate's block)."""
    from ..model import random_gated, random_rnn, with_spectral_radius

    if args.cell not in CELLS:
        raise ValueError(f"unknown cell {args.cell!r}: expected one of {', '.join(CELLS)}")
    for name in ("hidden", "inputs", "outputs"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be at least 1, got {getattr(args, name)}")
    if not np.isfinite(radius) or radius <= 0:
        raise ValueError(f"a spectral radius must be a positive number, got {radius}")
    H = args.hidden
    if args.cell == "elman":
        model = random_rnn(H, args.inputs, args.outputs, seed=rng, bias=True)
        return model.replace(W=with_spectral_radius(model.W, radius), b=rng.normal(0, 0.1, H))
    model = random_gated(args.cell.split("-")[0], H, args.inputs, args.outputs, seed=rng,
                         reset_after=args.cell != "gru-before")
    W = np.concatenate([with_spectral_radius(model.W[g:g + H], radius) for g in range(0, model.W.shape[0], H)])
    return model.replace(W=W)


def data(model, T, N, rng):
    if T < 1 or N < 1:
        raise ValueError(f"--length and --batch must be at least 1, got {T} and {N}")
    x = rng.integers(0, model.D, (N, T))
    y = rng.normal(size=(N, T, model.O)) if model.head == "mse" else rng.integers(0, model.O, (N, T))
    return (x, y) if N > 1 else (x[0], y[0])


def measure(model, x, y, *, windows, rules, samples, seed, delta) -> dict:
    """Every method's relative error and cosine against the exact gradient, as plain data."""
    from .. import core
    from .. import approx

    if samples < 1:
        raise ValueError(f"--samples must be at least 1, got {samples}")
    loss, exact = core.gradients(model, x, y)
    curve = approx.window_curve(model, x, y)
    T = len(curve.K) - 1
    rows = []

    def row(method, cost, grads=None, agreement=None):
        a = agreement if agreement is not None else approx.compare(exact, grads)
        rows.append({"method": method, "cost": cost, **{k: {"rel": _f(a.rel[k]), "cos": _f(a.cos[k])} for k in a.rel}})

    for K in windows:
        if K < 0 or K > T:
            raise ValueError(f"a window K must lie in 0..T = {T}, got {K}")
        rel = {k: float(v[K]) for k, v in curve.bias.rel.items()}
        cos = {k: float(v[K]) for k, v in curve.bias.cos.items()}
        row(f"window K={K}", f"{min(K + 1, T)} steps back per output", agreement=approx.Agreement(rel, cos))
    for k1, k2 in rules:
        row(f"TBPTT({k1}, {k2})", f"{k2} steps back every {k1}", approx.tbptt_gradient(model, x, y, k1, k2)[1])
    row("RTRL", "O(S^2 P) per step", approx.rtrl(model, x, y)[1])
    row(f"UORO, mean of {samples}", "O(P) per step and sample", approx.uoro(model, x, y, seed=seed, samples=samples)[1])
    for n in (1, 2):
        row(f"SnAp-{n}", "its pattern's entries per step", approx.snap(model, x, y, order=n)[1])
    return {"model": repr(model), "T": T, "N": 1 if np.ndim(x) == 1 else int(np.shape(x)[0]), "loss": loss,
            "delta": delta, "smallest_window": curve.smallest_window(delta), "methods": rows}


def _f(v):
    """A float, or None where it is not finite (JSON has no inf or NaN)."""
    v = float(v)
    return v if np.isfinite(v) else None


def _g(v, fmt):
    return "-" if v is None else format(v, fmt)


def table(res) -> str:
    lines = [f"{res['model']}, T = {res['T']}, N = {res['N']}, loss {res['loss']:.6g}",
             f"smallest window K with relative error <= {res['delta']:g} (all parameters), for it and every longer "
             f"one: K = {res['smallest_window']}", ""]
    head = ["method", "rel. error (all)", "cosine (all)", "rel. error W", "cosine W", "rel. error h0"]
    out = [head] + [[r["method"], _g(r["all"]["rel"], ".3e"), _g(r["all"]["cos"], ".6f"), _g(r["W"]["rel"], ".3e"),
                     _g(r["W"]["cos"], ".6f"), _g(r["h0"]["rel"], ".3e")] for r in res["methods"]]
    widths = [max(len(row[i]) for row in out) for i in range(len(head))]
    for row in out:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    return "\n".join(lines)


def plot(args, path, radii):
    """Cosine and relative bias against K for each spectral radius: the figure, written to path (PNG, 150 dpi)."""
    from .. import approx
    from ..approx import figures

    curves = {}
    for r in radii:
        rng = np.random.default_rng(args.seed)  # the same draw at every radius: only the scale of W changes
        model = random_model(args, r, rng)
        x, y = data(model, args.length, args.batch, rng)
        curves[f"radius {r:g}"] = approx.window_curve(model, x, y)
    title = f"{args.cell}, H = {args.hidden}, T = {args.length}: the window's bias"
    fig = figures.bias_curves(curves, name=args.param, title=title)
    fig.savefig(path, dpi=150)
    return path


def run(args) -> int:
    from ..model import Model

    windows = _ints(args.windows, "--windows")
    rules = []
    for spec in str(args.tbptt).split(","):
        if spec.strip():
            parts = spec.split(":")
            if len(parts) != 2:
                raise ValueError(f"--tbptt takes rules k1:k2, got {spec!r}")
            rules.append(tuple(_ints(",".join(parts), "--tbptt")))
    radii = _floats(args.radii, "--radii")
    if args.plot:
        if args.param not in ("all", "U", "W", "b", "bh", "h0", "c0"):
            raise ValueError(f"--param must be one of all, U, W, b, bh, h0, c0, got {args.param!r}")
        from ..plots import require_matplotlib
        require_matplotlib()
        if args.model:
            raise ValueError("--plot draws random models over --radii; it cannot take --model")
    rng = np.random.default_rng(args.seed)
    model = Model.load(args.model) if args.model else random_model(args, args.radius, rng)
    x, y = data(model, args.length, args.batch, rng)
    res = measure(model, x, y, windows=windows, rules=rules, samples=args.samples, seed=args.seed,
                  delta=args.delta)
    if args.plot:
        res["figure"] = str(plot(args, args.plot, radii))
    if args.json:
        print(json.dumps(res, indent=2, default=float))
    else:
        print(table(res))
        if args.plot:
            print(f"\nfigure: {res['figure']}")
    return 0
