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
        return _window_by_lag(dS, df, W, K)
    return _window_by_blocks(dS, df, W, K)


LAG_TILE_BYTES = 1 << 19  # one array's rows in a tile of positions (a tile goes through its lags in cache)


def _window_by_lag(dS, df, W, K):
    """The window lag by lag: B_l[p] = dE_{p-1+l}/ds_{p-1} at the positions p = 0..T-l (p = 0 is
    s_{-1}), B_0[p] = dE_{p-1}/ds_{p-1}, B_l[p] = (B_{l-1}[p+1] f'(z_p)) W; g sums l = 0..K.

    By tiles of R positions, each taken through all K lags while its rows stay in the core's cache:
    a tile [a, b) needs B_{l-1} on [a, b+K-l+1), so its lags start K positions past its end and
    shrink by one a lag (the arithmetic of every entry is the same as lag by lag over all
    positions). The tiles are independent: this thread and the helper take them one at a time
    (runtime.each)."""
    T, N, H = dS.shape
    K = min(K, T)
    g = np.zeros((T + 1, N, H), dtype=dS.dtype)  # g[p]: at s_{p-1}
    g[1:] = dS
    e = g.copy()  # B_0
    R = max(K, LAG_TILE_BYTES // (N * H * dS.itemsize))
    tiles = [(a, min(a + R, T + 1)) for a in range(0, T + 1, R)]

    def worker():  # a thread's working rows, and its function of a tile
        z, b = np.empty((2, R + K, N, H), dtype=dS.dtype)
        return lambda i: _lag_tile(e, df, W, K, *tiles[i], g, z, b)

    runtime.each(len(tiles), worker)
    return g[1:], g[0]


def _lag_tile(e, df, W, K, a, b, g, z, back):
    """Adds lags 1..K of the positions [a, b) into g (see _window_by_lag); z and back: (R + K, N,
    H) working rows."""
    P, N, H = e.shape  # P = T + 1 positions
    B = e[a:]
    with np.errstate(over="ignore", invalid="ignore"):  # as the caller's (NumPy's are per thread)
        for lag in range(1, K + 1):
            end = min(b + K - lag, P - lag)  # B_lag is needed on [a, end)
            n = end - a
            if n <= 0:
                break
            Z = np.multiply(B[1:n + 1], df[a:a + n], out=z[:n])  # dE/dz at steps a..end-1
            B = np.matmul(Z.reshape(-1, H), W, out=back[:n].reshape(-1, H)).reshape(n, N, H)
            m = min(b, end) - a
            g[a:a + m] += B[:m]


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
    halves = [(0, nb // 2), (nb // 2, nb)] if nb > 1 else [(0, nb)]  # the blocks are independent
    runtime.each(len(halves), lambda: lambda i: _blocks(e, F, W, g, *halves[i]))
    g = g.reshape(-1, N, H)
    return g[1:T + 1], g[0]


def _blocks(e, F, W, g, c0, c1):
    """g of the blocks c0 <= c < c1 (see _window_by_blocks); e, F, g: (blocks, L, N, H)."""
    nb, L, N, H = e.shape
    with np.errstate(over="ignore", invalid="ignore"):  # as the caller's (NumPy's are per thread)
        e, F, gb = e[c0:c1 + 1], F[c0:c1 + 1], g[c0:c1]  # and the block after the last, where there is one
        n = c1 - c0
        gb[:, L - 1] = e[:n, L - 1]
        for i in range(L - 2, -1, -1):  # within each block, from its end
            gb[:, i] = e[:n, i] + ((gb[:, i + 1] * F[:n, i + 1]).reshape(-1, H) @ W).reshape(n, N, H)
        m = min(c1, nb - 1) - c0  # block pairs (c, c+1)
        if m <= 0:
            return
        eye = np.broadcast_to(np.eye(H, dtype=e.dtype), (m, N, H, H))
        u = np.zeros((m, L, N, H), dtype=e.dtype)  # u[c, i]: block c+1's outputs j < i, at its start
        PreT, WT = eye.copy(), np.ascontiguousarray(W.T)
        for j in range(L - 1):
            if j:
                PreT = (PreT.reshape(-1, H) @ WT).reshape(m, N, H, H)  # Pre_j^T = Pre_{j-1}^T W^T diag(F)
                PreT *= F[1:m + 1, j][:, :, None, :]
            u[:, j + 1] = u[:, j] + (PreT @ e[1:m + 1, j][..., None])[..., 0]
        Suf = eye.copy()
        for i in range(L - 1, -1, -1):
            Suf *= (F[1:m + 1, 0] if i == L - 1 else F[:m, i + 1])[:, :, None, :]  # Suf_i = Suf_{i+1} J_{p+1}
            Suf = (Suf.reshape(-1, H) @ W).reshape(m, N, H, H)
            gb[:m, i] += (u[:, i][:, :, None, :] @ Suf)[:, :, 0]
