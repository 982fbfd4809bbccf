"""Long short-term memory, PyTorch's nn.LSTM (gate order i, f, g, o):

    [i, f, g, o] = U x_t + b + W h_{t-1} + bh   (four blocks of H rows: i, f, o through sigma,
                                                 g through tanh)
    c_t = f * c_{t-1} + i * g;  h_t = o * tanh(c_t)

U (4H, D) = weight_ih, W (4H, H) = weight_hh, b (4H,) = bias_ih, bh (4H,) = bias_hh (both optional).
state (h, c); cache (i, f, g, o, tanh c_t); G = 4H. The error travels back along the cell state
multiplied by the forget gate alone: the memory path.
"""
from __future__ import annotations

import numpy as np

from .base import Cell, Param, sigmoid
from .registry import register
from ..validate import show


class LSTM(Cell):
    """Long short-term memory, PyTorch's nn.LSTM: state (h, c); cache (i, f, g, o, tanh c_t); G = 4H."""

    name = "lstm"
    label = "LSTM"
    model = "LSTM"
    params = {"U": Param(("4H", "D"), role="input"), "W": Param(("4H", "H"), role="recurrent"),
              "b": Param(("4H",), optional=True, role="input bias"),
              "bh": Param(("4H",), optional=True, role="recurrent bias")}
    state = ("h", "c")
    torch = keras = "LSTM"  # both in bptt's gate order i, f, g, o (Keras calls g c)
    gates = ("i", "f", "g", "o")
    sigmoid_gates = ("i", "f", "o")
    memory = ("c", "f")
    memory_text = ("along the cell state c_k -> c_(k-1), multiplied by the forget gate f_k alone", "forget",
                   "keeps the cell path open")  # the path, its gate's name, what that gate near 1 does

    def init(self, rng, D, H, O, *, bias=True, std=None, forget_bias=0.0):
        """PyTorch's initialisation (every weight uniform on +-1/sqrt(H)) or Gaussian with std;
        forget_bias is added to the forget gate's rows of b, e.g. 1.0 (Gers et al. 2000; Jozefowicz
        et al. 2015), so that the cell starts by keeping its memory."""
        if isinstance(forget_bias, bool) or not isinstance(forget_bias, (int, float, np.integer, np.floating)) \
                or not np.isfinite(forget_bias):
            raise ValueError(f"forget_bias must be a finite number, got {show(forget_bias)}")
        params = super().init(rng, D, H, O, bias=bias, std=std)
        if forget_bias:
            params["b"] = params.get("b", np.zeros(4 * H))
            params["b"][H:2 * H] += forget_bias  # rows of the forget gate (order i, f, g, o)
        return params

    def path_lines(self, t) -> list:
        return ["Each step k sends the error at its state (h_k, c_k) back along two paths:",
                "  along the cell state:  dE/dc_(k-1) = (dE/dc_k + dE/dh_k * o_k * (1 - tanh^2 c_k)) * f_k",
                "  through h:             dE/dh_(k-1) = dE/d[i, f, g, o]_k . W",
                f"The error e_{t} = dE_{t}/dh_{t} * o_{t} * (1 - tanh^2 c_{t}) that output {t} puts into c_{t} "
                f"reaches c_k, if it stays on the cell path, times the forget gates f_{t} * ... * f_(k+1)."]

    def step(self, m, a, state):
        h_prev, c_prev = state
        H = h_prev.shape[-1]
        pre = a + h_prev @ m.W.T + (0 if m.bh is None else m.bh)  # (N, 4H): [i, f, g, o]
        i, f, o = (sigmoid(pre[..., k * H:(k + 1) * H]) for k in (0, 1, 3))
        g = np.tanh(pre[..., 2 * H:3 * H])
        c = f * c_prev + i * g  # the cell state: the path along which the error can travel unchanged
        tc = np.tanh(c)
        return (o * tc, c), (i, f, g, o, tc)

    def step_back(self, m, prev, state, cache, d):
        """dE/dc_{t-1} = dE/dc_t * f_t along the cell path; everything else through the gates."""
        (_, c_prev), (dh, dc), (i, f, g, o, tc) = prev, d, cache
        dc = dc + dh * o * (1 - tc * tc)  # dE/dc_t: from h_t too
        d_pre = np.concatenate([dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dc * i * (1 - g * g),
                                dh * tc * o * (1 - o)], axis=-1)  # (..., N, 4H): dE/d[i, f, g, o] pre-activations
        return d_pre, d_pre, (d_pre @ m.W, dc * f)

    def jacobian_back(self, m, prev, state, cache, G):
        """G = dL/dA_t (N, 2H, 2H), A_t's blocks (rows h_t, c_t; columns h_{t-1}, c_{t-1}):
            dc/dh' = K = sum over the gates b of diag(k_b) W_b,  k = (g i', c' f', i g') for (i, f, g)
            dc/dc' = diag(f);  dh/dh' = diag(o tau') K + diag(tau o') W_o;  dh/dc' = diag(o tau' f)
        with c' = c_{t-1}, tau = tanh c_t, x' = x (1 - x) for a sigmoid gate and 1 - x^2 for g and
        tau. Back through K, the diagonals, then c_t = f c' + i g and the gates' pre-activations:
        (d_pre, d_pre, (d_pre W, dL/dc'), {"W": W's own part (4H, H)}), d_pre (N, 4H)."""
        (_, c0), (i, f, g, o, tc) = prev, cache
        H = c0.shape[-1]
        Ghh, Ghc, Gch, Gcc = G[:, :H, :H], G[:, :H, H:], G[:, H:, :H], G[:, H:, H:]
        Wi, Wf, Wg, Wo = (m.W[k * H:(k + 1) * H] for k in range(4))
        di, df, dg, do, dtc = i * (1 - i), f * (1 - f), 1 - g * g, o * (1 - o), 1 - tc * tc  # (N, H) each
        kappa = (g * di, c0 * df, i * dg)  # dc/d(pre) of the gates i, f, g
        K = sum(k[..., :, None] * Wb for k, Wb in zip(kappa, (Wi, Wf, Wg)))  # (N, H, H): dc/dh'
        beta, gamma = o * dtc, tc * do  # dh/dc and dh/d(pre_o)
        Kbar = beta[..., :, None] * Ghh + Gch  # dL/dK
        dWi, dWf, dWg = (np.einsum("ni,nij->ij", k, Kbar) for k in kappa)
        dWo = np.einsum("ni,nij->ij", gamma, Ghh)
        rho = [np.einsum("nij,ij->ni", Kbar, Wb) for Wb in (Wi, Wf, Wg)]  # dL/dkappa
        gbar = np.einsum("nij,ij->ni", Ghh, Wo)  # dL/dgamma
        dhc, dcc = np.diagonal(Ghc, axis1=1, axis2=2), np.diagonal(Gcc, axis1=1, axis2=2)
        bbar = np.einsum("nij,nij->ni", Ghh, K) + dhc * f  # dL/dbeta
        fbar = dhc * beta + dcc + rho[1] * c0 * (1 - 2 * f)
        obar = bbar * dtc + gbar * tc * (1 - 2 * o)
        taubar = -2 * bbar * o * tc + gbar * do
        gbar_ = rho[0] * di - 2 * rho[2] * i * g
        ibar = rho[0] * g * (1 - 2 * i) + rho[2] * dg
        cbar = taubar * dtc  # dL/dc_t through tau
        c0bar = rho[1] * df + cbar * f
        fbar, ibar, gbar_ = fbar + cbar * c0, ibar + cbar * g, gbar_ + cbar * i
        d_pre = np.concatenate([ibar * di, fbar * df, gbar_ * dg, obar * do], axis=-1)  # (N, 4H)
        return d_pre, d_pre, (d_pre @ m.W, c0bar), {"W": np.concatenate([dWi, dWf, dWg, dWo])}


register(LSTM)
