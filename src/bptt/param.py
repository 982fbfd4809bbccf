"""Orthogonal parametrisations of a square recurrent matrix: W = expm(A) and W = Cayley(A).

A parametrisation is a pair of plain functions: forward, A (H, H) -> W (H, H), and its
vector-Jacobian product, (A, dW) -> dA, with dW = dE/dW and dA = dE/dA (the JAX example
libraries' style). Training keeps A and sets W = forward(A) after every update (bptt.train,
--param exp|cayley); any cell whose recurrent matrix W is square (H, H) takes it.

Convention: A is stored as a free (H, H) matrix of which only the skew-symmetric part
S = (A - A^T) / 2 is used, so W is orthogonal for every A. The vjps return dA = (G - G^T) / 2,
skew-symmetric (G = dE/dS), so an optimiser whose update is elementwise in the gradient and
symmetric in its sign (SGD, momentum, RMSprop, Adam, Adagrad) keeps a skew A skew.

    expm(A)            W = exp(S), in SO(H). Computed from the eigendecomposition of the Hermitian
                       matrix i S = Q diag(w) Q^H: exp(S) = Q diag(e^{-i w}) Q^H (real part), so W is
                       orthogonal to rounding. Its derivative is the Frechet derivative
                       L(S, E) = Q (F o (Q^H E Q)) Q^H, F_jk = (e^{l_j} - e^{l_k}) / (l_j - l_k)
                       (e^{l_j} where l_j = l_k), l = -i w the eigenvalues of S: exact, in closed form
                       (the adjoint of L(S, .) is L(S^T, .), so dS = L(-S, dW)).
    cayley(A, D)       W = (I + S)^{-1} (I - S) D, D a diagonal of +-1 given as a vector (scoRNN,
                       Helfrich et al. 2018; None: D = I). dS = -2 (I + S)^{-T} (dW D) (I + S)^{-T}
                       in closed form (with W0 = (I + S)^{-1}(I - S), dW0 = -(I + S)^{-1} dS (W0 + I)
                       and W0 + I = 2 (I + S)^{-1}).
    henaff(H, seed)    the initialisation expRNN names after Henaff et al. (2016): S block-diagonal
                       with 2x2 blocks [[0, t], [-t, 0]], t uniform on [-pi, pi] (odd H: a last 0),
                       so that expm gives a block-diagonal of rotations by t.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from .validate import rng, show, too_big

__all__ = ["skew", "expm", "expm_vjp", "cayley", "cayley_vjp", "henaff", "orthogonality", "get",
           "Parametrisation", "PARAMS"]


def _square(name, A) -> np.ndarray:
    """A as a finite float64 (H, H) array; a one-line ValueError/TypeError otherwise."""
    if isinstance(A, (str, bytes, dict)) or A is None:
        raise TypeError(f"{name} must be a square (H, H) array of numbers, got {show(A)}")
    try:
        a = np.asarray(A)
    except (ValueError, TypeError):
        raise TypeError(f"{name} must be a square (H, H) array of numbers, got {show(A)}") from None
    if a.dtype == object or a.dtype.kind not in "biuf" or isinstance(A, np.ma.MaskedArray):
        raise TypeError(f"{name} must be a square (H, H) array of real numbers, got dtype {a.dtype}")
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] < 1:
        raise ValueError(f"{name} must be a square (H, H) array with H >= 1, got shape {a.shape}")
    too_big(f"{name} of shape {a.shape}", a.size * 4)
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must hold finite numbers, got NaN or inf")
    return a


def _pair(A, dW):
    A = _square("A", A)
    dW = _square("dW", dW)
    if dW.shape != A.shape:
        raise ValueError(f"dW must have A's shape {A.shape}, got {dW.shape}")
    return A, dW


def skew(A) -> np.ndarray:
    """S = (A - A^T) / 2, the skew-symmetric part of A (H, H) that the parametrisations use."""
    A = _square("A", A)
    return (A - A.T) / 2


def _eig(S):
    """(l, Q): S = Q diag(l) Q^H for a real skew-symmetric S; l purely imaginary, Q unitary."""
    w, Q = np.linalg.eigh(1j * S)  # i S is Hermitian: i S = Q diag(w) Q^H, so S = Q diag(-i w) Q^H
    return -1j * w, Q


def _expm(S):
    l, Q = _eig(S)
    return ((Q * np.exp(l)) @ Q.conj().T).real


def expm(A) -> np.ndarray:
    """W = exp(S), S = (A - A^T) / 2: an (H, H) orthogonal matrix with determinant 1."""
    return _expm(skew(A))


def _divided(l):
    """F_jk = (e^{l_j} - e^{l_k}) / (l_j - l_k), e^{l_j} on ties, for imaginary l = i a: written as
    e^{i (a_j + a_k) / 2} sinc((a_j - a_k) / 2), which has no cancellation near ties."""
    a = l.imag
    half = (a[:, None] - a[None, :]) / 2
    return np.exp(1j * (a[:, None] + a[None, :]) / 2) * np.sinc(half / np.pi)  # np.sinc(x) = sin(pi x) / (pi x)


def expm_vjp(A, dW) -> np.ndarray:
    """dA for W = expm(A): dS = L(S^T, dW) = L(-S, dW), the Frechet derivative's adjoint, then
    dA = (dS - dS^T) / 2. A, dW (H, H) -> dA (H, H), skew-symmetric."""
    A, dW = _pair(A, dW)
    l, Q = _eig(-skew(A))
    Qh = Q.conj().T
    dS = (Q @ (_divided(l) * (Qh @ dW @ Q)) @ Qh).real
    return (dS - dS.T) / 2


def _diagonal(D, H):
    if D is None:
        return None
    d = np.asarray(D) if not isinstance(D, (str, bytes, dict)) else None
    if d is None or d.dtype.kind not in "biuf" or d.shape != (H,) or not np.all(np.isin(d, (-1, 1))):
        raise ValueError(f"D must be None or a vector of {H} entries, each +1 or -1 (the diagonal of scoRNN's D), "
                         f"got {show(D)}")
    return d.astype(np.float64)


def cayley(A, D=None) -> np.ndarray:
    """W = (I + S)^{-1} (I - S) D, S = (A - A^T) / 2, D a vector of +-1 (None: all 1): (H, H),
    orthogonal. I + S is never singular (S's eigenvalues are imaginary)."""
    S = skew(A)
    I = np.eye(len(S))
    W = np.linalg.solve(I + S, I - S)
    d = _diagonal(D, len(S))
    return W if d is None else W * d


def cayley_vjp(A, dW, D=None) -> np.ndarray:
    """dA for W = cayley(A, D): dS = -2 (I + S)^{-T} (dW D) (I + S)^{-T}, dA = (dS - dS^T) / 2.
    A, dW (H, H), D (H,) or None -> dA (H, H), skew-symmetric."""
    A, dW = _pair(A, dW)
    S = (A - A.T) / 2
    d = _diagonal(D, len(S))
    G0 = dW if d is None else dW * d
    M = np.eye(len(S)) + S
    X = np.linalg.solve(M.T, G0)                      # (I + S)^{-T} G0
    dS = -2 * np.linalg.solve(M, X.T).T               # X (I + S)^{-T} = ((I + S)^{-1} X^T)^T
    return (dS - dS.T) / 2


def henaff(H, *, seed) -> np.ndarray:
    """A skew (H, H) matrix with 2x2 blocks [[0, t], [-t, 0]] on the diagonal, t uniform on [-pi, pi]
    (the module's notes); expm of it is block-diagonal of rotations, cayley of it too (by 2 atan t)."""
    from .validate import integer
    H = integer("H", H, low=1)
    too_big(f"an ({H}, {H}) matrix", H * H)
    t = rng(seed).uniform(-np.pi, np.pi, H // 2)
    A = np.zeros((H, H))
    i = np.arange(H // 2) * 2
    A[i, i + 1], A[i + 1, i] = t, -t
    return A


def orthogonality(W) -> float:
    """max |W^T W - I|: 0 for an orthogonal W."""
    W = _square("W", W)
    return float(np.max(np.abs(W.T @ W - np.eye(len(W)))))


class Parametrisation(NamedTuple):
    """name; forward(A) -> W; vjp(A, dW) -> dA (A, W, dW, dA all (H, H))."""
    name: str
    forward: Callable[[np.ndarray], np.ndarray]
    vjp: Callable[[np.ndarray, np.ndarray], np.ndarray]


PARAMS = {"exp": Parametrisation("exp", expm, expm_vjp), "cayley": Parametrisation("cayley", cayley, cayley_vjp)}


def get(name) -> Parametrisation:
    """The parametrisation called name: "exp" or "cayley"."""
    if not isinstance(name, str) or name not in PARAMS:
        raise ValueError(f"unknown parametrisation {show(name)}: expected one of {', '.join(PARAMS)}")
    return PARAMS[name]
