"""The numbers and figures of the report: every value here comes from running bptt, nothing is typed in.

`gather(settings)` runs the notebook's example, its gradient check, a sweep of spectral radii for
several activations (a batch of random sequences per model), the Jacobian spectrum, the Lyapunov
exponents, the saturation histogram, the one-unit cliff, and an Elman, an LSTM and a GRU of the
same size on the same sequences (`cell_models`, `cell_data`), approximate gradients against the
exact one (approx.py), the cures (cures.py: gradient flossing, an orthogonal W against Glorot's),
and returns plain data plus figures (SVG bytes) for html.py to lay out.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Settings:
    """What the report sweeps: H hidden units, T steps, N sequences per model, D = O words; the cures'
    flossing: floss_k leading exponents, floss_steps Adam updates at floss_lr (bptt train --floss)."""

    H: int = 32
    T: int = 100
    N: int = 4
    D: int = 8
    radii: tuple = (0.5, 0.9, 1.0, 1.1, 1.5)
    activations: tuple = ("tanh", "identity", "relu")
    seed: int = 0
    cliff_grid: int = 301
    floss_k: int = 4  # the cures: the leading Lyapunov exponents flossed, the updates, their learning rate
    floss_steps: int = 150
    floss_lr: float = 0.01

    @classmethod
    def quick(cls, seed=0):
        """A small sweep (seconds), for tests and previews."""
        return cls(H=8, T=30, N=2, radii=(0.5, 1.0, 1.5), activations=("tanh", "identity"), seed=seed,
                   cliff_grid=101, floss_k=2, floss_steps=100)


@dataclass
class Content:
    settings: Settings
    version: str
    example: dict = field(default_factory=dict)
    check: list = field(default_factory=list)
    sweep: list = field(default_factory=list)
    cliff: dict = field(default_factory=dict)
    spectrum: dict = field(default_factory=dict)
    cells: list = field(default_factory=list)  # one dict per cell: Elman, LSTM, GRU on the same data
    cells_text: list = field(default_factory=list)  # the sentences drawn from them
    approx: dict = field(default_factory=dict)  # approximate gradients against the exact one (report/approx.py)
    cures: dict = field(default_factory=dict)  # flossing and an orthogonal W (report/cures.py)
    figures: dict = field(default_factory=dict)  # name -> SVG bytes
    conclusions: list = field(default_factory=list)


def _png(fig) -> bytes:
    """The report's copy of a figure: SVG bytes (sharp at any zoom), text finished by plots.finish."""
    from ..plots import figure_bytes

    return figure_bytes(fig, "svg")


def _model(st, activation, rho, seed):
    from ..model import orthogonal, random_rnn

    m = random_rnn(st.H, st.D, st.D, seed=seed, init="orthogonal", activation=activation,
                        head="mse" if activation == "identity" else "softmax")
    return m.replace(W=rho * orthogonal(st.H, seed=seed + 1))


def _batch(st, m, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, st.D, (st.N, st.T))
    if m.head == "mse":  # a linear network's states grow without bound; its targets are real values
        return x, rng.normal(size=(st.N, st.T, st.D))
    return x, rng.integers(0, st.D, (st.N, st.T))


CELL_LAG = 10  # the lag the cells' comparison quotes (less on short sequences)


def own_init(cls) -> bool:
    """Whether the report starts a cell from its own initialisation: one whose init takes none of
    PyTorch's options (bias; the LRU's ring, the linear cell's range), where a uniform +-1/sqrt(H)
    draw of its parameters would not be the model it stands for."""
    return "bias" not in cls.options()


