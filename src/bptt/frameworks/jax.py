"""The same RNN, LSTM or GRU in JAX (64-bit enabled for these calls only), differentiated by jax.grad.
(The linear recurrences, LRU, minGRU, minLSTM and the linear diagonal cell, are in jax_modern, in
a lax.scan and a lax.associative_scan form; gradients() sends them there.)

The loss is a pure function of (params, initial state); jax.value_and_grad differentiates it.
Truncation (truncate=K, the notebook's rule) is built with lax.stop_gradient: output t's chain is
recomputed from stop_gradient(the state before step t-K); outputs with t - K <= -1 start from the
initial state itself, which is where dE/dh0 (and dE/dc0) come from. Token ids become one-hot rows,
so U x_t is a product here.

The Elman cell runs eagerly, op by op, one Python step at a time: for the small models a
cross-check uses, compiling a jitted program for every new shape costs more than it saves. The
gated cells (LSTM; GRU in both forms) are written as JAX users write them: a step function,
lax.scan over time, the whole value_and_grad jitted (one compiled program per shape, a bias the
model lacks passed as zeros and its gradient dropped, so every set of biases shares it). Their
truncation runs every output's window at once: one lax.scan over T windows side by side, window
t stepping through t-K..t from its restart state and leaving its state as it is at the other
steps (K is an argument of the program, not a constant in it, so every K shares one program).

64-bit: every call runs inside `jax.enable_x64(True)`, so the caller's JAX configuration is left
as it was.

Weight layout: the arrays are used as bptt names them (a_t = U x_t + b, gates from a_t + W h_{t-1}
+ bh, q_t = V h_t + c; PyTorch's gate order); a JAX model in the usual row-vector convention
x @ Wxh has Wxh = U.T.
"""
from __future__ import annotations

import functools

import numpy as np

from ..model import RNN
from . import jax_modern
from ._common import check_terms_args, problem, windows


CELLS = ("rnn", "lstm", "gru") + jax_modern.CELLS  # the cells this framework computes (both GRU forms)

def _act(jnp, name, bm=None):
    """f(z) for the Elman cell's activation; modrelu: sign(z) relu(|z| + bm) (bm None: 0)."""
    import jax

    if name == "modrelu":
        return lambda z: jnp.sign(z) * jax.nn.relu(jnp.abs(z) + (0 if bm is None else bm))
    return {"tanh": jnp.tanh, "relu": jax.nn.relu, "sigmoid": jax.nn.sigmoid, "identity": lambda z: z}[name]


def _step_loss(jax, jnp, p, q, t, scale):
    """E_t summed over the batch, times scale: q (N, O) at step t (targets and mask from p)."""
    m = p.mask[:, t]  # (N,)
    if p.head == "mse":
        return jnp.sum(jnp.sum((q - p.y_values[:, t]) ** 2, axis=-1) * m) * scale
    logp = jax.nn.log_softmax(q, axis=-1)  # (N, O)
    picked = jnp.take_along_axis(logp, np.maximum(p.y_ids[:, t], 0)[:, None], axis=-1)[:, 0]
    return -jnp.sum(picked * m) * scale


def _energy(p):
    """E(P, h0) -> (the sum that is differentiated, the loss E), a pure function for jax.grad.

    The data are NumPy constants sliced per step on the host, so every traced operation has a
    shape of (N, ...) whatever T is: eager JAX compiles each operation once per (N, D, H, O).
    """
    import jax
    import jax.numpy as jnp

    X = p.dense()  # (N, T, D); ids become one-hot rows

    def energy(P, h0):
        def step(s, k):  # s_{k-1} (N, H) -> s_k
            z = X[:, k] @ P["U"].T + s @ P["W"].T + (P["bh"] if "bh" in P else 0)
            return _act(jnp, p.activation, P.get("bm"))(z + P["b"] if "b" in P else z)

        def out(s):  # q (N, O)
            q = s @ P["V"].T
            return q + P["c"] if "c" in P else q

        s, states = h0, [h0]  # states[j] = s_{j-1}
        for k in range(p.T):
            s = step(s, k)
            states.append(s)
        E = sum(_step_loss(jax, jnp, p, out(states[t + 1]), t, p.scale) for t in range(p.T))
        if p.K is None:
            return E, E
        total = 0.0
        for w in windows(p.T, p.K):
            s = h0 if w.from_h0 else jax.lax.stop_gradient(states[w.start])
            for k in range(w.start, w.t + 1):
                s = step(s, k)
            total = total + _step_loss(jax, jnp, p, out(s), w.t, p.scale)
        return total, E  # differentiate the truncated sum; report the loss of the forward pass

    return energy


