"""`bptt flow`: the lag analysis of a model on one or more sequences, as a table, JSON or figures.

Any registered cell: a random Elman RNN (default) or another cell (--cell), or a model file of any
cell. For other cells Pascanu's bound does not apply: the table says so and shows the gates instead.
"""
from __future__ import annotations

import json

import numpy as np

from ._model import add_model_arguments, model_from_args

HELP = "how the gradient shrinks or grows with the lag: measured, bounded and explained"


def add_arguments(p):
    add_model_arguments(p, hidden=16, inputs=8, outputs=8, init="orthogonal")
    p.add_argument("--length", type=int, default=50, help="T, steps of each random sequence (default 50)")
    p.add_argument("--batch", type=int, default=1, help="N, random sequences to average over (default 1)")
    p.add_argument("--x", metavar="FILE", help=".npy inputs: ids (T,) / (N, T) or vectors (T, D) / (N, T, D)")
    p.add_argument("--y", metavar="FILE", help=".npy targets for --x (default: random)")
    p.add_argument("--rows", type=int, default=12, help="lags shown in the table (default 12, spread over 0..T-1)")
    p.add_argument("--seed", type=int, default=0, help="seed for the model and the sequences (default 0)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--plot", metavar="DIR", help="write the figures (PNG and SVG) into DIR (needs matplotlib)")


def _load(path, what):
    from bptt.validate import read_npy

    a = read_npy(path, what)
    if a.dtype.kind not in "iuf":
        raise ValueError(f"{path} holds values of dtype {a.dtype}: the {what} must be integers (token ids) "
                         "or floats (dense vectors or values)")
    if a.ndim == 0:
        raise ValueError(f"{path} holds a single number: the {what} must be a sequence, (T,) or longer")
    return a


def _data(args, model, rng):
    """x (N, T) or (N, T, D) and y, from files or random."""
    if args.y and not args.x:
        raise ValueError("--y needs --x: targets belong to given inputs")
    one = False
    if args.x:
        x = _load(args.x, "inputs")
        one = x.ndim == (1 if x.dtype.kind in "iu" else 2)
        x = x[None] if one else x
        if x.ndim < 2:
            raise ValueError(f"{args.x} holds floats of shape {x.shape}: dense inputs have shape (T, D) or "
                             "(N, T, D), and token ids are integers")
    else:
        from ._model import check_sequence_size

        check_sequence_size(model, args.length, args.batch)
        x = rng.integers(0, model.D, (args.batch, args.length))
    N, T = x.shape[0], x.shape[1]
    from bptt.validate import too_big

    too_big(f"the flow's (T, T) tables of {N} sequence(s) of T = {T} steps", N * T * T)
    if args.y:
        y = _load(args.y, "targets")
        y = y[None] if one else y
    elif model.head == "mse":
        y = rng.normal(size=(N, T, model.O))
    else:
        y = rng.integers(0, model.O, (N, T))
    return x, y


def _lags(T, rows):
    if rows < 1:
        raise ValueError(f"--rows must be at least 1, got {rows}")
    if T <= rows:
        return list(range(T))
    return sorted(set(np.unique(np.round(np.geomspace(1, T - 1, rows - 1)).astype(int)).tolist()) | {0})


def analyse(model, x, y, progress=True) -> dict:
    """Everything `bptt flow` reports, as plain data, plus the flows themselves under "_flows"."""
    from bptt import batch
    from bptt.analysis import has_saturation
    from bptt.theory import theory

    fls = batch.flows(model, x, y, progress=progress)
    ba = batch.analyse_flows(fls) if len(fls) > 1 else None
    th = theory(model)  # the weights' verdict; the measured numbers follow for every sequence
    out = {"model": repr(model), "cell": model.cell.name, "state": list(model.cell.state), "N": len(fls), "T": fls[0].T, "theory": th.as_dict(),
           "loss": float(np.mean([f.loss for f in fls]))}
    decays = []
    for f in fls:
        try:
            decays.append(f.decay_rate())
        except ValueError:
            decays.append(float("nan"))
    lyap = [f.lyapunov() for f in fls]
    sat = [f.saturation() for f in fls] if has_saturation(model.cell) else []  # none for a linear recurrence
    viol = sum(int(np.sum(f.dE_ds > f.bound() * (1 + 1e-9))) for f in fls) if th.applies else None
    out.update({
        "decay_rate": _stat(decays), "lyapunov_max": _stat([ly.max for ly in lyap]),
        "lyapunov": [_f(v) for v in lyap[0].exponents],
        "saturated": _stat([s.fraction_saturated() for s in sat]), "bound_violations": viol})
    if th.applies:
        out["mean_df"] = _stat([s.mean for s in sat])
    else:  # per sigmoid gate: its mean and the shares below 0.1 and above 0.9, over the sequences
        out["gates"] = {g: {"mean": _stat([s.mean(g) for s in sat]), "near_0": _stat([s.near_zero(g) for s in sat]),
                            "near_1": _stat([s.near_one(g) for s in sat])} for g in (sat[0].gates if sat else ())}
        out["path_gate"] = sat[0].path_gate if sat else None
        out["path_rate"] = _stat([s.path_rate for s in sat] if out["path_gate"] else [])
    if ba is None:
        out["by_lag"] = fls[0].by_lag().rows()
    else:
        rm, rs = ba.curve("ratio_mean")
        nm, ns = ba.curve("norm_mean")
        bm, bs = ba.curve("beyond")
        extra = {k: ba.curve(k)[0] for k in ("c_mean", "path_mean") if getattr(ba, k) is not None}
        out["by_lag"] = [{"lag": l, "norm_mean": _f(nm[l]), "norm_std": _f(ns[l]), "ratio_mean": _f(rm[l]),
                          "ratio_std": _f(rs[l]), "beyond": _f(bm[l]), "beyond_std": _f(bs[l]),
                          **{k: _f(v[l]) for k, v in extra.items()}} for l in range(len(rm))]
    out["_flows"] = fls
    return out