def cell_models(st) -> dict:
    """One model of each of the package's cells with H = st.H, D = O = st.D: those whose init takes
    PyTorch's options (the Elman RNN with tanh, the GRU, the LSTM, the minGRU, the minLSTM) with
    biases and every weight and bias uniform on +-1/sqrt(H) (PyTorch's initialisation of nn.RNN,
    nn.LSTM, nn.GRU and the head), the others from their own (own_init): label -> model."""
    from .. import cells
    from ..model import model_class

    out = {}
    own = [n for n in cells.names() if cells.get(n).__module__.startswith("bptt.cells.")]  # the package's cells
    for i, name in enumerate(own):
        cell = cells.get(name)()
        rng = np.random.default_rng(st.seed + 700 + i)
        params = cell.init(rng, st.D, st.H, st.D) if own_init(type(cell)) else \
            cells.Cell.init(cell, rng, st.D, st.H, st.D, bias=True)
        label = cell.label + (f" ({cell.activation})" if "activation" in cell.settings else "")
        out[label] = model_class(name)(**params)
    return out


def cell_data(st):
    """The sequences the cells share: x, y ids (N, T) in 0..D-1."""
    rng = np.random.default_rng(st.seed + 703)
    return rng.integers(0, st.D, (st.N, st.T)), rng.integers(0, st.D, (st.N, st.T))


def _compare_cells(st, c):
    """Each cell's flows on the same data, its numbers (c.cells), figures and sentences."""
    from .. import batch, plots
    from ..analysis import gate_saturation
    from ..theory import theory

    x, y = cell_data(st)
    lag = min(CELL_LAG, st.T - 1)
    by_cell = {}
    for name, m in cell_models(st).items():
        fls = batch.flows(m, x, y, progress=False)
        ba = batch.analyse_flows(fls)
        profs = [f.by_lag() for f in fls]
        th = theory(m)
        row = {"label": name, "cell": m.cell.name, "params": int(sum(a.size for a in m.params.values())),
               "decay_mean": float(np.nanmean(ba.decay)), "decay_std": float(np.nanstd(ba.decay)),
               "lyap_max_mean": float(np.mean(ba.lyapunov_max)), "saturated": float(np.mean(ba.saturated)),
               "lag": lag, "ratio_lag": float(np.nanmean([p.ratio_mean[lag] for p in profs])),
               "beyond": float(np.nanmean(ba.beyond[:, lag])), "bound_applies": th.applies,
               "verdict": th.verdict, "lambda1_gamma": th.growth if th.applies else None,
               "linear": bool(m.cell.time_invariant), "rho": float(th.rho) if m.cell.time_invariant else None,
               "own_init": own_init(type(m.cell))}
        if m.cell.memory:
            sats = [gate_saturation(f.trace) for f in fls]
            g = sats[0].path_gate
            route, gname, _ = m.cell.memory_text
            row.update({"path_gate": g, "path_gate_mean": float(np.mean([s.mean(g) for s in sats])),
                        "path_near_1": float(np.mean([s.near_one(g) for s in sats])),
                        "path_rate": float(np.exp(np.mean([np.log(s.path_rate) for s in sats]))),
                        "route": route, "gate_name": gname})
        if profs[0].c_mean is not None:  # a memory of its own (an LSTM's c; not a coRNN's z)
            row["c_lag"] = float(np.nanmean([p.c_mean[lag] for p in profs]))
            row["norm_lag"] = float(np.nanmean([p.norm_mean[lag] for p in profs]))
        c.cells.append(row)
        by_cell[name] = fls
    c.figures["cells_lags"] = _png(plots.cell_lag_curves(
        by_cell, title=f"H = {st.H}, the same {st.N} sequences: mean over sequences"))
    c.figures["cells_heatmaps"] = _png(plots.heatmaps({k: v[0] for k, v in by_cell.items()},
                                                      title="log10 ||dE_t/ds_k||, sequence 0"))
    c.cells_text = _cell_sentences(st, c.cells)


