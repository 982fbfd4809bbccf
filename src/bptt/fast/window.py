"""The Elman cell's truncated BPTT, exact (the notebook's window: output t's error reaches steps
t-K..t only), for all outputs at once: two ways with the same result, each the cheaper where it
is chosen (window). tests/test_fast.py checks both against the reference engine's window.

Shapes: T time, N batch, H hidden; dS (T, N, H) dE_t/ds_t from output t itself, df (T, N, H)
f'(z_t), W (H, H) the recurrent weights.
"""
from __future__ import annotations

import numpy as np

from . import runtime


def window(dS, df, W, K):
    """(g, dh0): g[k] = sum over t = k..min(k+K, T-1) of dE_t/ds_k, (T, N, H), and the same sum at
    s_{-1} (the outputs t <= K-1), (N, H). Two exact ways, each the cheaper where it is chosen:
    by lag, O(T N K H^2), for short windows; by blocks, O(T N H^3) whatever K, for long ones."""
    T, N, H = dS.shape
    if 2 * K < 3 * H:
        with runtime.blas_for(T * N * H * H):  # the policy of runtime.matmul, set once for the loop
            return _window_by_lag(dS, df, W, K)
    with runtime.blas_for((T + 1) // (K + 1) * N * H ** 3):
        return _window_by_blocks(dS, df, W, K)


def _window_by_lag(dS, df, W, K):
    """The window lag by lag, every step at once: B_l[p] = dE_{p-1+l}/ds_{p-1} at the positions
    p = 0..T-l (p = 0 is s_{-1}), B_l[p] = (B_{l-1}[p+1] f'(z_p)) W, one (T N, H) x (H, H) product
    per lag; g sums l = 0..K."""
    T, N, H = dS.shape
    g = np.zeros((T + 1, N, H), dtype=dS.dtype)  # g[p]: at s_{p-1}
    g[1:] = dS
    B = g
    dz, back = np.empty((2, T, N, H), dtype=dS.dtype)  # each lag's two results, written over (no new pages a lag)
    for lag in range(1, min(K, T) + 1):
        n = T - lag + 1
        Z = np.multiply(B[1:], df[:n], out=dz[:n])  # (n, N, H): dE/dz at steps 0..T-lag
        B = np.matmul(Z.reshape(-1, H), W, out=back[:n].reshape(-1, H)).reshape(n, N, H)  # at s_{-1}..s_{T-1-lag}
        g[:n] += B
    return g[1:], g[0]


def _window_by_blocks(dS, df, W, K):
    """The window by blocks of L = K+1 positions (p = 0 is s_{-1}, p = k+1 is s_k), all blocks at once.

    Write J_p = diag(f'(z_{p-1})) W, the step from s_{p-1} back to s_{p-2} (a row vector e at p
    reaches p-1 as e J_p). The window of position p = cL+i (block c) ends in block c+1, which starts
    at s = (c+1)L: its own block's outputs reach p by a backward recurrence that restarts at every
    block's end; block c+1's outputs q = s+j, j < i, reach it as u_i Suf_i, where
    u_i = sum_{j<i} e_{s+j} Pre_j (carried to s), Pre_j = J_{s+j} ... J_{s+1} and
    Suf_i = J_s ... J_{p+1}. Pre and Suf are (H, H) per block and sequence, updated by one
    (blocks N H, H) x (H, H) product a step. Nothing is subtracted: every term is the window's own."""
    T, N, H = dS.shape
    L = K + 1
    nb = -(-(T + 1) // L)  # blocks of positions 0..T
    e = np.zeros((nb * L, N, H), dtype=dS.dtype)
    F = np.zeros_like(e)
    e[1:T + 1], F[1:T + 1] = dS, df  # e_p = dE_{p-1}/ds_{p-1} from output p-1; F_p: J_p's diagonal
    e, F = e.reshape(nb, L, N, H), F.reshape(nb, L, N, H)
    g = np.empty_like(e)
    g[:, L - 1] = e[:, L - 1]
    for i in range(L - 2, -1, -1):  # within each block, from its end
        g[:, i] = e[:, i] + ((g[:, i + 1] * F[:, i + 1]).reshape(-1, H) @ W).reshape(nb, N, H)
    m = nb - 1  # block pairs (c, c+1)
    if m:
        eye = np.broadcast_to(np.eye(H, dtype=dS.dtype), (m, N, H, H))
        u = np.zeros((m, L, N, H), dtype=dS.dtype)  # u[c, i]: block c+1's outputs j < i, at its start
        PreT, WT = eye.copy(), np.ascontiguousarray(W.T)
        for j in range(L - 1):
            if j:
                PreT = (PreT.reshape(-1, H) @ WT).reshape(m, N, H, H)  # Pre_j^T = Pre_{j-1}^T W^T diag(F)
                PreT *= F[1:, j][:, :, None, :]
            u[:, j + 1] = u[:, j] + (PreT @ e[1:, j][..., None])[..., 0]
        Suf = eye.copy()
        for i in range(L - 1, -1, -1):
            Suf *= (F[1:, 0] if i == L - 1 else F[:-1, i + 1])[:, :, None, :]  # Suf_i = Suf_{i+1} J_{p+1}
            Suf = (Suf.reshape(-1, H) @ W).reshape(m, N, H, H)
            g[:-1, i] += (u[:, i][:, :, None, :] @ Suf)[:, :, 0]
    g = g.reshape(-1, N, H)
    return g[1:T + 1], g[0]
