"""The curse of memory (Zucchet & Orvieto 2024), measured exactly: how sensitive the state is to the
recurrent parameters as the network's memory grows.

Vanishing and exploding gradients are about the error on its way back, ||dE_t/ds_k|| against the lag
t - k (bptt.flow). The curse of memory is about the state itself: as a recurrence remembers longer
(|lambda| -> 1 for a diagonal one, rho(W) -> 1 for an Elman cell), h_t adds up more and more past
inputs, each through a power of the same parameter, and d h_t / d theta grows without bound, even
where the error neither vanishes nor explodes. A small step in theta then moves the outputs a lot.

Conventions (N batch, T time, D input, H hidden units; S0 the width of the hidden output h_t that the
head reads: H, or 2H for an LRU's [Re h, Im h]):
- recurrent parameters: the cell's parameters except those with the role "input" or "input bias"
  (and the head V, c): W for Elman, W and bh for a gated cell, lam for `linear`, nu_log, theta_log
  and gamma_log for `lru`. `params=` names others (an input weight, e.g. `linear`'s B).
- the sensitivity of h_t to an entry theta_p is column p of RTRL's influence matrix
  M_t = d state_t / d theta (bptt.approx.influence), carried forward exactly; here its rows for h_t.
- moment of parameter `name` at step t:
      m_t(name) = mean over sequences n and entries p of name of ||d h_t[n] / d theta_p||^2
  (the squared norm over the S0 numbers of h_t). An entry of a diagonal cell's parameter moves its
  own unit alone, so m_t is the mean over units of (d h_{t,i} / d theta_i)^2: for `linear`,
  E[(dh/dlambda)^2]; for an LRU, E[|dh/d nu_log|^2] with h complex. For Elman, W_ij moves every unit
  after one step, and m_t(W) is the mean over the H^2 entries of ||d s_t / d W_ij||^2.
- state moment at step t: E ||h_t||^2 / H, per unit (an LRU's |h_i|^2 = (Re h_i)^2 + (Im h_i)^2).

The one-dimensional case in closed form (closed_form, closed_forms; the derivations are theirs),
checked by monte_carlo, which runs the `linear` cell (H = D = 1: h_t = lambda h_{t-1} + x_t exactly)
on AR(1) inputs and reads its exact sensitivities.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import core, validate
from .approx import influence

PARAMETRISATIONS = ("lambda", "nu", "gamma", "nu+gamma")  # the columns of closed_forms and monte_carlo
EXCLUDED_ROLES = ("input", "input bias")


def recurrent_names(model) -> tuple:
    """The model's recurrent parameters, in the cell's order (see the module's notes)."""
    validate.a_model(model)
    return tuple(k for k, p in model.cell.params.items() if k in model.params and p.role not in EXCLUDED_ROLES)


@dataclass(frozen=True, eq=False)
class Sensitivity:
    """The sensitivity of the hidden output to the recurrent parameters over a batch, step by step.

    names:   the parameters, in the cell's order
    state:   (T,) E ||h_t||^2 / H, the state moment per unit
    moments: {name: (T,)} m_t(name), the mean squared sensitivity per entry (module's notes)
    final:   {name: (N, S0, *shape)} d h_{T-1} / d name, exact, for every sequence
    h:       (N, S0) h_{T-1}
    errors:  the classic error flow of the same sequences, bptt.analyse_batch's BatchAnalysis (by
             lag: ratio_mean ||dE_t/ds_{t-l}|| / ||dE_t/ds_t||, decay rates), when targets were
             given; else None
    """

    names: tuple
    state: np.ndarray
    moments: dict
    final: dict
    h: np.ndarray
    errors: object = None

    @property
    def T(self) -> int:
        return self.state.shape[0]

    def at(self, t=-1) -> dict:
        """{"state": E||h_t||^2 / H, name: m_t(name), ...} at step t (the last by default)."""
        t = validate.integer("t", t, -self.T, self.T - 1)
        return {"state": float(self.state[t]), **{k: float(v[t]) for k, v in self.moments.items()}}

    def error_flow(self, lags=(1, 10, 100)) -> dict:
        """The error flow beside the sensitivities: {"decay": mean decay rate over the sequences,
        "ratio": {lag: mean of ||dE_t/ds_{t-l}|| / ||dE_t/ds_t||}} (lags beyond T - 1 left out)."""
        if self.errors is None:
            raise ValueError("the error flow needs targets: call sensitivity(model, x, y)")
        if isinstance(lags, (str, bytes)) or not hasattr(lags, "__iter__"):
            raise TypeError(f"lags must be a list of lags (integers >= 0), got {validate.show(lags)}")
        lags = [validate.integer("a lag", l, 0) for l in lags]
        mean, _ = self.errors.curve("ratio_mean")
        return {"decay": float(np.nanmean(self.errors.decay)),
                "ratio": {int(l): float(mean[l]) for l in lags if l < mean.shape[0]}}


def sensitivity(model, x, y=None, *, h0=None, params=None) -> Sensitivity:
    """The exact sensitivity d h_t / d theta of the hidden output to the recurrent parameters, for
    every step t, by forward mode (RTRL's influence matrices), and beside it the error flow.

    x: one sequence (T, D) / (T,) ids, or a batch (N, T, D) / (N, T); y (optional): targets as for
    bptt.gradients, for the error flow (bptt.analyse_batch); h0 as for bptt.forward. params: the
    parameters to follow (default: recurrent_names(model)). Cost per step and sequence: RTRL's,
    O(S^2 P) for P followed numbers; memory O(S P), nothing kept per step but the moments.
    """
    validate.a_model(model).check_finite()
    if params is not None and (isinstance(params, str) or not isinstance(params, (list, tuple))
                               or not all(isinstance(k, str) for k in params)):
        raise TypeError(f"params must be a list of parameter names, got {validate.show(params)}")
    has = ", ".join(k for k in model.cell.params if k in model.params)
    names = recurrent_names(model) if params is None else tuple(params)
    if params is None and not names:
        raise ValueError(f"the {model.cell.name} cell has no recurrent parameters (its step's coefficients come "
                         f"from the input alone): name some of {has} with params=")
    unknown = [k for k in names if k not in model.params or k not in model.cell.params]
    if unknown or not names:
        raise ValueError(f"params must name some of the {model.cell.name} cell's parameters that this model has "
                         f"({has}), got {validate.show(names)}")
    lay = influence.Layout(names, tuple(model.params[k].shape for k in names),
                           tuple(model.cell.params[k].role for k in names))
    xin = validate.inputs(model, x)
    state = core.initial_state(model, h0, xin)
    method = influence.RTRL()
    carry = method.start(model, lay, xin.N)
    S0 = model.state_sizes[0]
    cols = np.cumsum((0,) + lay.sizes)
    T = xin.T
    moments = {k: np.empty(T) for k in names}
    second = np.empty(T)
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(T):
            prev = state
            state, cache, xt = influence.step_forward(model, xin, t, prev)
            carry = method.step(carry, influence.Step(model, lay, prev, state, cache, xt))
            M = carry[0][:, :S0]  # (N, S0, P): d h_t / d theta
            sq = np.einsum("nsp,nsp->p", M, M) / xin.N  # (P,) mean over sequences of ||d h_t / d theta_p||^2
            for k, a, b in zip(names, cols[:-1], cols[1:]):
                moments[k][t] = sq[a:b].mean()
            second[t] = np.einsum("ns,ns->", state[0], state[0]) / (xin.N * model.H)
    M = carry[0][:, :S0]
    final = {k: M[..., a:b].reshape((xin.N, S0) + model.params[k].shape)
             for k, a, b in zip(names, cols[:-1], cols[1:])}
    if not (np.isfinite(second).all() and all(np.isfinite(v).all() for v in moments.values())):
        raise FloatingPointError(core.nonfinite_message(core.forward(model, x, h0)))
    errors = None
    if y is not None:
        from .batch import analyse_batch
        one = (lambda a: a) if xin.batched else _one  # noqa: E731
        errors = analyse_batch(model, one(x), one(y), h0=one(h0), progress=False)
    return Sensitivity(names, second, moments, final, state[0].copy(), errors)


def _one(a):
    """One sequence's array (or h0, or the pair (h0, c0)) as a batch of one."""
    if a is None:
        return None
    if isinstance(a, tuple):
        return tuple(_one(p) for p in a)
    return np.asarray(a)[None]


# --- the one-dimensional recurrence in closed form -------------------------------------------------
def _check(lam, rho):
    for name, v in (("lam", lam), ("rho", rho)):
        validate.not_masked(v, name)
        try:
            a = np.asarray(v, dtype=float)
        except (TypeError, ValueError):
            a = np.array(np.nan)
        if isinstance(v, (bool, np.bool_)) or not np.all(np.isfinite(a)) or np.any(np.abs(a) >= 1):
            raise ValueError(f"{name} must be a number with |{name}| < 1 (a stable recurrence, a stationary "
                             f"input), got {validate.show(v)}")
    return np.asarray(lam, dtype=float), np.asarray(rho, dtype=float)


def closed_form(lam, rho):
    """(E[h^2], E[(dh/dlambda)^2]) for h_t = lambda h_{t-1} + x_t in its stationary state, x_t
    stationary with unit variance and autocorrelation E[x_t x_(t-k)] = rho^|k| (an AR(1) process):
    Zucchet & Orvieto (2024), eq. (4) and its appendix:

        E[h^2]            = (1 + rho lambda) / ((1 - lambda rho)(1 - lambda^2))
        E[(dh/dlambda)^2] = ((1 + lambda^2)(1 - lambda^2 rho^2) + 2 (1 - lambda^2) lambda rho)
                            / ((1 - lambda^2)^3 (1 - lambda rho)^2)

    from h_t = sum_k lambda^k x_(t-k) and dh_t/dlambda = sum_k k lambda^(k-1) x_(t-k), whose second
    moments are the double sums over (j, k) of the coefficients times rho^|j - k|. Arrays broadcast.
    """
    lam, rho = _check(lam, rho)
    l2 = lam * lam
    h2 = (1 + rho * lam) / ((1 - lam * rho) * (1 - l2))
    d2 = ((1 + l2) * (1 - l2 * rho * rho) + 2 * (1 - l2) * lam * rho) / ((1 - l2) ** 3 * (1 - lam * rho) ** 2)
    return h2, d2


def closed_forms(lam, rho) -> dict:
    """E[(dh/dtheta)^2] for the four parametrisations of the recurrence h_t = lambda h_{t-1} + gamma x_t
    (inputs as in closed_form), and the state's E[h^2] without and with the normalisation:

        "lambda"    theta = lambda, gamma = 1:  F = closed_form(lambda, rho)[1]
        "nu"        lambda = exp(-exp(nu)) (the LRU's nu_log), gamma = 1: dlambda/dnu = lambda ln lambda,
                    so E[(dh/dnu)^2] = (lambda ln lambda)^2 F
        "gamma"     theta = lambda, gamma = sqrt(1 - lambda^2) tied to lambda (the LRU's normalisation):
                    h = gamma g with g the unnormalised state, so dh/dlambda = gamma dg/dlambda + gamma' g,
                    gamma' = -lambda / gamma, and
                        E[(dh/dlambda)^2] = gamma^2 F + 2 gamma gamma' E[g dg/dlambda] + gamma'^2 G
                    with G = E[g^2] = closed_form(lambda, rho)[0] and E[g dg/dlambda] = G'/2 (the
                    inputs' law does not depend on lambda), G'/G = 2 rho / (1 - rho^2 lambda^2)
                    + 2 lambda / (1 - lambda^2) (the logarithmic derivative of G); with gamma gamma'
                    = -lambda and gamma'^2 = lambda^2 / (1 - lambda^2) this is
                        (1 - lambda^2) F - G (lambda^2 / (1 - lambda^2) + 2 lambda rho / (1 - rho^2 lambda^2))
                    which for rho = 0 is 1 / (1 - lambda^2)^2
        "nu+gamma"  both: (lambda ln lambda)^2 times "gamma"'s, which stays bounded: as lambda -> 1,
                    (lambda ln lambda)^2 ~ (1 - lambda)^2, (1 - lambda^2) F ~ (1 + rho) / (2 (1 - rho) (1 - lambda)^2)
                    and G lambda^2 / (1 - lambda^2) ~ (1 + rho) / (4 (1 - rho) (1 - lambda)^2) (the rest is of
                    lower order), so it tends to (1 + rho) / (4 (1 - rho)): 1/4 for white inputs
        "h2"        E[h^2] = G;  "h2 gamma": E[h^2] with the normalisation, (1 - lambda^2) G
    """
    lam, rho = _check(lam, rho)
    if np.any(lam <= 0):
        raise ValueError(f"lam must be in (0, 1), where lambda = exp(-exp(nu)) reaches, got {validate.show(lam)}")
    G, F = closed_form(lam, rho)
    l2 = lam * lam
    normalised = (1 - l2) * F - G * (l2 / (1 - l2) + 2 * lam * rho / (1 - rho * rho * l2))
    chain = (lam * np.log(lam)) ** 2
    return {"lambda": F, "nu": chain * F, "gamma": normalised, "nu+gamma": chain * normalised,
            "h2": G, "h2 gamma": (1 - l2) * G}


# --- the Monte Carlo check, from bptt's exact sensitivities -----------------------------------------
def ar1(N, T, rho, *, seed, x0=None) -> np.ndarray:
    """N sequences of T steps of x_t = rho x_(t-1) + sqrt(1 - rho^2) eps_t, eps_t standard normal, and
    x_0 standard normal (started stationary: unit variance, E[x_t x_(t-k)] = rho^|k|), or, given x0
    (N,) the step before, x_0 = rho x0 + sqrt(1 - rho^2) eps_0 (a long sequence drawn in pieces):
    (N, T, 1). seed: an int or an np.random.Generator."""
    _check(0.0, rho)
    N, T = validate.integer("N", N, 1), validate.integer("T", T, 1)
    validate.too_big(f"{N} sequences of {T} steps", N * T)
    rng = validate.rng(seed)
    if x0 is not None:
        validate.not_masked(x0, "x0")
        try:
            x0 = np.asarray(x0, dtype=float)
        except (TypeError, ValueError):
            x0 = np.array(np.nan)
        if x0.shape != (N,) or not np.isfinite(x0).all():
            raise ValueError(f"x0 must be N = {N} finite numbers, got {validate.show(x0)}")
    x = rng.standard_normal((T, N))  # time-major while it is made: each step one contiguous row
    s = np.sqrt(1 - rho * rho)
    if x0 is not None:
        x[0] = rho * np.asarray(x0) + s * x[0]
    for t in range(1, T):
        x[t] = rho * x[t - 1] + s * x[t]
    return x.T[..., None]  # a view: time-major in memory, as the loops over steps read it


def burn_in(lam) -> int:
    """Steps enough for h_t = lambda h_{t-1} + ... started at 0 to forget its start: 12 / (1 - lambda),
    where the neglected part of E[(dh/dlambda)^2] is below 1e-7 of it (terms k^2 lambda^(2k) beyond
    k = 12 / (1 - lambda))."""
    lam = float(_check(lam, 0.0)[0])
    return int(np.ceil(12 / (1 - abs(lam)))) + 1


def linear_sensitivity(model, x, start=None):
    """The `linear` cell's (h_{T-1}, {"lam": dh_{T-1}/dlam, "B": dh_{T-1}/dB}) as sensitivity(model, x,
    params=("lam", "B")) gives them, from h_{-1} = 0, by a loop that keeps the influence's non-zero
    entries only: it is diagonal (entry i of lam and row i of B move unit i alone), and they follow
        h_t = lam h_{t-1} + B x_t,  dh_t/dlam = lam dh_{t-1}/dlam + h_{t-1},  dh_t/dB_ij = lam dh_{t-1}/dB_ij + x_tj
    O(N H D) a step instead of RTRL's O(N H^2 (H + H D)). x (N, T, D); h (N, H), "lam" (N, H, H)
    and "B" (N, H, H, D), zero off the diagonal. start: what a call on the sequences' previous steps
    returned, to go on from there (a long sequence in pieces). tests/test_memory.py holds it equal to
    sensitivity's."""
    if validate.a_model(model).cell.name != "linear":
        raise ValueError(f"linear_sensitivity runs the linear cell, got the {model.cell.name} cell")
    validate.not_masked(x, "x")
    try:
        X = np.swapaxes(np.asarray(x, dtype=model.dtype), 0, 1)  # (T, N, D)
    except (TypeError, ValueError, np.exceptions.AxisError):
        X = np.zeros(0)
    if X.ndim != 3 or X.shape[2] != model.D or not X.size or not np.isfinite(X).all():
        raise ValueError(f"x must be finite numbers of shape (N, T, D = {model.D}), got {validate.show(x)}")
    T, N, D = X.shape
    if start is not None and not (isinstance(start, tuple) and len(start) == 2 and isinstance(start[1], dict)
                                  and set(start[1]) == {"lam", "B"}
                                  and np.shape(start[0]) == (N, model.H)
                                  and np.shape(start[1]["lam"]) == (N, model.H, model.H)
                                  and np.shape(start[1]["B"]) == (N, model.H, model.H, D)):
        raise ValueError(f"start must be what linear_sensitivity returned for these {N} sequences, got "
                         f"{validate.show(start)}")
    lam, B = model.lam, model.B
    if start is None:
        h = np.zeros((N, model.H), dtype=model.dtype)
        d_lam, d_B = np.zeros_like(h), np.zeros((N,) + B.shape, dtype=model.dtype)
    else:
        h, d_lam, d_B = start[0], np.einsum("nii->ni", start[1]["lam"]), np.einsum("niid->nid", start[1]["B"])
    for t in range(T):
        d_lam = lam * d_lam + h
        d_B = lam[:, None] * d_B + X[t][:, None, :]
        h = lam * h + X[t] @ B.T
    eye = np.eye(model.H, dtype=model.dtype)
    return h, {"lam": eye * d_lam[:, :, None], "B": eye[None, :, :, None] * d_B[:, :, None, :]}


def samples(lam, rho, n, *, seed, normalise=False, chunk=8192):
    """n independent samples of (h_T, dh_T/dlambda) at step T = burn_in(lam) of the `linear` cell
    with H = D = 1 on AR(1) inputs (ar1), read from bptt's exact sensitivities (linear_sensitivity,
    the same numbers as sensitivity's for this cell). normalise: the input weight B = gamma =
    sqrt(1 - lambda^2) tied to lambda, and dh/dlambda the total derivative dh/dlam + gamma'(lambda)
    dh/dB. Two (n,) arrays. chunk sequences are drawn at a time, in pieces of 2^22 numbers."""
    from .model import Model

    closed_forms(lam, rho)  # checks 0 < lam < 1, |rho| < 1
    lam, rho = float(lam), float(rho)
    n, chunk = validate.integer("n", n, 1), validate.integer("chunk", chunk, 1)
    validate.too_big(f"n = {n} samples", n)
    if not isinstance(normalise, (bool, np.bool_)):
        raise TypeError(f"normalise must be True or False, got {validate.show(normalise)}")
    g = np.sqrt(1 - lam * lam) if normalise else 1.0
    model = Model("linear", lam=np.array([lam]), B=np.array([[g]]), V=np.ones((1, 1)), head="mse")
    rng = validate.rng(seed)
    T = burn_in(lam)
    h, d = [], []
    for first in range(0, n, chunk):
        N = min(chunk, n - first)
        piece = max(1, (1 << 22) // N)
        x, out = None, None
        for t0 in range(0, T, piece):
            x = ar1(N, min(piece, T - t0), rho, seed=rng, x0=None if x is None else x[:, -1, 0])
            out = linear_sensitivity(model, x, out)
        last, sens = out
        dh = sens["lam"][:, 0, 0]
        if normalise:
            dh = dh + (-lam / g) * sens["B"][:, 0, 0, 0]
        h.append(last[:, 0])
        d.append(dh)
    return np.concatenate(h), np.concatenate(d)


@dataclass(frozen=True)
class Estimate:
    """A Monte Carlo mean and its standard error (the sample standard deviation / sqrt(n))."""
    mean: float
    se: float

    @property
    def relative_se(self) -> float:
        return self.se / abs(self.mean)


def _estimate(v) -> Estimate:
    return Estimate(float(v.mean()), float(v.std(ddof=1) / np.sqrt(v.size)))


def monte_carlo(lam, rho, *, n=60_000, seed=0) -> dict:
    """Monte Carlo estimates of closed_forms' quantities from bptt's exact sensitivities: {name:
    Estimate} for "h2", "h2 gamma" and the four PARAMETRISATIONS. Two runs of `samples`
    (unnormalised and normalised, n sequences each); the "nu" columns multiply by the exact
    dlambda/dnu = lambda ln lambda. The estimate of E[v^2] for Gaussian v has a relative standard
    error sqrt(2 / n): 0.58% at n = 60,000."""
    closed_forms(lam, rho)  # checks 0 < lam < 1, |rho| < 1
    lam, rho = float(lam), float(rho)
    n = validate.integer("n", n, 2)
    rng = validate.rng(seed)
    chain = float(lam * np.log(lam))
    h, d = samples(lam, rho, n, seed=rng)
    hg, dg = samples(lam, rho, n, seed=rng, normalise=True)
    return {"h2": _estimate(h * h), "h2 gamma": _estimate(hg * hg), "lambda": _estimate(d * d),
            "nu": _estimate((chain * d) ** 2), "gamma": _estimate(dg * dg), "nu+gamma": _estimate((chain * dg) ** 2)}


# --- a figure ---------------------------------------------------------------------------------------
def figure(rows, title=None):
    """E[(dh/dtheta)^2] against 1 - lambda for each parametrisation, one panel per rho: lines the
    closed forms, points the Monte Carlo estimates. rows: dicts with "lam", "rho", "closed" {name:
    value} and "monte_carlo" {name: {"mean", "se"}} (as experiments/curse_of_memory.py writes them).
    A matplotlib Figure (the `plot` extra)."""
    from .plots import require_matplotlib

    require_matplotlib()
    from matplotlib.figure import Figure

    rhos = sorted({r["rho"] for r in rows})
    fig = Figure(figsize=(4.2 * len(rhos), 3.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(rhos), sharey=True))
    labels = {"lambda": "λ (raw)", "nu": "ν, λ = exp(−exp ν)", "gamma": "λ, input × √(1−λ²)",
              "nu+gamma": "ν and √(1−λ²)"}
    for ax, rho in zip(axes, rhos):
        mine = sorted((r for r in rows if r["rho"] == rho), key=lambda r: r["lam"])
        gap = np.array([1 - r["lam"] for r in mine])
        dense = np.geomspace(gap.min(), gap.max(), 200)
        for i, name in enumerate(PARAMETRISATIONS):
            colour = f"C{i}"
            ax.plot(dense, closed_forms(1 - dense, rho)[name], color=colour, lw=1.5, label=labels[name])
            mc = [r["monte_carlo"][name]["mean"] for r in mine if "monte_carlo" in r]
            if mc:
                ax.plot([1 - r["lam"] for r in mine if "monte_carlo" in r], mc, "o", color=colour, ms=5)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.invert_xaxis()
        ax.set_xlabel("1 − λ (memory grows to the right)")
        ax.set_title(f"inputs AR(1), ρ = {rho:g}")
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel("E[(dh/dθ)²]")
    axes[0].legend(fontsize=8, loc="upper left")
    if title:
        fig.suptitle(title)
    return fig