def _cell_sentences(st, rows) -> list[str]:
    """What the comparison of the cells shows, in words, every number from rows."""
    lag = rows[0]["lag"]
    names = {r["cell"]: "the Elman cell" if r["bound_applies"] else f"the {r['label']}" for r in rows}
    own = [names[r["cell"]] for r in rows if r.get("own_init")]
    out = [f"On the same {st.N} sequences of {st.T} steps, with H = {st.H} and every weight uniform on "
           f"+-1/sqrt(H) (PyTorch's initialisation)" + (f", {_and(own)} from {'its' if len(own) == 1 else 'their'} "
                                                       "own initialisation" if own else "")
           + ", the error of an output keeps per step back "
           + _and([f"{r['decay_mean']:.3g} of its size in {names[r['cell']]}" for r in rows])
           + " (decay rates, mean over the sequences); the largest Lyapunov exponents of their states are "
           + _and([f"{r['lyap_max_mean']:.3g}" for r in rows]) + "."]
    order = sorted(rows, key=lambda r: -r["ratio_lag"])
    out.append(f"At lag {lag} the mean ||dE_t/ds_(t-{lag})|| is "
               + _and([f"{r['ratio_lag']:.2g} of its lag-0 size in {names[r['cell']]}" for r in order])
               + f": {names[order[0]['cell']]} carries the error furthest here. Truncating BPTT to {lag} steps "
               "would drop " + _and([f"{100 * r['beyond']:.2g}% of the terms' mass in {names[r['cell']]}"
                                     for r in order]) + ".")
    for r in rows:
        if "path_gate" not in r:
            continue
        text = (f"The {r['label']}'s {r['gate_name']} gates average {r['path_gate_mean']:.3g} (geometric mean "
                f"{r['path_rate']:.3g}, {100 * r['path_near_1']:.0f}% above 0.9): the error that stays on the path "
                f"{r['route']} keeps {r['path_rate'] ** lag:.2g} of its size over {lag} steps")
        if "c_lag" in r:
            text += (f", and at lag {lag} the mean ||dE_t/dc_(t-{lag})|| is {r['c_lag']:.2g} against "
                     f"{r['norm_lag']:.2g} at h")
        out.append(text + ".")
    linear = [r for r in rows if r.get("linear")]
    if linear:
        text = _and([names[r["cell"]] for r in linear]) + (" is a linear recurrence" if len(linear) == 1 else
                                                            " are linear recurrences")
        out.append(text[0].upper() + text[1:] + ": the error goes back multiplied by the same transition A at every "
                   "step, so rho(A) = max |lambda| decides: rho(A) = "
                   + _and([f"{r['rho']:.3g} in {names[r['cell']]} (theory: {r['verdict']})" for r in linear]) + ".")
    bounded = [r for r in rows if r["bound_applies"]]
    if bounded:
        r = bounded[0]
        others = [f"the {o['label']}" for o in rows if not o["bound_applies"] and not o.get("linear")]
        out.append(f"Pascanu's bound applies to the Elman cell alone (lambda_1 gamma = {r['lambda1_gamma']:.3g}, "
                   f"theory: {r['verdict']})" + (f"; for {_and(others)} the measured decay rate, Lyapunov exponents "
                                                 "and gate saturation above are what decide." if others else "."))
    return out


