"""Initialisers of weight matrices (seed: an int or an np.random.Generator; randomness is passed in)."""
from __future__ import annotations

import numpy as np

from .validate import integer, rng, show, too_big

INITS = ("uniform", "normal", "orthogonal", "identity", "henaff")  # the initialisers of a square W, by name


def _number(name, v, *, positive=False):
    """v as a float, finite (and >= 0 when positive); a ValueError naming it otherwise."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)) \
            or not np.isfinite(v) or (positive and v < 0):
        raise ValueError(f"{name} must be a finite number{' >= 0' if positive else ''}, got {show(v)}")
    return float(v)


def _shape(shape) -> tuple:
    """shape as a tuple of integers >= 1 within the element limit (validate.max_elements)."""
    if not isinstance(shape, (tuple, list)) or not shape or not all(
            isinstance(n, (int, np.integer)) and not isinstance(n, (bool, np.bool_)) and n >= 1 for n in shape):
        raise ValueError(f"shape must be a tuple of integers >= 1, got {show(shape)}")
    shape = tuple(int(n) for n in shape)
    too_big(f"an array of shape {shape}", int(np.prod(shape, dtype=object)))
    return shape


def _side(n) -> int:
    n = integer("n", n, low=1)
    too_big(f"an ({n}, {n}) matrix", n * n)
    return n


def uniform(shape, *, seed) -> np.ndarray:
    """Uniform on [-1/sqrt(n), 1/sqrt(n)], n = shape[-1] (the fan-in; the notebook's source)."""
    shape = _shape(shape)
    n = shape[-1]
    return rng(seed).uniform(-1 / np.sqrt(n), 1 / np.sqrt(n), shape)


def normal(shape, std, *, seed) -> np.ndarray:
    """Gaussian with mean 0 and standard deviation std (min-char-rnn uses std = 0.01)."""
    return rng(seed).normal(0.0, _number("std", std, positive=True), _shape(shape))


def orthogonal(n, *, seed, gain=1.0) -> np.ndarray:
    """A random (n, n) orthogonal matrix (QR of a Gaussian, signs fixed so it is Haar-distributed)."""
    gain = _number("gain", gain)
    n = _side(n)
    q, r = np.linalg.qr(rng(seed).normal(size=(n, n)))
    return gain * q * np.sign(np.diag(r))


def identity(n, gain=1.0) -> np.ndarray:
    """gain * I: the IRNN initialisation of Le, Jaitly & Hinton (2015), used with relu."""
    return _number("gain", gain) * np.eye(_side(n))


def spectral_radius(W) -> float:
    """rho(W) = max |eigenvalue of W|."""
    return float(np.max(np.abs(np.linalg.eigvals(np.asarray(W, dtype=np.float64)))))


def with_spectral_radius(W, rho) -> np.ndarray:
    """W rescaled so that its spectral radius is rho."""
    rho = _number("rho", rho, positive=True)
    r = spectral_radius(W)
    if r == 0:
        raise ValueError("cannot rescale W to a spectral radius: all its eigenvalues are 0")
    return np.asarray(W) * (rho / r)