# --- the gated cells: lax.scan, jitted ------------------------------------------------------------
def _gated_step(jax, jnp, cell, reset_after):
    """step(P, a, state) -> state for "lstm" or "gru": a (..., N, G) = U x_t + b, state a tuple of
    (..., N, H) arrays ((h, c) or (h,)); PyTorch's equations and gate order (bptt.cells). P holds
    every bias (zeros for one the model lacks)."""
    sigmoid = jax.nn.sigmoid

    def lstm(P, a, state):
        h, c = state
        i, f, g, o = jnp.split(a + h @ P["W"].T + P["bh"], 4, axis=-1)  # (..., N, H) each
        c = sigmoid(f) * c + sigmoid(i) * jnp.tanh(g)
        return sigmoid(o) * jnp.tanh(c), c

    def gru(P, a, state):
        (h,) = state
        W, bh = P["W"], P["bh"]
        H = W.shape[1]
        a_r, a_z, a_n = jnp.split(a, 3, axis=-1)
        r = sigmoid(a_r + h @ W[:H].T + bh[:H])
        z = sigmoid(a_z + h @ W[H:2 * H].T + bh[H:2 * H])
        if reset_after:  # PyTorch: the reset gate scales W_n h + bh_n
            n = jnp.tanh(a_n + r * (h @ W[2 * H:].T + bh[2 * H:]))
        else:  # Keras's reset_after=False: the reset gate scales h before W_n
            n = jnp.tanh(a_n + (r * h) @ W[2 * H:].T + bh[2 * H:])
        return ((1 - z) * n + z * h,)

    return lstm if cell == "lstm" else gru


def _gated_loss(jax, jnp, head, Q, data):
    """sum over t and n of E_t(n) times scale: Q (..., N, O) with its targets in data (time-major)."""
    if head == "mse":
        return jnp.sum(jnp.sum((Q - data["y"]) ** 2, axis=-1) * data["mask"]) * data["scale"]
    logp = jax.nn.log_softmax(Q, axis=-1)
    picked = jnp.take_along_axis(logp, data["y"][..., None], axis=-1)[..., 0]
    return -jnp.sum(picked * data["mask"]) * data["scale"]


@functools.lru_cache(maxsize=None)
def _gated_program(cell, reset_after, head, truncated):
    """The jitted value_and_grad of the gated loss: (P, state0, data) -> ((target, E), (dP, dstate0)).

    P: U, W, V and every bias b, bh, c (zeros for those the model lacks); state0: (h0,) or (h0, c0).

    data: X (T, N, D), y (T, N) ids or (T, N, O) values, mask (T, N), scale (), and for a
    truncated program K (), the window, 0 <= K < T (an array, so every K shares one program).
    """
    import jax
    import jax.numpy as jnp

    step = _gated_step(jax, jnp, cell, reset_after)

    def energy(P, state0, data):
        A = data["X"] @ P["U"].T + P["b"]  # (T, N, G): the input's part of every step

        def forward(state, a):
            state = step(P, a, state)
            return state, state

        _, states = jax.lax.scan(forward, state0, A)  # a tuple of (T, N, H): the states after each step
        out = lambda h: h @ P["V"].T + P["c"]  # noqa: E731  (..., N, H) -> (..., N, O)
        E = _gated_loss(jax, jnp, head, out(states[0]), data)
        if not truncated:
            return E, E
        T = A.shape[0]
        t = jnp.arange(T)
        start = t - data["K"]  # window t covers steps t-K..t (those >= 0)
        before = tuple(jnp.concatenate([s0[None], s[:-1]]) for s0, s in zip(state0, states))  # before step j
        init = tuple(jnp.where((start <= -1)[:, None, None], s0[None],  # t - K <= -1: the initial state
                               jax.lax.stop_gradient(s[jnp.clip(start, 0, T - 1)]))  # else a stopped state
                     for s0, s in zip(state0, before))  # (T, N, H) each: window t's first state

        def window_step(state, j):  # step k = t-(T-1)+j of every window t at once, kept where k >= t-K, 0
            k = t - (T - 1) + j  # (T,)
            new = step(P, A[jnp.maximum(k, 0)], state)
            keep = ((k >= start) & (k >= 0))[:, None, None]
            return tuple(jnp.where(keep, n, s) for n, s in zip(new, state)), None

        last, _ = jax.lax.scan(window_step, init, jnp.arange(T))
        return _gated_loss(jax, jnp, head, out(last[0]), data), E  # output t from its own window

    return jax.jit(jax.value_and_grad(energy, argnums=(0, 1), has_aux=True))