def _and(items) -> str:
    """"a", "a and b", "a, b and c"."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def gather(st: Settings, progress=True) -> Content:
    """Run everything the report shows (see the module's notes)."""
    from tqdm.auto import tqdm

    from .. import __version__, batch, plots
    from ..check import check
    from ..flow import flow
    from ..model import seed_example
    from ..theory import cliff, theory

    steps = ["example", "check"] + [f"{a} sweep" for a in st.activations] + ["spectra", "cliff", "cells", "approx",
                                                                             "cures"]
    if progress:  # a bar in a terminal, a line every few seconds on a pipe (bptt.progress.bar)
        from ..progress import bar as progress_bar
        bar = progress_bar(len(steps), "bptt report", "part", leave=False)
    else:
        bar = tqdm(total=len(steps), disable=True)
    bar.set_postfix_str(steps[0])
    c = Content(st, __version__)

    # the notebook's example, term by term, and its gradient check
    model, x, y = seed_example()
    fl = flow(model, x, y)
    c.example = {"U": model.U.tolist(), "W": model.W.tolist(), "V": model.V.tolist(), "x": x.tolist(),
                 "y": y.tolist(), "loss": fl.loss, "explain": fl.explain("W", fl.T - 1),
                 "terms": np.linalg.norm(fl.terms("W", fl.T - 1).reshape(fl.T, -1), axis=1).tolist(),
                 "theory": theory(model).as_dict()}
    c.figures["terms"] = _png(plots.notebook_terms(fl))
    _advance(bar, steps)
    rep = check(model, x, y)
    c.check = [{"name": r.name, "checked": r.checked, "total": r.total, "max_abs": r.max_abs,
                "max_rel": r.max_rel, "passed": r.passed} for r in rep.rows]
    _advance(bar, steps)

    # the sweep: W = rho * orthogonal, one batch of sequences per model
    flows_by = {}
    for ai, act in enumerate(st.activations):
        curves = {}
        for ri, rho in enumerate(st.radii):
            m = _model(st, act, rho, st.seed + 10 * ai)
            xs, ys = _batch(st, m, st.seed + 100 + ri)
            fls = batch.flows(m, xs, ys, progress=False)
            ba = batch.analyse_flows(fls)
            th = theory(m)
            _, ratio_std = ba.curve("ratio_mean")
            bound_ok = all(np.all(f.dE_ds <= f.bound() * (1 + 1e-9) + 1e-300) for f in fls)
            lag = min(10, st.T - 1)
            c.sweep.append({
                "activation": act, "rho": rho, **{k: th.as_dict()[k] for k in ("gamma", "lambda1", "lambda1_gamma",
                                                                              "verdict", "reason")},
                "decay_mean": float(np.nanmean(ba.decay)), "decay_std": float(np.nanstd(ba.decay)),
                "lyap_max_mean": float(np.mean(ba.lyapunov_max)),
                "saturated": float(np.mean(ba.saturated)),
                "beyond10": float(np.nanmean(ba.beyond[:, lag])), "lag": lag,
                "bound_holds": bool(bound_ok)})
            curves[f"rho = {rho:g}"] = fls
            flows_by[(act, rho)] = fls
        c.figures[f"lags_{act}"] = _png(plots.lag_curves(curves, title=f"{act}: W = rho x orthogonal, "
                                                         f"H = {st.H}, mean over {st.N} sequences"))
        _advance(bar, steps)

    # one model in detail: the error table, the Jacobian spectrum, saturation
    act0 = st.activations[0]
    rho_d = min(st.radii, key=lambda r: abs(r - 1.1))
    detail = flows_by[(act0, rho_d)][0]
    c.figures["heatmap"] = _png(plots.heatmap(detail))
    c.figures["singular"] = _png(plots.singular_values(detail))
    ls = detail.jacobian_spectrum(detail.T - 1, 0)
    ly = detail.lyapunov()
    c.spectrum = {"activation": act0, "rho": rho_d, "T": detail.T, "log10_sv_max": float(ls[0] / np.log(10)),
                  "log10_sv_min": float(ls[-1] / np.log(10)), "lyap": ly.exponents[:3].tolist(),
                  "decay": detail.decay_rate()}
    # the histogram is of the same model as the heading, the heatmap and the spectrum (rho_d)
    c.figures["saturation"] = _png(plots.saturation(detail.saturation(),
                                                    title=f"{act0}, rho = {rho_d:g}: share of f'(z) near 0"))
    _advance(bar, steps)

    # the cliff of Pascanu et al. (2013)
    w = np.linspace(2.0, 8.0, st.cliff_grid)
    b = np.linspace(-5.0, 0.0, st.cliff_grid)
    cl = cliff(w, b)
    c.figures["cliff"] = _png(plots.cliff(cl, b_cut=-2.5))
    fine = cliff(np.linspace(4.0, 6.0, 20001), [-2.5])
    g = fine.grad_norm[0]
    i = int(np.argmax(g))
    away = np.abs(fine.w - fine.w[i]) > 0.1
    c.cliff = {"w_wall": float(fine.w[i]), "grad_max": float(g[i]), "grad_median_away": float(np.median(g[away])),
               "loss_left": float(fine.loss[0, max(i - 100, 0)]), "loss_right": float(fine.loss[0, min(i + 100, g.size - 1)])}
    _advance(bar, steps)

    # Elman, LSTM and GRU of the same size on the same sequences
    _compare_cells(st, c)
    _advance(bar, steps)

    # the window, TBPTT, RTRL, UORO and SnAp against the exact gradient
    from . import approx
    c.approx = approx.gather(st, _png)
    c.figures.update(c.approx.pop("figures"))
    _advance(bar, steps)

    # the cures: gradient flossing, an orthogonal W against Glorot's
    from . import cures
    c.cures = cures.gather(st, _png, say=bar.set_postfix_str)
    c.figures.update(c.cures.pop("figures"))
    _advance(bar, steps)
    bar.close()
    c.conclusions = _conclusions(c)
    return c


def _advance(bar, steps):
    """One part done: the bar moves on and says which part runs now."""
    bar.update()
    if bar.n < len(steps):
        bar.set_postfix_str(steps[bar.n])


def _conclusions(c: Content) -> list[str]:
    out = []
    rows = c.sweep
    lin = [r for r in rows if r["activation"] == "identity"]
    if lin:
        worst = max(abs(r["decay_mean"] - r["rho"]) for r in lin)
        out.append(f"A linear network (identity activation, W = rho x orthogonal) multiplies its error by exactly rho "
                   f"at every step back: the measured decay rates differ from rho by at most {worst:.1e}"
                   + (" (not a single rounding error)." if worst == 0 else "."))
    for act in c.settings.activations:
        if act == "identity":
            continue
        rs = [r for r in rows if r["activation"] == act]
        small = min(rs, key=lambda r: r["rho"])
        big = max(rs, key=lambda r: r["rho"])
        out.append(f"{act}: at rho = {small['rho']:g} the error keeps {small['decay_mean']:.3g} of its size per step "
                   f"(theory: {small['verdict']}); at rho = {big['rho']:g} it keeps {big['decay_mean']:.3g} per step, "
                   f"with {100 * big['saturated']:.0f}% of the units saturated (theory: {big['verdict']}).")
    if all(r["bound_holds"] for r in rows):
        out.append("Every measured ||dE_t/ds_k|| of every model lies below the bound ||dE_t/ds_t|| (lambda_1 gamma)^(t-k).")
    beyond = [r for r in rows if r["activation"] == c.settings.activations[0]]
    if beyond:
        lo, hi = min(beyond, key=lambda r: r["rho"]), max(beyond, key=lambda r: r["rho"])
        out.append(f"Long-range signal: with {lo['activation']} the terms older than {lo['lag']} steps carry "
                   f"{100 * lo['beyond10']:.2g}% of the gradient at rho = {lo['rho']:g} and "
                   f"{100 * hi['beyond10']:.2g}% at rho = {hi['rho']:g}: truncating BPTT to {lo['lag']} steps "
                   "loses that share.")
    if c.cells_text:
        out.append(c.cells_text[0])
    if c.cures:
        out += c.cures["conclusions"]
    cl = c.cliff
    out.append(f"The one-unit network has a wall near w = {cl['w_wall']:.3f} (b = -2.5): the gradient norm reaches "
               f"{cl['grad_max']:.3g} there against a median of {cl['grad_median_away']:.2g} further than 0.1 away, "
               "so one gradient step at the wall can throw the weights far away; clipping the gradient norm tames it.")
    return out
