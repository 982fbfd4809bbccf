"""The LRU, minGRU, minLSTM and the linear diagonal cell in JAX, by lax.scan or lax.associative_scan.

Every one of these cells is an elementwise linear recurrence in its state,

    h_t = a_t * h_{t-1} + b_t          a_t, b_t (T, N, H), h (N, H)

with a_t and b_t made from the input alone (written here from the papers' equations, not from
bptt's cells):

    linear   a_t = lam                         b_t = B x_t
    lru      a_t = exp(-exp(nu_log) + i exp(theta_log))   (complex)
             b_t = (B_re + i B_im) x_t * exp(gamma_log)   (gamma_log = 0 when the model has none)
             h0 = Re h0 + i Im h0 from the real (N, 2H) [Re h0, Im h0]; q_t = Re(C h_t) + c with
             C = V[:, :H] - i V[:, H:], which is V [Re h_t, Im h_t] + c
    mingru   z = sigma(U_z x_t + b_z), h~ = U_h x_t + b_h;           a_t = 1 - z, b_t = z h~
    minlstm  f, i = sigma(U_f x_t + b_f), sigma(U_i x_t + b_i), h~ = U_h x_t + b_h;
             a_t = f / (f + i), b_t = i / (f + i) h~

Two forms of the same recurrence (FORMS): "scan", lax.scan stepping h through time, and
"associative", lax.associative_scan over the pairs (a_t, b_t) with the operator
(a1, b1), (a2, b2) -> (a1 a2, a2 b1 + b2), the initial state folded into the first pair
(b_0 <- a_0 h0 + b_0); element t of the scan is then (a_0...a_t, h_t).

The loss is a pure function of (the real parameters, the real initial state); jax.value_and_grad
differentiates it, complex intermediates included. Truncation (truncate=K, the notebook's rule) is
built with lax.stop_gradient: output t's state is recomputed from the state before step t-K,
stopped (the initial state, kept, when t - K <= -1), through steps t-K..t. All T windows run side by
side as one recurrence of length T: window t's steps padded in front by the pair (1, 0), which
leaves its restart state as it is, so both forms compute the windows too.

program() is the jitted value_and_grad of one (cell, form, head, truncation); a parameter the model
lacks (a bias, gamma_log) is passed as zeros and its gradient dropped, so every set of options
shares it. value_and_grad(model, x, y, form=...) wraps it for a benchmark, in the model's dtype;
gradients() is the float64 cross-check. 64-bit runs inside `jax.enable_x64(True)` only.
"""
from __future__ import annotations

import functools

import numpy as np

from ..cells import sizes
from ._common import problem

CELLS = ("lru", "mingru", "minlstm", "linear")
FORMS = ("scan", "associative")


# --- each cell's (a_t, b_t): the input's part only; `project(M)` is M x_t for every step (T, N, rows) ---
def _linear(jax, jnp, P, project, h0):
    Bx = project(P["B"])  # (T, N, H)
    return jnp.broadcast_to(P["lam"], Bx.shape), Bx, h0, lambda h: h @ P["V"].T + P["c"]


def _lru(jax, jnp, P, project, h0):
    lam = jnp.exp(-jnp.exp(P["nu_log"]) + 1j * jnp.exp(P["theta_log"]))  # (H,) complex, |lam| < 1
    B = (P["B_re"] + 1j * P["B_im"]) * jnp.exp(P["gamma_log"])[:, None]  # (H, D) normalised
    Bu = project(B)  # (T, N, H) complex
    H = lam.shape[0]
    C = P["V"][:, :H] - 1j * P["V"][:, H:]  # (O, H): Re(C h) = V [Re h, Im h]
    return jnp.broadcast_to(lam, Bu.shape), Bu, h0[..., :H] + 1j * h0[..., H:], lambda h: (h @ C.T).real + P["c"]


