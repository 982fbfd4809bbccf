"""Recurrent cells and their registry.

A cell is one class (bptt.cells.Cell: its parameters, state, initialisation, step and the step's
vector-Jacobian product) and one call, bptt.cells.register(MyCell); every verb then takes it by
name (docs/engine.md, "Adding a cell"). The built-in cells are the modules of this package, each
registering its class when imported.
"""
import importlib
import pkgutil

from .base import ROLES, Cell, Param, sizes
from .registry import canonical, get, layers, make, names, owners, register, resolve, variants

_LATER = ("cornn",)  # modules registered after the others: a new built-in cell joins the end of every
# listing (names(), --cell's help, the messages that name the cells an option fits), and rnn stays first

for _m in sorted(pkgutil.iter_modules(__path__), key=lambda m: (m.name in _LATER, m.name)):
    if _m.name not in ("base", "registry"):
        importlib.import_module(f"{__name__}.{_m.name}")

__all__ = ["Cell", "Param", "ROLES", "register", "names", "get", "resolve", "make", "sizes", "variants", "canonical", "owners", "layers"]