def _f(v):
    v = float(v)
    return v if np.isfinite(v) else None


def _stat(vals):
    """mean, std, min and max of the finite values, None where there are none (a decay rate at T = 1)."""
    a = np.asarray(vals, dtype=float)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return {"mean": None, "std": None, "min": None, "max": None}
    return {"mean": _f(a.mean()), "std": _f(a.std()), "min": _f(a.min()), "max": _f(a.max())}


def _g(v, fmt=".3g"):
    return "-" if v is None else format(v, fmt)


def table(res, lags) -> str:
    if not res["theory"]["bound_applies"]:
        return _gated_table(res, lags)
    th = res["theory"]
    N = res["N"]
    spread = "" if N == 1 else f" (mean +- sd over {N} sequences)"
    d, ly, sat = res["decay_rate"], res["lyapunov_max"], res["saturated"]
    pm = (lambda s: f"{_g(s['mean'], '.4g')} +- {_g(s['std'], '.2g')}") if N > 1 else (lambda s: _g(s["mean"], ".4g"))
    lines = [f"{res['model']}, T = {res['T']}, N = {N}, mean loss {res['loss']:.6g}", "",
             f"theory    gamma = {th['gamma']:g}, lambda_1 = ||W||_2 = {th['lambda1']:.4g}, rho(W) = {th['rho']:.4g}, "
             f"lambda_1 gamma = {th['lambda1_gamma']:.4g}",
             f"verdict   {th['verdict']}: {th['reason']}",
             f"measured  decay rate {pm(d)} per step{spread}; largest Lyapunov exponent {pm(ly)} "
             f"(exp = {_g(np.exp(ly['mean']) if ly['mean'] is not None and ly['mean'] < 700 else None, '.4g')})",
             f"          saturation: {100 * sat['mean']:.1f}% of f'(z) below 0.1 gamma, mean f'(z) = {res['mean_df']['mean']:.3g}",
             "bound     ||dE_t/ds_k|| <= ||dE_t/ds_t|| (lambda_1 gamma)^(t-k): " +
             ("holds for every (t, k)" if res["bound_violations"] == 0 else f"VIOLATED at {res['bound_violations']} pairs"),
             ""]
    rows = {r["lag"]: r for r in res["by_lag"]}
    one = N == 1
    head = ["lag", "mean ||dE_t/ds_t-l||", "ratio to lag 0", "+- sd", "bound (l1 g)^l",
            "mean ||term||_F" if one else "", "share beyond lag"]
    head = [h for h in head if h]
    out = [head]
    for l in lags:
        r = rows[l]
        bound = th["lambda1_gamma"] ** l if l * np.log10(max(th["lambda1_gamma"], 1e-300)) < 300 else float("inf")
        cells = [str(l), _g(r["norm_mean"]), _g(r["ratio_mean"]), _g(r["ratio_std"], ".2g"), _g(bound)]
        if one:
            cells.append(_g(r["term_mean"]))
        cells.append(_g(None if r["beyond"] is None else 100 * r["beyond"], ".3g") + "%")
        out.append(cells)
    widths = [max(len(row[i]) for row in out) for i in range(len(head))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in out]
    return "\n".join(lines)