def _mingru(jax, jnp, P, project, h0):
    H = h0.shape[-1]
    g = project(P["U"]) + P["b"]  # (T, N, 2H): [z; h~]
    z, cand = jax.nn.sigmoid(g[..., :H]), g[..., H:]
    return 1 - z, z * cand, h0, lambda h: h @ P["V"].T + P["c"]


def _minlstm(jax, jnp, P, project, h0):
    H = h0.shape[-1]
    g = project(P["U"]) + P["b"]  # (T, N, 3H): [f; i; h~]
    f, i, cand = jax.nn.sigmoid(g[..., :H]), jax.nn.sigmoid(g[..., H:2 * H]), g[..., 2 * H:]
    return f / (f + i), i / (f + i) * cand, h0, lambda h: h @ P["V"].T + P["c"]


_MAKERS = {"linear": _linear, "lru": _lru, "mingru": _mingru, "minlstm": _minlstm}


def _combine(e1, e2):
    """(a1, b1) then (a2, b2): h -> a2 (a1 h + b1) + b2."""
    a1, b1 = e1
    a2, b2 = e2
    return a1 * a2, a2 * b1 + b2


def _recur(jax, form, a, b, h0):
    """Every state h_0..h_{T-1} (T, ..., H) of h_t = a_t h_{t-1} + b_t from h0 (..., H)."""
    if form == "scan":
        def step(h, ab):
            h = ab[0] * h + ab[1]
            return h, h
        return jax.lax.scan(step, h0, (a, b))[1]
    b = b.at[0].add(a[0] * h0)
    return jax.lax.associative_scan(_combine, (a, b))[1]


def _loss(jax, jnp, head, Q, data):
    """sum over t and n of E_t(n) times scale: Q (..., T, N, O), targets in data (time-major)."""
    if head == "mse":
        return jnp.sum(jnp.sum((Q - data["y"]) ** 2, axis=-1) * data["mask"]) * data["scale"]
    logp = jax.nn.log_softmax(Q, axis=-1)
    return -jnp.sum(jnp.take_along_axis(logp, data["y"][..., None], axis=-1)[..., 0] * data["mask"]) * data["scale"]


@functools.lru_cache(maxsize=None)
def program(cell, form="associative", head="softmax", truncated=False):
    """The jitted value_and_grad (P, h0, data) -> ((E differentiated, E), (dP, dh0)).

    P: the cell's parameters by bptt's names (zeros for an optional one the model lacks), V and c;
    h0 (N, S) real (S = 2H for the LRU: [Re h0, Im h0]). data: "ids" (T, N) int or "X" (T, N, D);
    "y" (T, N) ids (0 where unscored) or (T, N, O) values; "mask" (T, N); "scale" (); for a
    truncated program "K" (), 0 <= K < T (an array: every K shares the program).
    """
    if cell not in _MAKERS:
        raise ValueError(f"the JAX scans know the cells {', '.join(CELLS)}, got {cell!r}")
    if form not in FORMS:
        raise ValueError(f"form must be one of {', '.join(FORMS)}, got {form!r}")
    import jax
    import jax.numpy as jnp

    make = _MAKERS[cell]

    def energy(P, h0, data):
        ids = data.get("ids")
        project = (lambda M: M.T[ids]) if ids is not None else (lambda M: data["X"] @ M.T)  # noqa: E731
        a, b, h_init, readout = make(jax, jnp, P, project, h0)
        states = _recur(jax, form, a, b, h_init)  # (T, N, H)
        E = _loss(jax, jnp, head, readout(states), data)
        if not truncated:
            return E, E
        T = a.shape[0]
        t = jnp.arange(T)
        start = t - data["K"]  # window t: steps t-K..t (those >= 0)
        before = jnp.concatenate([h_init[None], states[:-1]])  # (T, N, H): the state before step j
        init = jnp.where((start <= -1)[:, None, None], h_init[None],
                         jax.lax.stop_gradient(before[jnp.clip(start, 0, T - 1)]))  # (T, N, H), window t's
        k = t[None, :] - (T - 1) + t[:, None]  # (T, T): step k of window t at position j, the last k = t
        inside = ((k >= start[None, :]) & (k >= 0))[..., None, None]
        kc = jnp.clip(k, 0, T - 1)
        aw = jnp.where(inside, a[kc], 1)  # (T, T, N, H): the pair (1, 0) before the window
        bw = jnp.where(inside, b[kc], 0)
        last = _recur(jax, form, aw, bw, init)[-1]  # (T, N, H): output t's state from its own window
        return _loss(jax, jnp, head, readout(last), data), E

    return jax.jit(jax.value_and_grad(energy, argnums=(0, 1), has_aux=True))


