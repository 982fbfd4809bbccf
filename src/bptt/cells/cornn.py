"""The coupled oscillatory RNN (Rusch & Mishra 2021, "Coupled oscillatory recurrent neural network
(coRNN): an accurate and (gradient) stable architecture for learning long time dependencies"): a
network of damped, driven nonlinear oscillators y'' = tanh(W y + Wz y' + U u + b) - gamma y - eps y',
stepped with time step dt by the paper's IMEX scheme (its equation 3):

    z_n = z_{n-1} + dt * (tanh(W y_{n-1} + Wz z_{n-1} + U u_n + b) - gamma * y_{n-1}) - dt * eps * z_n
    y_n = y_{n-1} + dt * z_n

The damping -dt eps z_n is implicit (solved: z_n = (z_{n-1} + dt (tanh(.) - gamma y_{n-1})) / (1 +
dt eps)); the rest explicit. implicit=False takes the damping at z_{n-1} instead, as the authors'
code (tk-rusch/coRNN) steps it: z_n = z_{n-1} + dt (tanh(.) - gamma y_{n-1} - eps z_{n-1}).
Both are written z_n = a z_{n-1} + k dt (tanh(.) - gamma y_{n-1}), a = k = 1 / (1 + dt eps) for the
paper's form, a = 1 - dt eps and k = 1 for the code's.

Parameters in the paper's names: U (H, D) is V (the input weights, role "input"), b (H,) its bias
(optional, "input bias"), W (H, H) the weights on y (role "recurrent": dW = sum_n d_r_n y_{n-1}^T)
and Wz (H, H) its calligraphic W, the weights on z (no role: param_grads gives d_r_n z_{n-1}^T per
step and sequence, (..., N, H, H)). The sum inside tanh is the paper's single layer; the authors'
code also has a variant with W y and Wz z as separate bias-free linear layers, which is the same
function (its biases sum to b).

Settings: dt > 0, gamma >= 0, eps >= 0 (finite numbers). Defaults: the authors' sMNIST run, dt =
0.042, gamma = 2.7, eps = 4.7; their adding problem runs dt = 0.06, gamma = 66, eps = 15 (the
default arguments of their sMNIST_task.py and adding_task.py).

state (y, z): y is the hidden output the head reads (q_n = V y_n + c), z = y' its velocity; h0 is
the pair (y0, z0), and a model's gradients name dE/dz0 c0, the state's second entry. cache (s,),
s = tanh of the step's pre-activation; G = H.
"""
from __future__ import annotations

import numpy as np

from .base import Cell, Param
from .registry import register
from ..validate import show


def _number(name, v, low, strict):
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not np.isfinite(v) \
            or v < low or (strict and v == low):
        raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} {low}, got {show(v)}")
    return float(v)


