"""The report's section on the cures that keep the gradient alive: gradient flossing (Engelken 2023)
and an orthogonal W, each measured on the current code when the report is built.

Every model of the section is an Elman RNN (tanh, biases) of the report's H on the same N sequences
of the copy task (length T - 20, so T steps; at least 1), and shows two things: its error table
||dE_t/ds_k|| (bptt.flow, drawn by plots.heatmaps as the other sections draw theirs) and its Lyapunov
spectrum (bptt.floss.exponents, the QR iteration; (N, S), each row descending).

- Flossing: the model, the batch and the flossing are those of `bptt train --floss k` with
  `floss_settings(st)`: bptt.train's initial model (init "uniform", PyTorch's +-1/sqrt(H)), the batch
  bptt.train.flossing draws for it, and bptt.train.flossing.before, the function the training loop
  calls; its spectrum and table before and after.
- Orthogonal against Glorot: `orthogonal_pair(st, task)`, one draw of U, V and the biases, W orthogonal
  (bptt.random_model's init "orthogonal") in one and Glorot's uniform W (+-sqrt(6 / (H + H))) in
  the other.

html.py lays the section out with render(); every sentence takes its numbers from gather().
"""
from __future__ import annotations

from html import escape

import numpy as np

TITLE = "The cures that keep the gradient alive"
TOL = 0.01  # how close to 0 flossing must bring the k leading exponents (the criterion quoted)
LAG = 10  # the lag the section quotes (less on short sequences)


def floss_settings(st) -> dict:
    """The `bptt train` settings whose flossing before training the section shows (steps 0)."""
    return {"task": "copy", "length": max(st.T - 20, 1), "hidden": st.H, "batch": st.N, "init": "uniform",
            "dtype": "float64", "floss": st.floss_k, "floss_steps": st.floss_steps, "floss_lr": st.floss_lr,
            "seed": st.seed, "steps": 0}


def flossed(st):
    """(task, before, after, record, x, y): the run's task, its initial model and the flossed one
    (bptt.train.flossing.before, as `bptt train --floss k` calls it), the run's record of it, and the
    batch it flossed on, x and y (N, T) ids."""
    from ..train import resolve
    from ..train import flossing
    from ..train.loop import build_task, initial_model

    cfg = resolve(floss_settings(st))
    task = build_task(cfg)
    before = initial_model(cfg, task)
    x, _ = flossing.batch(cfg, task, before)
    x_again, y = task.batch(np.random.default_rng([cfg.seed, 2]), cfg.batch)  # flossing's generator: its targets
    if not np.array_equal(x, x_again):
        raise RuntimeError("bptt.train.flossing no longer draws its batch from the generator [seed, 2]: the "
                           "report's targets would belong to other sequences")
    after, record = flossing.before(cfg, task, before)
    return task, before, after, record, x, y


def glorot(H, *, seed) -> np.ndarray:
    """Glorot's uniform (H, H) matrix: uniform on +-sqrt(6 / (fan_in + fan_out)) = +-sqrt(3 / H)."""
    limit = np.sqrt(6.0 / (H + H))
    return np.random.default_rng(seed).uniform(-limit, limit, (H, H))


def orthogonal_pair(st, task) -> dict:
    """{"Glorot": model, "orthogonal": model}: the same U, V and biases, W of each kind (H = st.H)."""
    from ..model import random_model

    orth = random_model("rnn", st.H, task.D, task.O, seed=st.seed + 960, init="orthogonal", bias=True,
                        head=task.head)
    return {"Glorot": orth.replace(W=glorot(st.H, seed=st.seed + 961)), "orthogonal": orth}


def _measure(model, x, y, lag):
    """A model's numbers on the batch, and its flows (one per sequence)."""
    from .. import batch
    from ..floss import exponents

    fls = batch.flows(model, x, y, progress=False)
    ba = batch.analyse_flows(fls)
    lam = exponents(model, x)  # (N, S)
    sv = np.linalg.svd(model.W, compute_uv=False)
    return {"exponents": lam.tolist(), "mean": lam.mean(axis=0).tolist(),
            "decay": float(np.nanmean(ba.decay)), "ratio_lag": float(np.nanmean(ba.ratio_mean[:, lag])),
            "beyond": float(np.nanmean(ba.beyond[:, lag])), "rho": float(np.max(np.abs(np.linalg.eigvals(model.W)))),
            "sv_max": float(sv[0]), "sv_min": float(sv[-1]),
            "orthogonality": float(np.max(np.abs(model.W.T @ model.W - np.eye(len(model.W)))))}, fls