def arrays(model, x, y, *, truncate=None, h0=None, reduction="sum"):
    """(P, h0, data, problem) for program(), checked as bptt.gradients checks them, in the model's
    dtype (float32 stays float32); ids stay ids (program gathers the weights' columns)."""
    p = problem(model, x, y, truncate=truncate, h0=h0, reduction=reduction)
    if p.cell not in _MAKERS:
        raise ValueError(f"the JAX scans know the cells {', '.join(CELLS)}, got a {p.cell} model")
    dt = model.dtype
    H, D, O = model.H, model.D, model.O
    P = {name: np.zeros(sizes(par.shape, D, H), dt) for name, par in model.cell.params.items() if par.optional}
    P["c"] = np.zeros(O, dt)
    P.update({k: np.asarray(v, dt) for k, v in model.params.items()})
    data = {"mask": p.mask.T.astype(dt), "scale": np.asarray(p.scale, dt)}
    data["y"] = np.swapaxes(p.y_values, 0, 1).astype(dt) if p.head == "mse" else np.maximum(p.y_ids.T, 0)
    if p.ids is not None:
        data["ids"] = np.ascontiguousarray(p.ids.T)  # (T, N)
    else:
        data["X"] = np.swapaxes(p.X, 0, 1).astype(dt)  # (T, N, D)
    if p.K is not None and p.K < p.T:  # K >= T: every window reaches the initial state, full BPTT
        data["K"] = np.int64(p.K)
    return P, p.h0.astype(dt), data, p


def value_and_grad(model, x, y, *, form="associative", truncate=None, h0=None, reduction="sum"):
    """run() -> (loss, {params by the model's names}, dE/dh0 (N, S)) by the jitted program, in the
    model's dtype, the arrays put on the device once: what a benchmark times (the first call
    compiles)."""
    return _runner(model, x, y, form, truncate=truncate, h0=h0, reduction=reduction)[0]


def _runner(model, x, y, form, **kw):
    import jax

    with jax.enable_x64(True):
        P, h, data, p = arrays(model, x, y, **kw)
        P, h, data = jax.device_put((P, h, data))
    fn = program(p.cell, form, p.head, "K" in data)
    names = list(p.params)

    def run():
        with jax.enable_x64(True):
            (_, E), (gP, gh) = jax.block_until_ready(fn(P, h, data))
        return float(E), {k: np.asarray(gP[k]) for k in names}, np.asarray(gh)
    return run, p


def gradients(model, x, y, *, form="associative", truncate=None, h0=None, reduction="sum"):
    """(loss, {params by the model's names, "h0"}) by jax.value_and_grad in float64, in either form.

    Same arguments and meaning as bptt.gradients; dE/dh0 is (S,) or (N, S) for a batch.
    """
    if form not in FORMS:
        raise ValueError(f"form must be one of {', '.join(FORMS)}, got {form!r}")
    run, p = _runner(model.astype(np.float64), x, y, form, truncate=truncate, h0=h0, reduction=reduction)
    E, g, gh = run()
    grads = {k: np.asarray(v, dtype=np.float64) for k, v in g.items()}
    grads.update(p.state_grads([gh]))
    return E, grads