class CoRNN(Cell):
    """Coupled oscillatory RNN: state (y, z); cache (s,) = tanh of the pre-activation; G = H; Wz its own."""

    name = "cornn"
    label = "coRNN"
    model = "CoRNN"
    params = {"U": Param(("H", "D"), role="input"), "W": Param(("H", "H"), role="recurrent"),
              "Wz": Param(("H", "H")), "b": Param(("H",), optional=True, role="input bias")}
    settings = {"dt": 0.042, "gamma": 2.7, "eps": 4.7, "implicit": True}
    state = ("y", "z")

    def __init__(self, **settings):
        super().__init__(**settings)
        v = self.values
        v["dt"] = _number("dt", v["dt"], 0, True)
        v["gamma"] = _number("gamma", v["gamma"], 0, False)
        v["eps"] = _number("eps", v["eps"], 0, False)
        if not isinstance(v["implicit"], (bool, np.bool_)):
            raise ValueError(f"implicit must be True or False, got {show(v['implicit'])}")
        v["implicit"] = bool(v["implicit"])

    def coefficients(self) -> tuple:
        """(a, k) of z_n = a z_{n-1} + k dt (tanh(.) - gamma y_{n-1}) (the module's notes)."""
        if self.implicit:
            a = 1.0 / (1.0 + self.dt * self.eps)
            return a, a
        return 1.0 - self.dt * self.eps, 1.0

    def init(self, rng, D, H, O, *, bias=True, std=None):
        """The authors' initialisation, PyTorch's nn.Linear on the concatenation [u, z, y]: U, W, Wz
        and b uniform on +-1/sqrt(D + 2H); the head uniform on +-1/sqrt(H) (nn.Linear(H, O)). Or
        every weight Gaussian with std; bias=False leaves b and c out."""
        if std is not None and (isinstance(std, bool) or not isinstance(std, (int, float, np.integer, np.floating))
                                or not np.isfinite(std) or std < 0):
            raise ValueError(f"std must be a finite number >= 0, got {show(std)}")
        k, kh = 1 / np.sqrt(D + 2 * H), 1 / np.sqrt(H)
        draw = (lambda shape, _: rng.normal(0.0, std, shape)) if std is not None else \
            (lambda shape, r: rng.uniform(-r, r, shape))
        params = {"U": draw((H, D), k), "W": draw((H, H), k), "Wz": draw((H, H), k), "V": draw((O, H), kh)}
        if bias:
            params["b"], params["c"] = draw((H,), k), draw((O,), kh)
        return params

    def bounds(self, m) -> tuple:
        """(c, rate, growth) of the paper's form (implicit damping) with gamma > 0 and gamma dt < 2 eps:
        c = 2 eps - gamma dt, and with the energy e(X) = gamma |y|^2 + |z|^2 (Euclidean norms):
            e(X_n) <= e(X_{n-1}) + dt |tanh(.)_n|^2 / c <= e(X_{n-1}) + rate,   rate = H dt / c
        (the hidden states' bound, Rusch & Mishra's Proposition 3.1 in this form), and every step's
        Jacobian J_n = d X_n / d X_{n-1} has norm at most growth = sqrt(1 + dt L^2 / c) in the energy
        norm sqrt(e), L^2 = ||W||_2^2 / gamma + ||Wz||_2^2; so an error (g_y, g_z) at X_n reaches X_k
        with sqrt(|g_y|^2 / gamma + |g_z|^2) multiplied by at most growth^(n-k) (the dual norm).
        Derivation: docs/engine.md, "The coRNN". A ValueError where the assumptions fail."""
        if not self.implicit or not self.gamma > 0 or not self.gamma * self.dt < 2 * self.eps:
            raise ValueError(f"the coRNN's bounds need implicit damping, gamma > 0 and gamma dt < 2 eps, got "
                             f"implicit={self.implicit}, gamma={self.gamma:g}, dt={self.dt:g}, eps={self.eps:g}")
        c = 2 * self.eps - self.gamma * self.dt
        W, Wz = (np.asarray(a, dtype=np.float64) for a in (m.W, m.Wz))
        L2 = np.linalg.norm(W, 2) ** 2 / self.gamma + np.linalg.norm(Wz, 2) ** 2
        return c, W.shape[0] * self.dt / c, float(np.sqrt(1 + self.dt * L2 / c))

    def path_lines(self, t) -> list:
        a, k = self.coefficients()
        return ["Each step k sends the error at its state (y_k, z_k) back; with g = dE/dz_k + dt dE/dy_k "
                "(z_k also moves y_k) and e = g k dt (1 - s_k^2) the error of the pre-activation,",
                f"  dE/dy_(k-1) = dE/dy_k - g k dt gamma + e . W       (k dt gamma = {k * self.dt * self.gamma:.4g})",
                f"  dE/dz_(k-1) = g a + e . Wz                         (a = {a:.4g})",
                "so the error keeps its size along y (the factor 1) and is damped by a along z, while W and Wz "
                "enter times dt: the oscillators carry it far back without exploding."]

    def step(self, m, a, state):
        y_prev, z_prev = state
        decay, k = self.coefficients()
        s = np.tanh(a + y_prev @ m.W.T + z_prev @ m.Wz.T)  # (N, H)
        z = decay * z_prev + (k * self.dt) * (s - self.gamma * y_prev)
        return (y_prev + self.dt * z, z), (s,)

    def step_back(self, m, prev, state, cache, d):
        """g = dE/dz_n in all (dE/dz_n + dt dE/dy_n); d_pre = g k dt (1 - s^2), the error of the
        pre-activation (d_a = d_r); the error goes on to y_{n-1} and z_{n-1} directly and through W, Wz."""
        (dy, dz), (s,) = d, cache
        decay, k = self.coefficients()
        g = dz + self.dt * dy
        d_pre = g * (k * self.dt) * (1 - s * s)  # (..., N, H)
        return d_pre, d_pre, (dy - (k * self.dt * self.gamma) * g + d_pre @ m.W, decay * g + d_pre @ m.Wz)

    def param_grads(self, m, prev, state, cache, d_a, d_r) -> dict:
        return {"Wz": d_r[..., :, None] * prev[1][..., None, :]}  # (..., N, H, H): d_r_n z_{n-1}^T


register(CoRNN)
