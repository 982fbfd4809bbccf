"""The one list of cells: every verb, --cell, checkpoints, sweeps and the report read it here."""
from __future__ import annotations

from .base import ROLES, Cell, Param
from ..validate import show

_CELLS: dict = {}  # name -> Cell subclass, in the order of registration


def register(cell):
    """Add a Cell subclass to the registry under cell.name (and its aliases, for input) and return
    it, so that it can decorate the class. Registering a class of the same name again replaces it
    when it is the same class redefined (same module and qualified name), and is an error otherwise."""
    _check(cell)
    old = _CELLS.get(cell.name)
    if old is not None and (old.__module__, old.__qualname__) != (cell.__module__, cell.__qualname__):
        raise ValueError(f"a cell named {show(cell.name)} is registered already ({old.__module__}.{old.__qualname__})")
    taken = {a: n for n, c in _CELLS.items() if n != cell.name for a in (n, *c.aliases)}
    clash = sorted(a for a in (cell.name, *cell.aliases) if a in taken)
    if clash:
        raise ValueError(f"the cell {show(cell.name)} takes the name(s) {', '.join(clash)} of the cell(s) "
                         f"{', '.join(sorted({taken[a] for a in clash}))}")
    _CELLS[cell.name] = cell
    return cell


def _check(cell):
    if not (isinstance(cell, type) and issubclass(cell, Cell)):
        raise TypeError(f"register takes a subclass of bptt.cells.Cell, got {show(cell)}")
    what = f"the cell class {cell.__qualname__}"
    if not isinstance(cell.name, str) or not cell.name.isidentifier() or cell.name != cell.name.lower():
        raise ValueError(f"{what} needs a name, a lower-case identifier such as 'rnn', got {show(cell.name)}")
    if not isinstance(cell.model, str) or not cell.model.isidentifier():
        raise ValueError(f"{what} needs model, the name of its model class (e.g. 'RNN'), got {show(cell.model)}")
    if not isinstance(cell.params, dict) or not cell.params or \
            not all(isinstance(p, Param) for p in cell.params.values()):
        raise ValueError(f"{what} must declare params, a dict of name -> bptt.cells.Param")
    for n, p in cell.params.items():
        if n in ("V", "c") or not n.isidentifier():
            raise ValueError(f"{what}: {show(n)} cannot name a cell parameter (V and c are the head's)")
        if p.role not in ROLES + (None,):
            raise ValueError(f"{what}: the role of {n} must be one of {', '.join(ROLES)} or None, got {show(p.role)}")
        if not p.shape or not all(isinstance(s, str) and (s == "D" or (s.endswith("H") and (s[:-1] or "1").isdigit()))
                                  for s in p.shape):
            raise ValueError(f"{what}: the shape of {n} must be a tuple of 'D', 'H' or 'kH', got {show(p.shape)}")
    roles = [p.role for p in cell.params.values() if p.role is not None]
    shared = [r for r in roles if r not in ("input", "input bias")]
    if len(shared) != len(set(shared)):
        raise ValueError(f"{what}: the roles 'recurrent' and 'recurrent bias' may be given to one parameter only")
    if not cell.params or not any("H" in s for p in cell.params.values() for s in p.shape):
        raise ValueError(f"{what}: some parameter must have an H axis, from which H is read")
    if not isinstance(cell.state, tuple) or not cell.state:
        raise ValueError(f"{what} must name its state's entries in `state`, a tuple such as ('h',)")
    if cell.step is Cell.step or cell.step_back is Cell.step_back:
        raise ValueError(f"{what} must define step and step_back")
    if cell.project is Cell.project and "input" not in roles:
        raise ValueError(f"{what} has no parameter with the role 'input': define its own project(m, xin)")


def names() -> tuple:
    """The registered cells' names, in the order they were registered."""
    return tuple(_CELLS)


def layers(framework) -> dict:
    """{layer class name: Cell subclass} for framework "torch" (torch.nn's modules) or "keras": the
    registered cells that one of its layers computes (Cell.torch, Cell.keras), in registry order."""
    if framework not in ("torch", "keras"):
        raise ValueError(f"framework must be 'torch' or 'keras', got {show(framework)}")
    return {getattr(c, framework): c for c in _CELLS.values() if getattr(c, framework)}


def variants() -> tuple:
    """Every registered cell's name and each alias that names other settings of one (e.g.
    "gru-before", Keras's reset-before GRU): the spellings a sweep or a stress test draws from."""
    return names() + tuple(a for c in _CELLS.values() for a, s in c.aliases.items() if s)


def owners(option) -> list:
    """The registered cells whose random model takes this option (Cell.options)."""
    return [n for n, c in _CELLS.items() if option in c.options()]


def get(name):
    """The Cell subclass registered as name (or under an alias)."""
    return resolve(name)[0]


def resolve(name) -> tuple:
    """(Cell subclass, settings) for a name or an alias: 'gru-before' -> (GRU, {'reset_after': False})."""
    if isinstance(name, str):
        if name in _CELLS:
            return _CELLS[name], {}
        for cell in _CELLS.values():
            if name in cell.aliases:
                return cell, dict(cell.aliases[name])
    aliases = [a for c in _CELLS.values() for a in c.aliases]
    also = f" (or {', '.join(aliases)})" if aliases else ""
    raise ValueError(f"unknown cell {show(name)}: expected one of {', '.join(_CELLS)}{also}")


def canonical(name):
    """A cell's one spelling for a name or an alias that names no other settings ("elman" -> "rnn");
    anything else unchanged (a variant such as "gru-before", or a name that is not registered)."""
    try:
        cell, settings = resolve(name)
    except ValueError:
        return name
    return cell.name if not settings else name


def make(name, **settings) -> Cell:
    """An instance of the cell called name, with its alias's settings and these."""
    cell, alias = resolve(name)
    return cell(**{**alias, **settings})
