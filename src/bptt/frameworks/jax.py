"""The same Elman RNN in JAX (64-bit enabled for these calls only), differentiated by jax.grad.

The loss is a pure function of (params, h0); jax.value_and_grad differentiates it. Truncation
(truncate=K, the notebook's rule) is built with lax.stop_gradient: output t's chain is recomputed
from stop_gradient(s_{t-K-1}); outputs with t - K <= -1 start from h0 itself, which is where
dE/dh0 comes from. Token ids become one-hot rows, so U x_t is a product here.

64-bit: every call runs inside `jax.enable_x64(True)`, so the caller's JAX configuration is left
as it was. Compiled functions are cached per problem structure (shapes, activation, head, K).

Weight layout: the arrays are used as bptt names them (z_t = U x_t + W s_{t-1} + b,
q_t = V s_t + c); a JAX model in the usual row-vector convention x @ Wxh has Wxh = U.T.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..model import RNN
from ._common import check_terms_args, problem, windows


def _act(jnp, name):
    import jax

    return {"tanh": jnp.tanh, "relu": jax.nn.relu, "sigmoid": jax.nn.sigmoid, "identity": lambda z: z}[name]


def _step_loss(jax, jnp, head, q, y, m, scale):
    """E_t summed over the batch: q (N, O); y ids (N,) or values (N, O); m (N,) mask."""
    if head == "mse":
        return jnp.sum(jnp.sum((q - y) ** 2, axis=-1) * m) * scale
    logp = jax.nn.log_softmax(q, axis=-1)
    picked = jnp.take_along_axis(logp, jnp.maximum(y, 0)[:, None], axis=-1)[:, 0]
    return -jnp.sum(picked * m) * scale


@lru_cache(maxsize=64)
def _compiled(activation, head, T, K, has_b, has_c):
    """value_and_grad of E(params, h0, X, y, mask, scale), jitted, for one problem structure."""
    import jax
    import jax.numpy as jnp

    f = _act(jnp, activation)

    def energy(P, h0, X, y, mask, scale):
        UX = jnp.einsum("ntd,hd->tnh", X, P["U"])  # (T, N, H)
        if has_b:
            UX = UX + P["b"]

        def out(s):
            q = s @ P["V"].T
            return q + P["c"] if has_c else q

        s, states = h0, [h0]
        for k in range(T):
            s = f(UX[k] + s @ P["W"].T)
            states.append(s)
        E = sum(_step_loss(jax, jnp, head, out(states[t + 1]), y[:, t], mask[:, t], scale) for t in range(T))
        if K is None:
            return E, E
        total = 0.0
        for w in windows(T, K):
            s = h0 if w.from_h0 else jax.lax.stop_gradient(states[w.start])  # states[j] = s_{j-1}
            for k in range(w.start, w.t + 1):
                s = f(UX[k] + s @ P["W"].T)
            total = total + _step_loss(jax, jnp, head, out(s), y[:, w.t], mask[:, w.t], scale)
        return total, E  # differentiate the truncated sum, report the loss of the forward pass

    return jax.jit(jax.value_and_grad(energy, argnums=(0, 1), has_aux=True))


def _targets(p):
    return p.y_values if p.head == "mse" else p.y_ids


def gradients(model: RNN, x, y, *, truncate=None, h0=None, reduction="sum"):
    """(loss, {"U", "W", "V", ["b", "c",] "h0"}) computed by jax.grad in float64.

    Same arguments and meaning as bptt.gradients; dE/dh0 is (H,) or (N, H) for a batch.
    """
    import jax

    p = problem(model, x, y, truncate=truncate, h0=h0, reduction=reduction)
    K = p.K if p.K is None or p.K < p.T else p.T  # every K >= T builds the same windows
    with jax.enable_x64(True):
        fn = _compiled(p.activation, p.head, p.T, K, "b" in p.params, "c" in p.params)
        (_, E), (gP, gh0) = fn(p.params, p.h0, p.dense(), _targets(p), p.mask, p.scale)
        grads = {k: np.asarray(v, dtype=np.float64) for k, v in gP.items()}
        grads["h0"] = p.h0_out(np.asarray(gh0, dtype=np.float64))
        return float(E), grads


def terms(model: RNN, x, y, name, t, *, h0=None):
    """Step k's term of dE_t/d(name) for name in W, U, b: (T, *shape), zero for k > t.

    The parameter is untied into T copies (a stacked (T, *shape) argument), copy k used at step k
    only; jax.grad with respect to the stack gives every step's term at once. E_t is summed over
    the batch.
    """
    import jax
    import jax.numpy as jnp

    p = problem(model, x, y, h0=h0)
    t = check_terms_args(p, name, t)
    f = _act(jnp, p.activation)
    X, yt, m = p.dense(), _targets(p)[:, t], p.mask[:, t]

    def energy(copies):
        s = p.h0
        for k in range(t + 1):
            P = dict(p.params, **{name: copies[k]})
            z = X[:, k] @ P["U"].T + s @ P["W"].T
            s = f(z + P["b"] if "b" in P else z)
        q = s @ p.params["V"].T
        q = q + p.params["c"] if "c" in p.params else q
        return _step_loss(jax, jnp, p.head, q, yt, m, 1.0)

    with jax.enable_x64(True):
        stack = jnp.asarray(np.broadcast_to(p.params[name], (p.T,) + p.params[name].shape))
        return np.asarray(jax.grad(energy)(stack), dtype=np.float64)
