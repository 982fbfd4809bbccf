"""The same Elman RNN in JAX (64-bit enabled for these calls only), differentiated by jax.grad.

The loss is a pure function of (params, h0); jax.value_and_grad differentiates it. Truncation
(truncate=K, the notebook's rule) is built with lax.stop_gradient: output t's chain is recomputed
from stop_gradient(s_{t-K-1}); outputs with t - K <= -1 start from h0 itself, which is where
dE/dh0 comes from. Token ids become one-hot rows, so U x_t is a product here.

64-bit: every call runs inside `jax.enable_x64(True)`, so the caller's JAX configuration is left
as it was. The functions run eagerly (op by op): for the small models a cross-check uses, compiling
a jitted program for every new shape costs seconds, far more than it saves.

Weight layout: the arrays are used as bptt names them (z_t = U x_t + W s_{t-1} + b,
q_t = V s_t + c); a JAX model in the usual row-vector convention x @ Wxh has Wxh = U.T.
"""
from __future__ import annotations

import numpy as np

from ..model import RNN
from ._common import check_terms_args, problem, windows


def _act(jnp, name):
    import jax

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

    f = _act(jnp, p.activation)
    X = p.dense()  # (N, T, D); ids become one-hot rows

    def energy(P, h0):
        def step(s, k):  # s_{k-1} (N, H) -> s_k
            z = X[:, k] @ P["U"].T + s @ P["W"].T
            return f(z + P["b"] if "b" in P else z)

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


def gradients(model: RNN, x, y, *, truncate=None, h0=None, reduction="sum"):
    """(loss, {"U", "W", "V", ["b", "c",] "h0"}) computed by jax.grad in float64.

    Same arguments and meaning as bptt.gradients; dE/dh0 is (H,) or (N, H) for a batch.
    """
    import jax

    p = problem(model, x, y, truncate=truncate, h0=h0, reduction=reduction)
    with jax.enable_x64(True):
        fn = jax.value_and_grad(_energy(p), argnums=(0, 1), has_aux=True)
        (_, E), (gP, gh0) = fn(p.params, p.h0)
        grads = {k: np.asarray(v, dtype=np.float64) for k, v in gP.items()}
        grads["h0"] = p.h0_out(np.asarray(gh0, dtype=np.float64))
        return float(E), grads


def terms(model: RNN, x, y, name, t, *, h0=None):
    """Step k's term of dE_t/d(name) for name in W, U, b: (T, *shape), zero for k > t.

    The parameter is untied into T copies (a list argument), copy k used at step k only; jax.grad
    with respect to the list gives every step's term at once. E_t is summed over the batch.
    """
    import jax
    import jax.numpy as jnp

    p = problem(model, x, y, h0=h0)
    t = check_terms_args(p, name, t)
    f = _act(jnp, p.activation)
    X = p.dense()  # (N, T, D)

    def energy(copies):
        s = p.h0
        for k in range(t + 1):
            P = dict(p.params, **{name: copies[k]})
            z = X[:, k] @ P["U"].T + s @ P["W"].T
            s = f(z + P["b"] if "b" in P else z)
        q = s @ p.params["V"].T
        q = q + p.params["c"] if "c" in p.params else q
        return _step_loss(jax, jnp, p, q, t, 1.0)

    with jax.enable_x64(True):
        copies = [jnp.asarray(p.params[name]) for _ in range(p.T)]
        return np.stack([np.asarray(g, dtype=np.float64) for g in jax.grad(energy)(copies)])
