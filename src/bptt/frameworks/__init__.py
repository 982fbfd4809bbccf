"""Cross-checks against PyTorch, JAX and TensorFlow, and import/export of their layers.

Each reference module (bptt.frameworks.torch, .jax, .tensorflow) rebuilds the same model (a
bptt.RNN, LSTM or GRU in either form; in torch and jax also an LRU, MinGRU, MinLSTM or Linear,
written in torch_modern and jax_modern) from the model's arrays in float64 and lets the
framework's own autodiff differentiate it:

    gradients(model, x, y, *, truncate=None, h0=None, reduction="sum") -> (loss, dict)
        dict keys: the model's params (U, W, V and those of b, bh, c it has), h0, and c0 for an
        LSTM, the same meaning as bptt.gradients; truncate=K is built with the framework's
        stop-gradient, never with bptt's backward pass.
    terms(model, x, y, name, t, *, h0=None) -> (T, *shape)
        the Elman cell's only: step k's term of dE_t/d(name) for "W", "U", "b", by untying the
        parameter into one copy per step (the gradient of copy k is step k's term).

compare() runs them next to bptt.gradients (float64) and reports, loss first and then each
gradient by name, the largest absolute and relative differences. The relative error of an entry
is |ours - theirs| / max(|ours|, |theirs|, floor) with floor = 1e-6 x the largest magnitude of that
quantity (and never below the smallest positive float64): entries that are zero or tiny next to
the rest are held to an absolute standard, and 0/0 or NaN can never pass.

Weight layouts (PyTorch: weight_ih_l0 = U, weight_hh_l0 = W, bias_ih_l0 = b, bias_hh_l0 = bh
(nn.RNN: their sum is b), Linear weight = V, bias = c; Keras: kernel = U.T, recurrent_kernel = W.T,
bias = b (a reset-after GRU: [b, bh]), a GRU's gates reordered z, r, h <-> r, z, n, Dense kernel
= V.T, bias = c) are documented in bptt.frameworks.torch and bptt.frameworks.tensorflow.
Every framework is imported inside the functions that use it, so importing this package is cheap.
"""
from __future__ import annotations

import importlib
import importlib.util
import json
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .tensorflow import from_keras, to_keras
from .torch import from_torch, to_torch
from ..validate import show

FRAMEWORKS = ("torch", "jax", "tensorflow")
NAMES = FRAMEWORKS
_NEEDS = {"torch": ("torch",), "jax": ("jax", "jaxlib"), "tensorflow": ("tensorflow",)}
_EXTRA = {"torch": "bptt[torch]", "jax": "bptt[jax]", "tensorflow": "bptt[tensorflow]"}
FLOOR = 1e-6  # relative-error floor, as a fraction of the quantity's largest magnitude

__all__ = ["available", "compare", "Comparison", "Row", "reference", "relative_error",
           "to_torch", "from_torch", "to_keras", "from_keras", "FRAMEWORKS", "NAMES"]


def available() -> list[str]:
    """The frameworks that are installed, in the order torch, jax, tensorflow (none is imported)."""
    return [name for name in FRAMEWORKS
            if all(importlib.util.find_spec(m) is not None for m in _NEEDS[name])]


def reference(name: str):
    """The reference module for a framework: bptt.frameworks.torch, .jax or .tensorflow."""
    if name not in FRAMEWORKS:
        raise ValueError(f"unknown framework {show(name)}: expected one of {', '.join(FRAMEWORKS)}")
    return importlib.import_module(f"{__name__}.{name}")


class Row(NamedTuple):
    framework: str
    quantity: str        # "loss", then the model's params ("U", "W", "V", "b", "bh", "c"), "h0", "c0"
    max_abs_err: float
    max_rel_err: float
    passed: bool


@dataclass(frozen=True)
class Comparison:
    """The result of compare(): one Row per framework and quantity, loss first."""

    rows: tuple
    rtol: float
    truncate: int | None
    reduction: str

    @property
    def passed(self) -> bool:
        return bool(self.rows) and all(r.passed for r in self.rows)

    @property
    def frameworks(self) -> list[str]:
        return list(dict.fromkeys(r.framework for r in self.rows))

    def failures(self) -> list[Row]:
        return [r for r in self.rows if not r.passed]

    def to_dict(self) -> dict:
        """Plain JSON-ready data (non-finite errors become the strings "nan" / "inf")."""
        def num(v):
            return v if np.isfinite(v) else str(v)
        return {"passed": self.passed, "rtol": self.rtol, "truncate": self.truncate,
                "reduction": self.reduction,
                "rows": [{"framework": r.framework, "quantity": r.quantity, "max_abs_err": num(r.max_abs_err),
                          "max_rel_err": num(r.max_rel_err), "passed": r.passed} for r in self.rows]}

    def to_json(self, **kw) -> str:
        try:
            return json.dumps(self.to_dict(), **kw)
        except OverflowError as e:  # e.g. an indent beyond any int: json's own error, as a ValueError
            raise ValueError(f"to_json: {e}") from None

    def __str__(self) -> str:
        head = ("framework", "quantity", "max abs err", "max rel err", "")
        body = [(r.framework, r.quantity, f"{r.max_abs_err:.2e}", f"{r.max_rel_err:.2e}",
                 "ok" if r.passed else "FAIL") for r in self.rows]
        widths = [max(len(row[i]) for row in [head] + body) for i in range(len(head))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [head] + body]
        trunc = "full BPTT" if self.truncate is None else f"truncate={self.truncate}"
        verdict = "passed" if self.passed else f"FAILED ({len(self.failures())} of {len(self.rows)})"
        lines.append(f"{verdict}: float64, {trunc}, reduction={self.reduction}, rtol={self.rtol:g}")
        return "\n".join(lines)

    def _repr_html_(self):
        """The comparison in a notebook: the same table as str(), as HTML."""
        from ..display import comparison_html
        return comparison_html(self)


