"""`bptt approx`: every approximation of the gradient measured against the exact one, as a table,
JSON or a figure of the window's bias against K over spectral radii."""
from __future__ import annotations

import json

import numpy as np

from ..validate import show

HELP = "how far truncated and online gradients (window K, TBPTT, RTRL, UORO, SnAp) are from the exact one"
RADII = (0.5, 0.75, 1.0, 1.25, 1.5)
WINDOWS = (0, 1, 2, 5, 10, 20)  # the windows listed by default, those of them up to T


def _ints(text, what):
    try:
        vals = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{what} must be comma-separated integers, got {show(text)}") from None
    return vals


def _floats(text, what):
    try:
        return [float(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{what} must be comma-separated numbers, got {show(text)}") from None


def add_arguments(p):
    p.add_argument("--model", metavar="FILE", help="a model saved with .save (.npz), any cell; default: a random model")
    from ..cells import variants

    p.add_argument("--cell", default="rnn", help=f"the random model's cell: {', '.join(variants())} (default rnn, the "
                                                  "Elman cell; an alias names a variant, e.g. Keras's reset_after=False)")
    p.add_argument("--hidden", type=int, default=16, help="H (default 16)")
    p.add_argument("--inputs", type=int, default=8, help="D, the number of input ids (default 8)")
    p.add_argument("--outputs", type=int, default=8, help="O, the number of output classes (default 8)")
    p.add_argument("--radius", type=float,
                   help="spectral radius of W (of each gate's H x H block for a gated cell); for a cell with a "
                        "recurrent W, "
                        f"{', '.join(n for n in variants() if _rescalable(n))} (default 1.0)")
    p.add_argument("--length", type=int, default=50, help="T, steps of the random sequence (default 50)")
    p.add_argument("--batch", type=int, default=1, help="N, random sequences (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed for the model, the data and UORO's signs (default 0)")
    p.add_argument("--windows", help=f"the windows K to list (default {','.join(map(str, WINDOWS))}, those up to "
                                     "--length)")
    p.add_argument("--tbptt", default="5:5,5:10",
                   help="TBPTT(k1, k2) rules as k1:k2, comma-separated (default 5:5,5:10)")
    p.add_argument("--samples", type=int, default=100, help="n, UORO estimates averaged (default 100)")
    p.add_argument("--delta", type=float, default=0.01,
                   help="the tolerance for the smallest window K (relative error of all parameters; default 0.01)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--plot", metavar="DIR", help="draw the figures into DIR (made if missing), as bptt flow "
                   "--plot does: window-bias.png, the cosine and relative bias against K for each radius of "
                   "--radii (random models), and uoro.png, the error of the mean of n UORO estimates against n = "
                   "1..--samples on this model and data (PNG, 150 dpi; needs matplotlib)")
    p.add_argument("--param", help="the parameter --plot draws and the table singles out: W, U, b, nu_log, ..., "
                                   "h0 or all (default the cell's recurrent W; without one its own recurrence's "
                                   "parameter: the LRU's nu_log, the linear cell's lam; else its first, U)")
    p.add_argument("--radii", help=f"the spectral radii of --plot (default {','.join(str(r) for r in RADII)}); "
                                   "a cell without a recurrent W draws its one model")


def _rescalable(cell) -> bool:
    from ..approx.measure import rescalable

    return rescalable(cell)


def random_model(args, radius, rng):
    """A random model of args.cell with W rescaled to the spectral radius (each gate's block); a cell
    without W from its own initialisation (radius None)."""
    from ..approx.measure import random_model

    for name in ("hidden", "inputs", "outputs"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be at least 1, got {getattr(args, name)}")
    return random_model(args.cell, args.hidden, args.inputs, args.outputs, 1.0 if radius is None else radius, rng)


def data(model, T, N, rng):
    from ..approx.measure import random_data

    from ._model import check_sequence_size

    check_sequence_size(model, T, N)
    return random_data(model, T, N, rng)


def _g(v, fmt):
    return "-" if v is None else format(v, fmt)


def table(res, param="W") -> str:
    """The methods' errors: all parameters together, `param` (the focus: W, or a cell's own), h0."""
    lines = [f"{res['model']}, T = {res['T']}, N = {res['N']}, loss {res['loss']:.6g}",
             f"smallest window K with relative error <= {res['delta']:g} (all parameters), for it and every longer "
             f"one: K = {res['smallest_window']}", ""]
    head = ["method", "rel. error (all)", "cosine (all)", f"rel. error {param}", f"cosine {param}", "rel. error h0"]
    out = [head] + [[r["method"], _g(r["all"]["rel"], ".3e"), _g(r["all"]["cos"], ".6f"), _g(r[param]["rel"], ".3e"),
                     _g(r[param]["cos"], ".6f"), _g(r["h0"]["rel"], ".3e")] for r in res["methods"]]
    widths = [max(len(row[i]) for row in out) for i in range(len(head))]
    for row in out:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    return "\n".join(lines)


def plot(args, path, radii):
    """Cosine and relative bias against K for each spectral radius: the figure, written to path (PNG, 150 dpi)."""
    from .. import approx
    from ..approx import figures

    curves = {}
    for r in radii:  # [None] for a cell without W: its one model
        rng = np.random.default_rng(args.seed)  # the same draw at every radius: only the scale of W changes
        model = random_model(args, r, rng)
        x, y = data(model, args.length, args.batch, rng)
        curves[f"radius {r:g}" if r is not None else "its own initialisation"] = approx.window_curve(model, x, y)
    title = f"{args.cell}, H = {args.hidden}, T = {args.length}: the window's bias"
    from ..plots import savefig

    return savefig(figures.bias_curves(curves, name=args.param, title=title), path, dpi=150)


def run(args) -> int:
    from ..model import Model

    windows = _ints(args.windows, "--windows") if args.windows is not None else \
        [K for K in WINDOWS if K <= max(args.length, 0)]
    rules = []
    for spec in str(args.tbptt).split(","):
        if spec.strip():
            parts = spec.split(":")
            if len(parts) != 2:
                raise ValueError(f"--tbptt takes rules k1:k2, got {show(spec)}")
            rules.append(tuple(_ints(",".join(parts), "--tbptt")))
    from .. import cells
    from ..approx.measure import focus, rescalable

    if not args.model:
        cells.resolve(args.cell)  # an unknown cell, said before anything else
    if not args.model and not rescalable(args.cell):
        for flag, value in (("--radius", args.radius), ("--radii", args.radii)):
            if value is not None:
                raise ValueError(f"{flag} rescales a recurrent weight W, and the {args.cell} cell has none: leave it "
                                 f"out (its model starts from its own initialisation) or use --cell "
                                 f"{next(n for n in cells.names() if rescalable(n))}")
        radii = [None]
    else:
        radii = _floats(args.radii if args.radii is not None else ",".join(str(r) for r in RADII), "--radii")
    rng = np.random.default_rng(args.seed)
    model = Model.load(args.model) if args.model else random_model(args, args.radius, rng)
    names = ("all", *(k for k in model.params if k not in ("V", "c")), "V", "c",
             *(f"{s}0" for s in model.cell.state))
    args.param = args.param if args.param is not None else focus(model.cell.name)
    if args.param not in names:
        raise ValueError(f"--param must be one of {', '.join(names)} (the {model.cell.name} model's), "
                         f"got {show(args.param)}")
    if args.plot:
        from ..plots import require_matplotlib
        require_matplotlib()
        if args.model:
            raise ValueError("--plot draws random models over --radii; it cannot take --model")
    x, y = data(model, args.length, args.batch, rng)
    from ..approx.measure import measure

    if args.samples < 1:
        raise ValueError(f"--samples must be at least 1, got {args.samples}")
    from ..progress import Stages

    with Stages("bptt approx") as stage:  # each method's start, and a line every few seconds while it runs
        res = measure(model, x, y, windows=windows, rules=rules, samples=args.samples, seed=args.seed,
                      delta=args.delta, stage=stage)
        if args.plot:
            from pathlib import Path

            from ..approx import figures
            from ..plots import savefig

            folder = Path(args.plot)
            ns = sorted({n for n in (1, 3, 10, 30, 100, 300, 1000, 3000, 10000) if n < args.samples} | {args.samples})
            stage("figures: UORO's error against the number of estimates")
            fig, res["uoro_error"] = figures.uoro_error(model, x, y, ns=ns, seed=args.seed)
            stage("figures: the window's bias over the radii")
            res["figures"] = [str(plot(args, folder / "window-bias.png", radii)),
                              str(savefig(fig, folder / "uoro.png", dpi=150))]
    if args.json:
        print(json.dumps(res, indent=2, default=float))
    else:
        print(table(res, args.param))
        if args.plot:
            u = res["uoro_error"]
            print("\nUORO, the mean of n estimates against the exact gradient (all parameters):")
            for n, rel, pred in zip(u["n"], u["rel"], u["predicted"]):
                print(f"  n = {n:<6d} relative error {rel:.3e}   sqrt(v/n)/||g|| {pred:.3e}")
            print(f"\nfigures: {', '.join(res['figures'])}")
    return 0
