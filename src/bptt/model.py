"""A model: a registered cell's parameters and a linear head, checked and frozen.

The notebook's names, kept everywhere in bptt (N batch, T time, D input, H hidden, O output):

    z_t = U x_t + W s_{t-1} + b        U (H, D), W (H, H), b (H,) optional       (the Elman cell)
    s_t = f(z_t)                       f in tanh, relu, sigmoid, identity; s_{-1} = h0 (zeros by default)
    q_t = V s_t + c                    V (O, H), c (O,) optional                  (every model's head)
    o_t = softmax(q_t)
    E   = sum_t E_t                    E_t = -log o_t[y_t]    (head "softmax", targets are ids)
                                       E_t = ||q_t - y_t||^2  (head "mse", real-valued targets)

The same weights under other names:
    min-char-rnn      Wxh = U, Whh = W, Why = V, bh = b, by = c (column vectors)
    PyTorch nn.RNN    weight_ih_l0 = U, weight_hh_l0 = W, bias_ih_l0 + bias_hh_l0 = b;
                      nn.Linear head: weight = V, bias = c
    Keras SimpleRNN   kernel = U.T, recurrent_kernel = W.T, bias = b; Dense head: kernel = V.T, bias = c
A gated cell stacks its gates' rows in U, W, b and bh, in PyTorch's gate order (bptt.cells).

Each registered cell has a model class named by the cell (bptt.RNN for "rnn"), made here from the
cell's declaration: its parameters by name, positionally in the order required parameters, V,
optional parameters, c; its settings (e.g. activation) by keyword; and head.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from . import cells
from .inits import identity, normal, orthogonal, spectral_radius, uniform, with_spectral_radius  # noqa: F401
from .validate import rng as validate_rng, show

HEADS = ("softmax", "mse")
HEAD_PARAMS = {"V": cells.Param(("O", "out")), "c": cells.Param(("O",), optional=True)}
FORMAT = "bptt.model/2"  # a model file's format; bptt.RNN/1, bptt.LSTM/1, bptt.GRU/1 are read too


def _finite(name: str, a: np.ndarray) -> None:
    if not np.all(np.isfinite(a)):
        bad = np.argwhere(~np.isfinite(a))[0]
        where = f" at index {tuple(int(i) for i in bad)}" if a.ndim else ""
        raise ValueError(f"{name} must be finite, but it holds {a[tuple(bad)]}{where}")


def _first_nonfinite(params):
    """The name of the first array holding a NaN or Inf, or None. A finite sum means finite
    entries; a sum that overflowed is looked at entry by entry."""
    with np.errstate(over="ignore", invalid="ignore"):  # the sums' overflows are not the caller's
        for k, a in params.items():
            if not (math.isfinite(float(np.add.reduce(a, axis=None))) or np.isfinite(a).all()):
                return k
    return None


class Model:
    """A registered cell's parameters and the head V, c; arrays checked, copied and read-only.

    Model("lstm", U=..., W=..., V=...) or the cell's own class (bptt.LSTM(U=..., W=..., V=...)).
    m.params: the parameters by name (a bias left out is absent; m.b is None then); m.cell: the
    cell, with its settings; m.H, m.D, m.O, m.dtype. The dtype follows the arrays (float32 stays
    float32; integers become float64).
    """

    CELL = None  # the Cell subclass, in each cell's model class

    def __new__(cls, *args, **kwargs):
        if cls.CELL is None:  # Model(name, ...): the model class of that cell
            if not args:
                raise TypeError("Model(cell, **params) needs the cell's name first, e.g. Model('rnn', U=..., "
                                "W=..., V=...)")
            cell, alias = cells.resolve(args[0])
            return model_class(cell)(*args[1:], **{**alias, **kwargs})
        return super().__new__(cls)

    def __init__(self, *args, head="softmax", **kwargs):
        cls = type(self)
        if "params" in self.__dict__:  # Model(name, ...): made and set up in __new__ already
            return
        order = signature(cls.CELL)
        if len(args) > len(order):
            raise TypeError(f"{cls.__name__} takes at most {len(order)} arrays by position ({', '.join(order)}), "
                            f"got {len(args)}")
        both = sorted(set(order[:len(args)]) & set(kwargs))
        if both:
            raise TypeError(f"{cls.__name__} got {', '.join(both)} both by position and by name")
        kwargs.update(zip(order, args))
        settings = {k: kwargs.pop(k) for k in list(kwargs) if k in cls.CELL.settings}
        unknown = sorted(set(kwargs) - set(order))
        if unknown:
            extra = f" and settings {', '.join(cls.CELL.settings)}" if cls.CELL.settings else ""
            raise TypeError(f"{cls.__name__} has no parameter {', '.join(unknown)}: its parameters are "
                            f"{', '.join(order)}{extra}, and head")
        if head is not None and (not isinstance(head, str) or head not in HEADS):
            raise ValueError(f"unknown head {show(head)}: expected one of {', '.join(HEADS)}, or None for a "
                             "layer of a bptt.Stack")
        put = object.__setattr__
        put(self, "cell", cls.CELL(**settings))
        put(self, "head", head)
        self._setup(kwargs)

    def _setup(self, given):
        name = type(self).__name__
        declared = {**self.cell.params, **(HEAD_PARAMS if self.head is not None else {})}
        if self.head is None:
            extra = sorted(k for k in HEAD_PARAMS if given.get(k) is not None)
            if extra:
                raise ValueError(f"a layer (head=None) has no head, so no {', '.join(extra)}: give the head to "
                                 "the bptt.Stack")
        arrays = {}
        for k, p in declared.items():
            v = given.get(k)
            if v is None:
                if not p.optional:
                    raise ValueError(f"{name} needs {k}, an array, got None")
                continue
            if isinstance(v, np.ma.MaskedArray):
                raise TypeError(f"{k} is a masked array: give a plain array (e.g. {k}.filled(0))")
            try:
                a = np.asarray(v)
            except (ValueError, TypeError):
                raise ValueError(f"{k} must be an array of real numbers, got a ragged sequence (rows of "
                                 "different lengths)") from None
            if a.dtype == object or not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)
                                         or a.dtype == bool):
                raise ValueError(f"{k} must be an array of real numbers, got dtype {a.dtype}")
            if a.ndim != len(p.shape):
                raise ValueError(f"{k} must have {len(p.shape)} dimension(s), got shape {a.shape}")
            arrays[k] = a
        dtype = np.result_type(*[a.dtype for a in arrays.values()])
        if not np.issubdtype(dtype, np.floating) or dtype == np.float16:
            dtype = np.dtype(np.float64)
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"the weights must be float32 or float64 (or integers), got {dtype}")
        H, src = _hidden(self.cell, arrays, name)
        D = next((a.shape[i] for k, a in arrays.items() if k in self.cell.params
                  for i, s in enumerate(self.cell.params[k].shape) if s == "D"), 0)
        O = arrays["V"].shape[0] if "V" in arrays else 0
        if H == 0 or (O == 0 and self.head is not None) or (D == 0 and any("D" in p.shape for p in self.cell.params.values())):
            raise ValueError(f"every dimension must be at least 1, got H={H}, D={D}, O={O}")
        for k, a in arrays.items():
            want = _shape(declared[k], D, H, O, self.cell)
            if a.shape != want:
                raise ValueError(f"{k} must have shape {want} (H = {H} from {src}), got {a.shape}")
            a = np.array(a, dtype=dtype, copy=True)
            a.flags.writeable = False
            arrays[k] = a
        self.cell.check_params(arrays)
        order = signature(type(self).CELL)
        put = object.__setattr__
        put(self, "params", {k: arrays[k] for k in order if k in arrays})  # a layer's: the cell's alone
        put(self, "H", H)
        put(self, "D", D)
        put(self, "O", O)
        put(self, "dtype", np.dtype(dtype))
        put(self, "_nonfinite", _first_nonfinite(self.params))

    def __getattr__(self, name):
        """A parameter by name (None for an optional one the model leaves out), or a cell setting."""
        if name.startswith("_") or name in ("params", "cell", "head"):
            raise AttributeError(name)
        if name in self.params:
            return self.params[name]
        if name in self.cell.params or name in HEAD_PARAMS:
            return None
        if name in self.cell.values:
            return self.cell.values[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __setattr__(self, name, value):
        raise AttributeError(f"a model is read-only: use model.replace({name}=...) for a new one")

    @property
    def state_sizes(self) -> tuple:
        """The widths of the cell's state entries: (H,) for Elman, (H, H) for an LSTM's (h, c)."""
        return self.cell.state_sizes(self.H)

    @property
    def settings(self) -> dict:
        """The cell's settings and the head: what a model file keeps besides the arrays."""
        return {**self.cell.values, "head": self.head}

    def check_finite(self) -> None:
        """Raise a ValueError naming the first NaN or Inf weight (forward calls this on every run).

        The arrays are read-only copies, so whether they are finite is found once, at construction.
        """
        if self._nonfinite is not None:
            _finite(self._nonfinite, self.params[self._nonfinite])

    def replace(self, **changes):
        """A new model with some parameters or settings changed: model.replace(W=2 * model.W)
        (None leaves out an optional parameter)."""
        same = self._same_form(changes)
        if same is not None:
            return same
        return type(self)(**{**self.params, **self.settings, **changes})

    def _same_form(self, changes):
        """replace's shortcut, or None: where every change is a plain array of the shape and dtype of
        a parameter the model has (a training step's), none of the constructor's checks of kinds,
        shapes and sizes can fail and H, D, O and the dtype stay, so only the copies, the cell's own
        check and the finite test are left. The same model as the constructor would make."""
        params = self.params
        for k, v in changes.items():
            old = params.get(k)
            if old is None or type(v) is not np.ndarray or v.shape != old.shape or v.dtype != old.dtype:
                return None
        new = object.__new__(type(self))
        put = object.__setattr__
        put(new, "cell", type(self).CELL(**self.cell.values))
        put(new, "head", self.head)
        arrays = {}
        for k in {**self.cell.params, **HEAD_PARAMS}:  # the constructor's order, for check_params
            if k in changes:
                a = np.array(changes[k], copy=True)  # order "K", as the constructor's copy
                a.flags.writeable = False
                arrays[k] = a
            elif k in params:
                arrays[k] = params[k]  # read-only already, and the model's own
        new.cell.check_params(arrays)
        put(new, "params", {k: arrays[k] for k in params})
        for k in ("H", "D", "O", "dtype"):
            put(new, k, self.__dict__[k])
        put(new, "_nonfinite", _first_nonfinite(new.params))
        return new

    def astype(self, dtype):
        return self.replace(**{k: v.astype(dtype) for k, v in self.params.items()})

    def __repr__(self):
        optional = [k for k, p in {**self.cell.params, **HEAD_PARAMS}.items() if p.optional and k in self.params]
        extra = "".join(f", {k}={v!r}" for k, v in self.settings.items())
        return (f"{type(self).__name__}(H={self.H}, D={self.D}, O={self.O}{extra}, "
                f"biases={'+'.join(optional) or 'none'}, dtype={self.dtype})")

    def _repr_html_(self):
        """The model in a notebook: each parameter's shape, norm, range and (when small) entries."""
        from .display import model_html
        return model_html(self)

    # files ---------------------------------------------------------------------------
    def save(self, path) -> None:
        """Write the model to an .npz file (arrays + JSON metadata, no pickles), atomically: a killed
        process leaves the old file or the new one."""
        from .files import write_atomic

        meta = json.dumps({"format": FORMAT, "cell": self.cell.name, **self.settings})
        write_atomic(Path(path), lambda f: np.savez(f, meta=np.array(meta), **self.params))

    @classmethod
    def load(cls, path):
        """Read a model written by `save` (loaded with allow_pickle=False); Model.load reads any
        registered cell's model, a cell's class only its own."""
        from .validate import read_npz, show

        arrays = read_npz(path, "model file")
        if "meta" not in arrays:
            raise ValueError(f"{path} is not a bptt model file: it lacks the array 'meta'")
        meta_arr = arrays.pop("meta")
        if meta_arr.shape != () or meta_arr.dtype.kind != "U":
            raise ValueError(f"{path}: 'meta' must be a JSON string, got an array of shape {meta_arr.shape}, "
                             f"dtype {meta_arr.dtype}")
        try:
            meta = json.loads(str(meta_arr))
        except (ValueError, RecursionError) as e:
            raise ValueError(f"{path}: 'meta' is not valid JSON ({str(e)[:80]})") from None
        if not isinstance(meta, dict):
            raise ValueError(f"{path}: 'meta' must be a JSON object, got {show(meta)}")
        cell = _cell_of(meta, path)
        want = model_class(cell)
        if cls is not Model and want is not cls:
            raise ValueError(f"{path} holds a {want.__name__} model, not a {cls.__name__}")
        unknown = sorted(set(arrays) - set(signature(cell)))
        if unknown:
            raise ValueError(f"{path} has arrays {', '.join(unknown)} that a {want.__name__} model does not have")
        missing = [k for k, p in {**cell.params, **HEAD_PARAMS}.items() if not p.optional and k not in arrays]
        if missing:
            raise ValueError(f"{path} is not a complete model file: it lacks the array(s) {', '.join(missing)}")
        settings = {k: v for k, v in meta.items() if k in cell.settings or k == "head"}
        for k, v in settings.items():
            if not isinstance(v, (str, bool, int, float)) or isinstance(v, float) and not np.isfinite(v):
                raise ValueError(f"{path}: meta {show(k)} must be a string, a number or true/false, got {show(v)}")
        return want(**arrays, **settings)


