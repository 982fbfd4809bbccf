"""UORO (Tallec & Ollivier, ICLR 2018): an unbiased rank-one estimate of RTRL's influence matrix.

Conventions as in bptt.approx.influence (N batch, S the state's size, P the recurrent parameters).
The initial state is one more parameter block: theta_ext = (theta, state_{-1}), P + S numbers, so
that the estimate covers dE/dh0 (and dE/dc0) too.

For each sequence UORO keeps two vectors, s~ (S,) and theta~ (P + S,), whose product s~ theta~^T
estimates M_t = d state_t / d theta_ext without bias. Start: s~ = nu_0, theta~ = (0, nu_0) with
nu_0 random signs, so E[s~ theta~^T] = (0, identity) = d state_{-1} / d theta_ext. Each step t:

    nu        random signs (S,), fresh
    rho0      sqrt((||theta~|| + eps) / (||J_t s~|| + eps))
    rho1      sqrt((||nu^T I_t|| + eps) / (||nu|| + eps))
    s~       <- rho0 J_t s~ + rho1 nu
    theta~   <- theta~ / rho0 + (nu^T I_t, 0) / rho1
    estimate += (dE_t/dstate_t . s~) theta~

E[nu nu^T] = identity and nu is independent of the past, so E[s~ theta~^T] = J_t M_{t-1} + I_t:
every step keeps the estimate unbiased, whatever rho0, rho1 > 0 (the cross terms have mean zero,
rho1 depends on nu only through a function even in nu). rho0 and rho1 are the paper's
variance-reducing scalings: they balance the norms of the two factors of each rank-one term
(eps = 1e-7, as in the paper's reference implementations). The head's gradients are exact.

Cost per step and sequence: one vector-Jacobian product nu^T I_t and one Jacobian-vector product
J_t s~, O(P) with a JVP; this reference builds J_t from S vector-Jacobian products (O(S G H)).
"""
from __future__ import annotations

import numpy as np

from .. import core
from . import influence
from ..validate import rng, show

EPS = 1e-7


class UORO:
    """The UORO recursion for `samples` independent estimates at once (a leading axis K)."""

    name = "uoro"

    def __init__(self, seed, samples=1, eps=EPS):
        if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 1:
            raise ValueError(f"samples must be a positive integer, got {show(samples)}")
        from ..validate import too_big
        too_big(f"samples = {samples} UORO estimates", int(samples))
        if seed is None:
            raise ValueError("UORO draws random signs: pass seed= (an int or an np.random.Generator)")
        self.rng = rng(seed)
        self.K, self.eps = int(samples), float(eps)

    def signs(self, shape, dtype):
        return (2 * self.rng.integers(0, 2, size=shape) - 1).astype(dtype)

    def start(self, model, lay, N):
        S = influence.state_size(model)
        self.P = lay.P
        nu = self.signs((self.K, N, S), model.dtype)
        theta = np.zeros((self.K, N, lay.P + S), dtype=model.dtype)
        theta[..., lay.P:] = nu
        return nu.copy(), theta  # s~ (K, N, S), theta~ (K, N, P + S)

    def step(self, carry, st):
        s, theta = carry
        Js = np.einsum("nij,knj->kni", st.J, s)  # (K, N, S)
        nu = self.signs(s.shape, s.dtype)
        nuI = st.vjp(nu)  # (K, N, P)
        norm = lambda a: np.linalg.norm(a, axis=-1, keepdims=True)  # noqa: E731
        rho0 = np.sqrt((norm(theta) + self.eps) / (norm(Js) + self.eps))
        rho1 = np.sqrt((norm(nuI) + self.eps) / (norm(nu) + self.eps))
        direct = np.concatenate([nuI, np.zeros_like(s)], axis=-1)
        return rho0 * Js + rho1 * nu, theta / rho0 + direct / rho1

    def read(self, carry, dS):
        """dS (N, S) -> (estimates of dE_t/dtheta (K, P), of dE_t/dstate_{-1} (K, N, S))."""
        s, theta = carry
        full = np.einsum("ns,kns->kn", dS, s)[..., None] * theta  # (K, N, P + S)
        return full[..., :self.P].sum(axis=1), full[..., self.P:]


@core.reports_overflow
def uoro_samples(model, x, y, samples, *, seed, h0=None, reduction="sum"):
    """`samples` independent UORO estimates of the gradient over one sequence (or batch) with fixed
    weights: (loss, Grads) whose every array has a leading axis of length samples (the head's V and
    c, exact, repeated). seed: an int or an np.random.Generator for the random signs."""
    influence.refuse_stack(model, "UORO (its rank-one estimate of one layer's influence)")
    r = influence.run(model, x, y, UORO(seed, samples), h0=h0, reduction=reduction)
    grads = influence.to_grads(r, x=x, h0=h0)  # every array with a leading axis K
    params = {k: v if k in r.lay.names else np.broadcast_to(v, (samples,) + v.shape) for k, v in grads.params.items()}
    return r.loss, core.Grads(params, grads.state0)


def uoro(model, x, y, *, seed, samples=1, h0=None, reduction="sum"):
    """UORO's unbiased estimate of the gradient: (loss, Grads) like bptt.gradients; the mean of
    `samples` independent estimates (1 by default). seed: an int or an np.random.Generator."""
    loss, g = uoro_samples(model, x, y, samples, seed=seed, h0=h0, reduction=reduction)
    return loss, core.Grads({k: v.mean(axis=0) for k, v in g.params.items()},
                            tuple(s.mean(axis=0) for s in g.state0))