def gather(st, figure, say=None) -> dict:
    """The section's numbers and figures for settings st (H, T, N, seed, floss_k, floss_steps,
    floss_lr); figure(fig) -> what the report stores for a figure; say(text): what runs now (or
    None). Returns {"k", "S", "T", "N", "H", "lag", "floss", "models", "figures", "text",
    "conclusions"}: models is label -> numbers ("before flossing", "after flossing", "Glorot",
    "orthogonal"); text the section's sentences, conclusions two of them for the report's end."""
    from .. import plots

    say = say or (lambda text: None)
    say(f"gradient flossing: {st.floss_steps} updates of the {st.floss_k} leading exponents, H = {st.H}")
    task, before, after, record, x, y = flossed(st)
    lag = min(LAG, x.shape[1] - 1)
    models, flows = {}, {}
    for label, m in (("before flossing", before), ("after flossing", after)):
        models[label], flows[label] = _measure(m, x, y, lag)
    say(f"an orthogonal W against Glorot's, H = {st.H}")
    for label, m in orthogonal_pair(st, task).items():
        models[label], flows[label] = _measure(m, x, y, lag)
    k, T, N = st.floss_k, x.shape[1], x.shape[0]
    figures = {}
    for name, pair in (("floss", ("before flossing", "after flossing")), ("orth", ("Glorot", "orthogonal"))):
        figures[f"cures_{name}_flow"] = figure(plots.heatmaps(
            {p: flows[p][0] for p in pair}, title=f"log10 ||dE_t/ds_k||, sequence 0 of the copy task (T = {T})"))
        figures[f"cures_{name}_spectrum"] = figure(spectrum_figure(
            {p: np.array(models[p]["exponents"]) for p in pair}, k if name == "floss" else None))
    out = {"k": k, "S": len(models["before flossing"]["mean"]), "T": T, "N": N, "H": st.H, "lag": lag,
           "floss": {"steps": st.floss_steps, "lr": st.floss_lr, "record": record}, "models": models,
           "figures": figures}
    out["text"] = sentences(out)
    out["conclusions"] = [out["text"][0], out["text"][-2]]  # flossing's exponents, the orthogonal spectrum
    return out