def _cell_of(meta, path):
    """The registered cell a model file's meta names: "cell" (format 2), or the model kind of
    format 1 ("bptt.RNN/1")."""
    from .validate import show

    fmt = meta.pop("format", "bptt.RNN/1")
    if fmt == FORMAT:
        name = meta.pop("cell", None)
        try:
            return cells.get(name)
        except ValueError:
            raise ValueError(f"{path} holds a model of the cell {show(name)}, which is not registered: "
                             f"register it with bptt.cells.register before loading (registered: "
                             f"{', '.join(cells.names())})") from None
    kind = str(fmt).split("/")[0].removeprefix("bptt.")[:40]
    found = [c for c in map(cells.get, cells.names()) if c.model == kind]
    if not found:
        raise ValueError(f"{path} holds a model of unknown kind {show(kind)}: expected one of "
                         f"{', '.join(cells.get(n).model for n in cells.names())}")
    return found[0]


def _hidden(cell, arrays, name):
    """(H, the parameter it is read from): the recurrent parameter's last plain H axis (W's columns),
    else the first parameter's with a plain H axis, else the first one's kH axis divided by k (a
    minGRU's U, 2H rows); checks that parameter's own H axes."""
    def has_h(k, plain):
        return k in arrays and k in cell.params and any(s == "H" if plain else s.endswith("H")
                                                        for s in cell.params[k].shape)
    ordered = sorted((k for k in cell.params if has_h(k, True)), key=lambda k: cell.params[k].role != "recurrent") \
        or [k for k in cell.params if has_h(k, False)]
    if not ordered:
        raise ValueError(f"{name} needs {', '.join(k for k in cell.params if any(s.endswith('H') for s in cell.params[k].shape))}")
    src = ordered[0]
    p, a = cell.params[src], arrays[src]
    j = next(i for i in range(len(p.shape) - 1, -1, -1) if p.shape[i].endswith("H") and
             (p.shape[i] == "H" or "H" not in p.shape))
    k = int(p.shape[j][:-1] or 1)
    if a.shape[j] % k:
        raise ValueError(f"{src} must have {p.shape[j][:-1]} H rows ({cell.label or cell.name}: {len(cell.gates)} "
                         f"blocks stacked), got shape {a.shape}")
    H = a.shape[j] // k
    for size, s in zip(a.shape, p.shape):
        if s.endswith("H") and size != int(s[:-1] or 1) * H:
            rows = ", ".join(f"{s[:-1]} H = {int(s[:-1]) * H}" if s[:-1] else s for s in p.shape)
            stacked = f" ({cell.label or cell.name}: {len(cell.gates)} gates stacked)" if cell.gates else ""
            raise ValueError(f"{src} must be ({rows}){stacked}, got {a.shape}")
    return H, src