def _gated_gradients(jax, p):
    truncated = p.K is not None and p.K < p.T  # K >= T: every window reaches the initial state
    y = np.swapaxes(p.y_values, 0, 1) if p.head == "mse" else np.maximum(p.y_ids.T, 0)
    data = {"X": np.swapaxes(p.dense(), 0, 1), "y": y, "mask": p.mask.T, "scale": np.float64(p.scale)}
    if truncated:
        data["K"] = np.int64(p.K)
    G, O = p.params["W"].shape[0], p.params["V"].shape[0]
    zeros = {"b": np.zeros(G), "bh": np.zeros(G), "c": np.zeros(O)}  # a bias the model lacks: one program for all
    program = _gated_program(p.cell, p.reset_after, p.head, truncated)
    (_, E), (gP, gs) = program({**zeros, **p.params}, p.state0, data)
    grads = {k: np.asarray(gP[k], dtype=np.float64) for k in p.params}  # the model's names only
    grads.update(p.state_grads(gs))
    return float(E), grads


def gradients(model, x, y, *, truncate=None, h0=None, reduction="sum", form=None):
    """(loss, {params by the model's names, "h0"[, "c0"]}) computed by jax.grad in float64.

    model: bptt.RNN, LSTM, GRU, or one of the linear recurrences LRU, MinGRU, MinLSTM, Linear. Same
    arguments and meaning as bptt.gradients (for an LSTM h0 may be the pair (h0, c0)); dE/dh0 and
    dE/dc0 are (H,) or (N, H) for a batch ((2H,) / (N, 2H) for an LRU). form: for the linear
    recurrences "associative" (lax.associative_scan, the default) or "scan" (lax.scan), see
    bptt.frameworks.jax_modern; the other cells have one form (None).
    """
    import jax

    p = problem(model, x, y, truncate=truncate, h0=h0, reduction=reduction)
    if p.cell in jax_modern.CELLS:
        return jax_modern.gradients(model, x, y, form=form or "associative", truncate=truncate, h0=h0,
                                    reduction=reduction)
    if form is not None:
        raise ValueError(f"form chooses the scan of the cells {', '.join(jax_modern.CELLS)}; the {p.cell} "
                         f"cell has one form, got form={form!r}")
    with jax.enable_x64(True):
        if p.cell != "rnn":
            return _gated_gradients(jax, p)
        fn = jax.value_and_grad(_energy(p), argnums=(0, 1), has_aux=True)
        (_, E), (gP, gh0) = fn(p.params, p.h0)
        grads = {k: np.asarray(v, dtype=np.float64) for k, v in gP.items()}
        grads.update(p.state_grads([gh0]))
        return float(E), grads


def terms(model: RNN, x, y, name, t, *, h0=None):
    """Step k's term of dE_t/d(name) for name in W, U, b: (T, *shape), zero for k > t (Elman only).

    The parameter is untied into T copies (a list argument), copy k used at step k only; jax.grad
    with respect to the list gives every step's term at once. E_t is summed over the batch.
    """
    import jax
    import jax.numpy as jnp

    p = problem(model, x, y, h0=h0)
    t = check_terms_args(p, name, t)
    X = p.dense()  # (N, T, D)

    def energy(copies):
        s = p.h0
        for k in range(t + 1):
            P = dict(p.params, **{name: copies[k]})
            z = X[:, k] @ P["U"].T + s @ P["W"].T + (P["bh"] if "bh" in P else 0)
            s = _act(jnp, p.activation, P.get("bm"))(z + P["b"] if "b" in P else z)
        q = s @ p.params["V"].T
        q = q + p.params["c"] if "c" in p.params else q
        return _step_loss(jax, jnp, p, q, t, 1.0)

    with jax.enable_x64(True):
        copies = [jnp.asarray(p.params[name]) for _ in range(p.T)]
        return np.stack([np.asarray(g, dtype=np.float64) for g in jax.grad(energy)(copies)])