def relative_error(ours, theirs) -> tuple[float, float]:
    """(max |a - b|, max |a - b| / max(|a|, |b|, floor)); floor = FLOOR x the largest |a|, |b|.

    Shapes that differ, NaN or Inf give inf/nan, which never pass a tolerance.
    """
    a, b = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf"), float("inf")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return float("nan"), float("nan")
    from ..check import rel_error

    scale = float(np.maximum(np.abs(a), np.abs(b)).max(initial=0.0))
    floor = max(FLOOR * scale, np.finfo(np.float64).tiny)
    return float(np.abs(a - b).max(initial=0.0)), float(rel_error(a, b, floor).max(initial=0.0))


def compare(model, x, y, *, frameworks=None, truncate=None, h0=None, reduction="sum",
            rtol=1e-10, backend=None) -> Comparison:
    """bptt.gradients (in float64) against each framework's autodiff of the same model.

    model: a bptt model whose cell the frameworks have (each module's CELLS); one row per framework
    for the loss, each of the model's params, h0, and c0 for an LSTM (whose h0 may be the pair
    (h0, c0)).

    frameworks: names from FRAMEWORKS, or None for every installed one that has the cell (at least
    one is needed).
    x, y, truncate, h0, reduction, backend: as in bptt.gradients. Each quantity passes when its largest
    relative error (see relative_error) is at most rtol. Returns a Comparison: .passed, .rows,
    print() for a table, .to_dict() for JSON.
    """
    from ..backend import gradients

    if isinstance(rtol, bool) or not isinstance(rtol, (int, float)) or not rtol > 0:
        raise ValueError(f"rtol must be a positive number, got {show(rtol)}")
    names = available() if frameworks is None else list(frameworks)
    if isinstance(frameworks, str):
        names = [frameworks]
    for name in names:
        if name not in FRAMEWORKS:
            raise ValueError(f"unknown framework {show(name)}: expected some of {', '.join(FRAMEWORKS)}")
    if not names:
        raise ValueError("no reference framework is installed: pip install 'bptt[all]' "
                         "(or bptt[torch], bptt[jax], bptt[tensorflow])")
    missing = [n for n in names if n not in available()]
    if missing:
        raise ValueError(f"{', '.join(missing)} is not installed: pip install "
                         + " ".join(f"'{_EXTRA[n]}'" for n in missing))
    cell = model.cell.name
    lacking = [n for n in names if cell not in reference(n).CELLS]
    if lacking and frameworks is not None:
        raise ValueError(f"{', '.join(lacking)} has no reference for the {cell} cell (only for "
                         f"{', '.join(reference(lacking[0]).CELLS)})")
    names = [n for n in names if n not in lacking]
    if not names:
        raise ValueError(f"no installed framework has a reference for the {cell} cell")
    from ..progress import Stages
    from ._common import announce

    model64 = model.astype(np.float64)
    line = announce(names, say=lambda text: None)  # what the imports will take, if any is still to come
    with Stages("bptt", delay=1.0) as stage:  # said on stderr once it lasts a second, and every few seconds
        stage(line.removesuffix("...") if line else f"comparing with {', '.join(names)}")
        loss, g = gradients(model64, x, y, truncate=truncate, h0=h0, reduction=reduction, backend=backend)
        theirs_all = {name: reference(name).gradients(model64, x, y, truncate=truncate, h0=h0, reduction=reduction)
                      for name in names}
    ours = {"loss": loss, **g.params, "h0": g.h0, **({"c0": g.c0} if g.c0 is not None else {})}
    rows = []
    for name in names:
        their_loss, theirs = theirs_all[name]
        theirs = {"loss": their_loss, **theirs}
        for q, value in ours.items():
            abs_err, rel_err = relative_error(value, theirs[q]) if q in theirs else (float("nan"),) * 2
            rows.append(Row(name, q, abs_err, rel_err, bool(rel_err <= rtol)))
        rows += [Row(name, q, float("nan"), float("nan"), False) for q in theirs if q not in ours]  # a name bptt lacks
    return Comparison(tuple(rows), float(rtol), truncate, reduction)