def _shape(p, D, H, O, cell) -> tuple:
    """A declared shape in numbers; the head's "O" and "out" (the columns V reads, cell.out(H))."""
    return tuple(O if s == "O" else cell.out(H) if s == "out" else cells.sizes((s,), D, H)[0] for s in p.shape)


def signature(cell) -> tuple:
    """The parameters of a cell's model in positional order: required ones, V, optional ones, c."""
    required = [k for k, p in cell.params.items() if not p.optional]
    optional = [k for k, p in cell.params.items() if p.optional]
    return tuple(required + ["V"] + optional + ["c"])


_CLASSES: dict = {}


def model_class(cell) -> type:
    """The model class of a cell (a registered name or a Cell subclass): bptt.RNN for "rnn"."""
    if isinstance(cell, str):
        cell = cells.get(cell)
    got = _CLASSES.get(cell)
    if got is None:
        got = _CLASSES[cell] = type(cell.model, (Model,), {
            "CELL": cell, "__module__": "bptt",
            "__doc__": f"A model of the {cell.name} cell: {((cell.__doc__ or '').strip() or cell.name).splitlines()[0]}\n\n"
                       f"Parameters ({', '.join(signature(cell))}), settings "
                       f"({', '.join(f'{k}={v!r}' for k, v in cell.settings.items()) or 'none'}) and head "
                       f"by keyword; see bptt.Model."})
    return got