def spectrum_figure(spectra: dict, k=None, title="Lyapunov spectrum: mean over the sequences"):
    """Exponent i against i (1..S), one line per model: spectra is label -> (N, S) exponents, the
    mean over the N sequences drawn, with a band from the smallest to the largest; k: the leading
    exponents flossed, shaded."""
    from ..plots import finish, require_matplotlib

    require_matplotlib()
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.subplots()
    for i, (name, lam) in enumerate(spectra.items()):
        idx = np.arange(1, lam.shape[1] + 1)
        ax.plot(idx, lam.mean(axis=0), color=f"C{i}", marker="o", ms=3, lw=1.6, label=name)
        ax.fill_between(idx, lam.min(axis=0), lam.max(axis=0), color=f"C{i}", alpha=0.2, lw=0)
    if k:
        ax.axvspan(0.5, k + 0.5, color="0.85", zorder=0, label=f"the {k} flossed")
    ax.axhline(0.0, color="k", lw=0.8, ls=":")
    ax.set_xlabel("exponent i (descending)")
    ax.set_ylabel("Lyapunov exponent (per step)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    return finish(fig)


def _more(a, b) -> str:
    return "more slowly" if a > b else "faster" if a < b else "at the same rate"


def sentences(s) -> list[str]:
    """What the section's numbers show, in words, every number from s (gather's dict)."""
    k, lag, m = s["k"], s["lag"], s["models"]
    b, a = m["before flossing"], m["after flossing"]
    lead_b, lead_a = np.array(b["exponents"])[:, :k], np.array(a["exponents"])[:, :k]
    far = float(lead_a.flat[np.argmax(np.abs(lead_a))])
    fmt = lambda vals: ", ".join(f"{v:.4f}" for v in vals)  # noqa: E731
    out = [f"Gradient flossing before training ({s['floss']['steps']} Adam updates at learning rate "
           f"{s['floss']['lr']:g} of the regulariser alone, as bptt train --floss {k} runs them) moves the {k} "
           f"leading Lyapunov exponents of the Elman network (H = {s['H']}, PyTorch's uniform initialisation) from "
           f"{fmt(lead_b.mean(axis=0))} to {fmt(lead_a.mean(axis=0))} per step (mean over the {s['N']} sequences "
           f"it flossed); the furthest from 0 over the batch is {far:.2g}, "
           + (f"within +-{TOL:g}." if abs(far) <= TOL else f"outside +-{TOL:g}.")]
    if s["S"] > k:
        out.append(f"Of the exponents it does not floss, exponent {k + 1} is {a['mean'][k]:.3g} after "
                   f"({b['mean'][k]:.3g} before), the last {a['mean'][-1]:.3g} ({b['mean'][-1]:.3g} before).")
    out.append(f"The error table decays {_more(a['decay'], b['decay'])} after flossing: the decay rate goes from "
               f"{b['decay']:.3g} to {a['decay']:.3g} per step, at lag {lag} the mean ||dE_t/ds_(t-{lag})|| is "
               f"{b['ratio_lag']:.2g} of its lag-0 size before and {a['ratio_lag']:.2g} after, and the terms older "
               f"than {lag} steps carry {100 * b['beyond']:.2g}% of the W gradient before and "
               f"{100 * a['beyond']:.2g}% after.")
    g, o = m["Glorot"], m["orthogonal"]
    out.append(f"With W orthogonal (max |W^T W - I| = {o['orthogonality']:.1e}) every singular value of W is 1 and "
               f"only tanh's slope, at most 1, shrinks the error: the spectrum lies between {o['mean'][-1]:.3g} and "
               f"{o['mean'][0]:.3g}. Glorot's uniform W of the same size has singular values from {g['sv_min']:.2g} "
               f"to {g['sv_max']:.3g} (spectral radius {g['rho']:.3g}), and its spectrum spreads from "
               f"{g['mean'][-1]:.3g} to {g['mean'][0]:.3g}.")
    out.append(f"Their error tables, orthogonal against Glorot: decay rate {o['decay']:.3g} against "
               f"{g['decay']:.3g} per step; at lag {lag} {o['ratio_lag']:.2g} against {g['ratio_lag']:.2g} of the "
               f"lag-0 size; the terms older than {lag} steps carry {100 * o['beyond']:.2g}% against "
               f"{100 * g['beyond']:.2g}% of the W gradient. The largest exponent, which sets the decay at long "
               f"lags, is {o['mean'][0]:.3g} against {g['mean'][0]:.3g}.")
    return out


def render(s, img, table) -> str:
    """The section's HTML (after its heading); img(name, alt, caption) and table(head, rows, left)
    are html.py's."""
    k, lag, m = s["k"], s["lag"], s["models"]
    rows = []
    for label, r in m.items():
        lam = np.array(r["exponents"])
        rows.append([escape(label), f"{r['mean'][0]:.4f}", f"{r['mean'][min(k, s['S']) - 1]:.4f}",
                     f"{float(np.max(np.abs(lam[:, :k]))):.2g}", f"{r['mean'][-1]:.3g}", f"{r['decay']:.4g}",
                     f"{r['ratio_lag']:.3g}", f"{100 * r['beyond']:.2g}%", f"{r['orthogonality']:.1e}"])
    parts = [f"<p>Two cures, each measured here: gradient flossing (Engelken 2023), which pushes the k leading "
             f"Lyapunov exponents of the forward dynamics to 0 by their exact gradient (<code>bptt.floss</code>; "
             f"<code>bptt train --floss k</code>), and an orthogonal recurrent matrix W. Every network is an "
             f"Elman RNN (tanh, biases) with H = {s['H']} on the same {s['N']} sequences of the copy task "
             f"({s['T']} steps). For each: the error table ||dE<sub>t</sub>/ds<sub>k</sub>|| of the first "
             f"sequence and the Lyapunov spectrum (the QR iteration, <code>bptt.floss.exponents</code>), "
             f"exponent i per step.</p>",
             "<h3>Gradient flossing, before and after</h3>",
             img("cures_floss_flow", "error tables before and after flossing",
                 "log10 ||dE_t/ds_k|| for every output t and step k, one colour scale: before flossing (left), "
                 "after (right)."),
             img("cures_floss_spectrum", "Lyapunov spectra before and after flossing",
                 f"The Lyapunov spectrum, mean over the sequences (band: smallest to largest); shaded: the {k} "
                 "exponents flossed."),
             "<h3>An orthogonal W against Glorot's</h3>",
             img("cures_orth_flow", "error tables with a Glorot and an orthogonal W",
                 "log10 ||dE_t/ds_k||, one colour scale: Glorot's uniform W (left), an orthogonal W (right); "
                 "the same U, V and biases."),
             img("cures_orth_spectrum", "Lyapunov spectra with a Glorot and an orthogonal W",
                 "The Lyapunov spectrum, mean over the sequences (band: smallest to largest)."),
             table(["network", "exponent 1", f"exponent {k}", f"max |exponents 1..{k}|", "last exponent",
                    "decay rate", f"ratio at lag {lag}", f"share beyond lag {lag}", "max |W<sup>T</sup>W - I|"],
                   rows, left=(0,)),
             "<ul>" + "".join(f"<li>{escape(t)}</li>" for t in s["text"]) + "</ul>"]
    return "\n".join(parts)