def _gated_table(res, lags) -> str:
    """The table for a cell without Pascanu's bound (a gated cell): the verdict, the measured numbers and
    the gates; no bound."""
    from bptt import cells

    th, N, cell = res["theory"], res["N"], cells.get(res["cell"]).label
    spread = "" if N == 1 else f" (mean +- sd over {N} sequences)"
    d, ly = res["decay_rate"], res["lyapunov_max"]
    pm = (lambda s: f"{_g(s['mean'], '.4g')} +- {_g(s['std'], '.2g')}") if N > 1 else (lambda s: _g(s["mean"], ".4g"))
    names = res["state"]
    state = f"the joint state ({', '.join(names)})" if len(names) > 1 else f"the state {names[0]}"
    gates = "; ".join(f"{g} mean {v['mean']['mean']:.3g}, {100 * v['near_0']['mean']:.1f}% below 0.1, "
                      f"{100 * v['near_1']['mean']:.1f}% above 0.9" for g, v in res["gates"].items())
    linear = th["activation"] == "linear"  # a linear recurrence: rho and lambda_1 of its transition A
    lines = [f"{res['model']}, T = {res['T']}, N = {N}, mean loss {res['loss']:.6g}", "",
             f"theory    a linear recurrence: dh_t/dh_(t-1) = A at every step, rho(A) = {th['rho']:.4g}, "
             f"||A||_2 = {th['lambda1']:.4g}; Pascanu's bound with gamma = 1 is ||A||_2^l" if linear else
             f"theory    Pascanu's bound (gamma, lambda_1) is for Elman cells: it does not apply to the {cell}",
             f"verdict   {th['verdict']}: {th['reason']}",
             f"measured  decay rate {pm(d)} per step{spread}; largest Lyapunov exponent {pm(ly)} of {state} "
             f"(exp = {_g(np.exp(ly['mean']) if ly['mean'] is not None and ly['mean'] < 700 else None, '.4g')})"]
    if gates:
        lines.append(f"gates     {gates}")
    if res["path_gate"]:
        lines.append(f"          the direct path's gate {res['path_gate']}: geometric mean {pm(res['path_rate'])}")
    lines.append("")
    rows = {r["lag"]: r for r in res["by_lag"]}
    one = N == 1
    own = any("c_mean" in r for r in res["by_lag"])  # a memory of its own (an LSTM's c), not any second entry
    path = res["path_gate"] is not None  # the error on the direct path alone (Flow.cell_path)
    head = ["lag", "mean ||dE_t/dh_t-l||", "ratio to lag 0", "+- sd"] + (["mean ||dE_t/dc_t-l||"] if own else []) \
        + (["mean cell path"] if path else []) + (["mean ||term||_F"] if one else []) + ["share beyond lag"]
    out = [head]
    for l in lags:
        r = rows[l]
        cells = [str(l), _g(r["norm_mean"]), _g(r["ratio_mean"]), _g(r["ratio_std"], ".2g")]
        if own:
            cells.append(_g(r["c_mean"]))
        if path:
            cells.append(_g(r["path_mean"]))
        if one:
            cells.append(_g(r["term_mean"]))
        cells.append(_g(None if r["beyond"] is None else 100 * r["beyond"], ".3g") + "%")
        out.append(cells)
    widths = [max(len(row[i]) for row in out) for i in range(len(head))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in out]
    return "\n".join(lines)


def plot(res, directory, progress=True) -> list:
    from bptt import cells, plots
    from bptt.progress import bar
    from bptt.analysis import has_saturation

    fls = res["_flows"]
    th = res["theory"]
    cell = cells.get(res["cell"])
    name = f"{th['activation']}, rho = {th['rho']:.3g}" if th["bound_applies"] else cell.label
    jobs = {"heatmap": lambda: plots.heatmap(fls[0]),
            "lags": lambda: plots.lag_curves({name: fls if len(fls) > 1 else fls[0]}),
            "singular_values": lambda: plots.singular_values(fls[0])}
    if has_saturation(cell):  # a linear recurrence has no activation and no gate
        jobs["saturation"] = lambda: plots.saturation(fls[0].saturation())
    written = []
    counted = bar(len(jobs), "figures", "figure", leave=False) if progress else None
    for name, make in jobs.items():
        written += plots.save(make(), f"{directory}/{name}")
        if counted is not None:
            counted.update()
    if counted is not None:
        counted.close()
    return written


def run(args) -> int:

    rng = np.random.default_rng(args.seed)
    model = model_from_args(args, rng)
    x, y = _data(args, model, rng)
    if args.plot:
        from bptt.plots import require_matplotlib
        require_matplotlib()
    progress = True  # a bar in a terminal, a line every few seconds elsewhere (bptt.progress.bar)
    res = analyse(model, x, y, progress=progress)
    files = plot(res, args.plot, progress=progress) if args.plot else []
    if args.json:
        res.pop("_flows")
        res["figures"] = [str(p) for p in files]
        print(json.dumps(res, indent=2))
    else:
        print(table(res, _lags(res["T"], args.rows)))
        if files:
            print(f"\nfigures: {', '.join(str(p) for p in files)}")
    return 0