RNN = model_class("rnn")


# --- random models -----------------------------------------------------------------------
def _sizes(hidden, inputs, outputs, cell):
    """(H, D, O) as ints >= 1, within the element limit of bptt.validate.max_elements()."""
    from .validate import too_big

    for name, n in (("hidden", hidden), ("inputs", inputs), ("outputs", outputs)):
        if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"{name} must be a positive integer, got {show(n)}")
    H, D, O = int(hidden), int(inputs), int(outputs)
    count = sum(int(np.prod(cells.sizes(p.shape, D, H))) for p in cell.params.values()) + O * (cell.out(H) + 1)
    too_big(f"a model with H = {H}, D = {D}, O = {O}", count)
    return H, D, O


def random_model(cell, hidden, inputs, outputs, *, seed, head="softmax", dtype=np.float64, **init):
    """A random model of any registered cell with H=hidden, D=inputs, O=outputs.

    cell: a registered name ("rnn", "lstm", "gru", ...; bptt.cells.names()) or alias. init: the
    cell's settings (e.g. activation="relu", reset_after=False) and the options of its init (e.g.
    std, bias, radius, forget_bias; see the cell's init). seed: an int or an np.random.Generator
    (required: randomness is never global).
    """
    cls, alias = cells.resolve(cell)
    settings = {**alias, **{k: init.pop(k) for k in list(init) if k in cls.settings}}
    cell_ = cls(**settings)  # checks the settings before anything is drawn
    H, D, O = _sizes(hidden, inputs, outputs, cell_)
    unknown = sorted(set(init) - set(cls.options()))
    if unknown:
        raise ValueError(f"the {cls.name} cell has no option {', '.join(unknown)}: a random {cls.name} model takes "
                         f"{', '.join(cls.options())}")
    params = cell_.init(validate_rng(seed), D, H, O, **init)
    return model_class(cls)(**params, **settings, head=head).astype(dtype)


