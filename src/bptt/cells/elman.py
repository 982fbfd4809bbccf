"""The notebook's cell, the Elman RNN:  z_t = U x_t + W s_{t-1} + b,  s_t = f(z_t).

An optional second bias bh (PyTorch's bias_hh) adds to z_t as b does; only b + bh matters, but a
network read from PyTorch keeps the two apart so that each gets the gradient PyTorch gives it.

state (s,): s (N, H);  cache (z_t,): (N, H);  G = H. f is the `activation` setting: tanh, relu,
sigmoid, identity, or modrelu: s_t = sign(z_t) relu(|z_t| + bm) (Arjovsky et al. 2016), whose
bias bm (H,) is the cell's own parameter (role None), read by modrelu alone (a model with bm and
another activation is refused; a modrelu model without bm has bm = 0). Its derivatives, the
kinks' included, are bptt.activations' notes: dE/dz_t = dE/ds_t [s_t != 0], dE/dbm = sum over
steps and sequences of dE/ds_t sign(s_t).
"""
from __future__ import annotations

import numpy as np

from .. import activations
from ..activations import modrelu
from ..param import expm, henaff
from ..inits import INITS, identity, normal, orthogonal, uniform, with_spectral_radius
from .base import Cell, Param
from .registry import register
from ..validate import show


class Elman(Cell):
    """The notebook's cell:  z_t = U x_t + W s_{t-1} + b,  s_t = f(z_t).

    U (H, D), W (H, H), b (H,), bh (H,) and bm (H,) (modrelu's bias) optional; state (s,);
    cache (z_t,).
    """

    name = "rnn"
    aliases = {"elman": {}}
    label = "Elman"
    model = "RNN"
    params = {"U": Param(("H", "D"), role="input"), "W": Param(("H", "H"), role="recurrent"),
              "b": Param(("H",), optional=True, role="input bias"),
              "bh": Param(("H",), optional=True, role="recurrent bias"),
              "bm": Param(("H",), optional=True)}
    settings = {"activation": "tanh"}
    state = ("s",)
    pascanu = True
    torch, torch_allows = "RNN", {"activation": ("tanh", "relu")}
    keras = "SimpleRNN"

    def __init__(self, **settings):
        super().__init__(**settings)
        self.f = activations.get(self.activation)  # checks the name

    def uses(self, name):
        return name != "bm" or self.activation == "modrelu"

    def check_params(self, arrays):
        if "bm" in arrays and self.activation != "modrelu":
            raise ValueError(f"bm is the bias of activation 'modrelu'; this model's activation is "
                             f"{self.activation!r}: leave bm out, or give activation='modrelu'")

    def init(self, rng, D, H, O, *, init="uniform", std=None, radius=None, bias=False):
        """U and V Gaussian with std when given, else uniform on +-1/sqrt(fan-in); W by `init`:
        "uniform" (+-1/sqrt(H)), "normal" (std), "orthogonal", "identity" (IRNN) or "henaff" (W = expm(A),
        A Henaff's 2x2 blocks: rotations by angles uniform on [-pi, pi]; bptt.param); radius rescales
        W to that spectral radius. bias=True adds b and c, zero. With activation "modrelu", bm
        uniform on +-0.01 (expRNN's initialisation of modReLU's bias), drawn last."""
        if init not in INITS:
            raise ValueError(f"unknown init {show(init)}: expected one of {', '.join(INITS)}")
        if init == "normal" and std is None:
            raise ValueError("init='normal' needs std, the standard deviation of the weights")
        for what, v in (("std", std), ("radius", radius)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating))
                                  or not np.isfinite(v) or v < 0):
                raise ValueError(f"{what} must be a finite number >= 0, got {show(v)}")
        side = (lambda shape: normal(shape, std, seed=rng)) if std is not None else \
            (lambda shape: uniform(shape, seed=rng))
        U, V = side((H, D)), side((O, H))
        W = {"uniform": lambda: uniform((H, H), seed=rng), "normal": lambda: normal((H, H), std, seed=rng),
             "orthogonal": lambda: orthogonal(H, seed=rng), "identity": lambda: identity(H),
             "henaff": lambda: expm(henaff(H, seed=rng))}[init]()
        if radius is not None:
            W = with_spectral_radius(W, radius)
        params = {"U": U, "W": W, "V": V}
        if bias:
            params.update(b=np.zeros(H), c=np.zeros(O))
        if self.activation == "modrelu":
            params["bm"] = rng.uniform(-0.01, 0.01, H)
        return params

    def step(self, m, a, state):
        """z_t = a_t + W s_{t-1} + bh (a_t = U x_t + b),  s_t = f(z_t)."""
        (s_prev,) = state
        z = a + s_prev @ m.W.T          # (N, H)
        if m.bh is not None:
            z = z + m.bh
        if self.activation == "modrelu":
            return (modrelu(z, 0.0 if m.bm is None else m.bm),), (z,)
        return (self.f.f(z),), (z,)

    def step_back(self, m, prev, state, cache, d):
        """delta_t = dE/ds_t * f'(z_t);  dE/ds_{t-1} = W^T delta_t (row vectors: delta_t W)."""
        (s,), (ds,) = state, d
        delta = ds * self.f.df_from_output(s)  # (..., N, H): dE/dz_t
        return delta, delta, (delta @ m.W,)

    def param_grads(self, m, prev, state, cache, d_a, d_r) -> dict:
        """modrelu's bias: dE/dbm per step and sequence = dE/ds_t sign(s_t) = delta_t sign(s_t)."""
        return {} if m.bm is None else {"bm": d_r * np.sign(state[0])}

    def jacobian(self, m, prev, state, cache):
        """ds_t/ds_{t-1} = diag(f'(z_t)) W: (N, H, H)."""
        (s,) = state
        return self.f.df_from_output(s)[..., :, None] * m.W

    def jacobian_back(self, m, prev, state, cache, G):
        """G = dL/dA_t (N, H, H) for A_t = diag(f'(z_t)) W: dL/dz_t = f''(z_t) * sum_j G_ij W_ij (N, H),
        the error of a_t and of the recurrent part alike; dL/ds_{t-1} = dL/dz_t W; W's own part
        sum_n diag(f'(z_t)) G (H, H). f' and f'' from s_t (bptt.activations)."""
        (s,) = state
        dz = np.einsum("nij,ij->ni", G, m.W) * self.f.d2f_from_output(s)  # (N, H)
        return dz, dz, (dz @ m.W,), {"W": np.einsum("ni,nij->ij", self.f.df_from_output(s), G)}


register(Elman)