def random_rnn(hidden, inputs, outputs, *, seed, init="uniform", std=None, radius=None,
               bias=False, activation="tanh", head="softmax", dtype=np.float64):
    """A random Elman model H=hidden, D=inputs, O=outputs: random_model("rnn", ...).

    init picks W: "uniform" (+-1/sqrt(H)), "normal" (std), "orthogonal", or "identity" (IRNN).
    U and V are Gaussian with `std` when std is given, else uniform +-1/sqrt(fan-in).
    radius rescales W to that spectral radius. Biases, when asked for, start at zero.
    seed: an int or an np.random.Generator (required: randomness is never global).
    """
    return random_model("rnn", hidden, inputs, outputs, seed=seed, init=init, std=std, radius=radius, bias=bias,
                        activation=activation, head=head, dtype=dtype)


def random_gated(cell, hidden, inputs, outputs, *, seed, std=None, bias=True, forget_bias=0.0,
                 reset_after=True, head="softmax", dtype=np.float64):
    """A random gated model, random_model(cell, ...) for a cell with gates, with PyTorch's
    initialisation (every weight and bias uniform on +-1/sqrt(H)) or Gaussian with `std`.
    bias=False leaves b, bh and c out. forget_bias: added to the forget gate's rows of b (a cell
    whose init takes it). reset_after: for a cell with that setting. seed: an int or a Generator.
    """
    cls, _ = cells.resolve(cell)
    if not cls.gates:
        gated = [n for n in cells.names() if cells.get(n).gates]
        raise ValueError(f"unknown cell {show(cell)}: expected one of {', '.join(gated)}")
    init = {"forget_bias": forget_bias} if forget_bias or "forget_bias" in cls.options() else {}
    if "reset_after" in cls.settings:
        init["reset_after"] = reset_after
    return random_model(cell, hidden, inputs, outputs, seed=seed, std=std, bias=bias, head=head, dtype=dtype, **init)


def seed_example():
    """The notebook's model and sequence: (model, x, y) with x = ids [1, 0, 2], y = ids [0, 2, 1].

    U, V, W are the notebook's arrays (in float64); H = 2 hidden units, D = O = 3 words.
    """
    U = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])
    V = np.array([[0.2, 0.3], [0.5, 0.6], [0.7, 0.8]])
    W = np.array([[0.4, 0.5], [0.1, 0.2]])
    return RNN(U=U, W=W, V=V), np.array([1, 0, 2]), np.array([0, 2, 1])
