"""The Elman RNN of the notebook, its initialisers, and the checks on inputs and targets.

The notebook's names, kept everywhere in bptt (N batch, T time, D input, H hidden, O output):

    z_t = U x_t + W s_{t-1} + b        U (H, D), W (H, H), b (H,) optional
    s_t = f(z_t)                       f in tanh, relu, sigmoid, identity; s_{-1} = h0 (zeros by default)
    q_t = V s_t + c                    V (O, H), c (O,) optional
    o_t = softmax(q_t)
    E   = sum_t E_t                    E_t = -log o_t[y_t]    (head "softmax", targets are ids)
                                       E_t = ||q_t - y_t||^2  (head "mse", real-valued targets)

The same weights under other names:
    min-char-rnn      Wxh = U, Whh = W, Why = V, bh = b, by = c (column vectors)
    PyTorch nn.RNN    weight_ih_l0 = U, weight_hh_l0 = W, bias_ih_l0 + bias_hh_l0 = b;
                      nn.Linear head: weight = V, bias = c
    Keras SimpleRNN   kernel = U.T, recurrent_kernel = W.T, bias = b; Dense head: kernel = V.T, bias = c
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
import numpy as np

from . import activations, cells

HEADS = ("softmax", "mse")
PARAMS = ("U", "W", "V", "b", "c")  # the Elman model's


def _finite(name: str, a: np.ndarray) -> None:
    if not np.all(np.isfinite(a)):
        bad = np.argwhere(~np.isfinite(a))[0]
        where = f" at index {tuple(int(i) for i in bad)}" if a.ndim else ""
        raise ValueError(f"{name} must be finite, but it holds {a[tuple(bad)]}{where}")


class Model:
    """What the models share: their arrays checked and frozen, sizes, params, files.

    A model holds its cell's weights (U: input, W: recurrent, b: input bias, and bh: the recurrent
    bias of a gated cell), the linear head V, c, and the head's loss. A cell with G gates stacks
    their rows: U (G H, D), W (G H, H), b and bh (G H,), in PyTorch's gate order.
    """

    PARAMS: tuple = ()
    GATES = 1

    def _setup(self, cell):
        object.__setattr__(self, "cell", cell)
        name = type(self).__name__
        if self.head not in HEADS:
            raise ValueError(f"unknown head {self.head!r}: expected one of {', '.join(HEADS)}")
        arrays = {}
        for k in self.PARAMS:
            v = getattr(self, k)
            if v is None:
                if k in ("U", "W", "V"):
                    raise ValueError(f"{name} needs {k}, an array, got None")
                continue
            try:
                a = np.asarray(v)
            except (ValueError, TypeError):
                raise ValueError(f"{k} must be an array of real numbers, got a ragged sequence (rows of "
                                 "different lengths)") from None
            if a.dtype == object or not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)
                                         or a.dtype == bool):
                raise ValueError(f"{k} must be an array of real numbers, got dtype {a.dtype}")
            arrays[k] = a
        dtype = np.result_type(*[a.dtype for a in arrays.values()])
        if not np.issubdtype(dtype, np.floating) or dtype == np.float16:
            dtype = np.dtype(np.float64)
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"the weights must be float32 or float64 (or integers), got {dtype}")
        for k, a in arrays.items():
            want = 1 if k in ("b", "bh", "c") else 2
            if a.ndim != want:
                raise ValueError(f"{k} must have {want} dimension(s), got shape {a.shape}")
        G = self.GATES
        GH, H = arrays["W"].shape
        D, O = arrays["U"].shape[1], arrays["V"].shape[0]
        rows = f"{G} H = {G * H}" if G > 1 else "H"
        if GH != G * H:
            gates = f" (the {name}'s {G} gates stacked)" if G > 1 else ""
            raise ValueError(f"W must be ({rows}, H){gates}, got {arrays['W'].shape}")
        if H == 0 or D == 0 or O == 0:
            raise ValueError(f"every dimension must be at least 1, got H={H}, D={D}, O={O}")
        shapes = {"U": (G * H, D), "W": (G * H, H), "V": (O, H), "b": (G * H,), "bh": (G * H,), "c": (O,)}
        for k, a in arrays.items():
            if a.shape != shapes[k]:
                raise ValueError(f"{k} must have shape {shapes[k]} (H = {H} from W), got {a.shape}")
            a = np.array(a, dtype=dtype, copy=True)
            a.flags.writeable = False
            object.__setattr__(self, k, a)
        nonfinite = [k for k in self.PARAMS if k in arrays and not np.isfinite(getattr(self, k)).all()]
        object.__setattr__(self, "_nonfinite", nonfinite[0] if nonfinite else None)

    # sizes ---------------------------------------------------------------------------
    @property
    def H(self) -> int:
        return self.W.shape[1]

    @property
    def D(self) -> int:
        return self.U.shape[1]

    @property
    def O(self) -> int:  # noqa: E743 (the notebook's letter)
        return self.V.shape[0]

    @property
    def dtype(self) -> np.dtype:
        return self.W.dtype

    @property
    def params(self) -> dict[str, np.ndarray]:
        """The parameters this model has, by name (None biases left out)."""
        return {k: getattr(self, k) for k in self.PARAMS if getattr(self, k) is not None}

    def check_finite(self) -> None:
        """Raise a ValueError naming the first NaN or Inf weight (forward calls this on every run).

        The arrays are read-only copies, so whether they are finite is found once, at construction.
        """
        if self._nonfinite is not None:
            _finite(self._nonfinite, getattr(self, self._nonfinite))

    def replace(self, **changes):
        """A new model with some fields changed: model.replace(W=2 * model.W)."""
        return dataclasses.replace(self, **changes)

    def astype(self, dtype):
        return self.replace(**{k: v.astype(dtype) for k, v in self.params.items()})

    def _settings(self) -> dict:
        return {"head": self.head}

    def __repr__(self):
        bias = "+".join(k for k in self.PARAMS if k in ("b", "bh", "c") and getattr(self, k) is not None) or "none"
        extra = "".join(f", {k}={v!r}" for k, v in self._settings().items())
        return f"{type(self).__name__}(H={self.H}, D={self.D}, O={self.O}{extra}, biases={bias}, dtype={self.dtype})"

    def _repr_html_(self):
        """The model in a notebook: each parameter's shape, norm, range and (when small) entries."""
        from .display import model_html
        return model_html(self)

    # files ---------------------------------------------------------------------------
    def save(self, path) -> None:
        """Write the model to an .npz file (arrays + JSON metadata, no pickles)."""
        meta = json.dumps({**self._settings(), "format": f"bptt.{type(self).__name__}/1"})
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, meta=np.array(meta), **self.params)
        tmp.replace(path)

    @classmethod
    def load(cls, path):
        """Read a model written by `save` (loaded with allow_pickle=False); Model.load reads any kind."""
        from .validate import read_npz, show

        arrays = read_npz(path, "model file")
        if "meta" not in arrays or "U" not in arrays:
            raise ValueError(f"{path} is not a bptt model file: it lacks the arrays 'meta' and 'U'")
        meta_arr = arrays.pop("meta")
        if meta_arr.shape != () or meta_arr.dtype.kind != "U":
            raise ValueError(f"{path}: 'meta' must be a JSON string, got an array of shape {meta_arr.shape}, "
                             f"dtype {meta_arr.dtype}")
        try:
            meta = json.loads(str(meta_arr))
        except ValueError as e:
            raise ValueError(f"{path}: 'meta' is not valid JSON ({e})") from None
        if not isinstance(meta, dict):
            raise ValueError(f"{path}: 'meta' must be a JSON object, got {show(meta)}")
        missing = [k for k in ("W", "V") if k not in arrays]
        if missing:
            raise ValueError(f"{path} is not a complete model file: it lacks the array(s) {', '.join(missing)}")
        kind = str(meta.pop("format", "bptt.RNN/1")).split("/")[0].removeprefix("bptt.")[:40]
        kinds = {k.__name__: k for k in (RNN, LSTM, GRU)}
        if kind not in kinds:
            raise ValueError(f"{path} holds a model of unknown kind {kind!r}: expected one of {', '.join(kinds)}")
        if cls is not Model and kinds[kind] is not cls:
            raise ValueError(f"{path} holds a {kind} model, not a {cls.__name__}: read it with bptt.Model.load")
        want = kinds[kind]
        unknown = sorted(set(arrays) - set(want.PARAMS))
        if unknown:
            raise ValueError(f"{path} has arrays {', '.join(unknown)} that a {kind} model does not have")
        settings = {k: v for k, v in meta.items() if k in ("activation", "head", "reset_after")}
        for k, v in settings.items():
            if not isinstance(v, (str, bool)):
                raise ValueError(f"{path}: meta {k!r} must be a string or true/false, got {show(v)}")
        return want(**arrays, **settings)


@dataclass(frozen=True, eq=False, repr=False)
class RNN(Model):
    """An Elman RNN: U (H, D), W (H, H), V (O, H), optional biases b (H,) and c (O,).

    The dtype follows the arrays (float32 stays float32; integers become float64).
    Arrays are copied and made read-only, so a model never changes under a caller.
    """

    U: np.ndarray
    W: np.ndarray
    V: np.ndarray
    b: np.ndarray | None = None
    c: np.ndarray | None = None
    activation: str = "tanh"
    head: str = "softmax"
    PARAMS = PARAMS

    def __post_init__(self):
        self._setup(cells.Elman(self.activation))  # checks the activation

    def _settings(self):
        return {"activation": self.activation, "head": self.head}


@dataclass(frozen=True, eq=False, repr=False)
class LSTM(Model):
    """A long short-term memory network with a linear head, PyTorch's nn.LSTM + nn.Linear:
    U (4H, D) = weight_ih, W (4H, H) = weight_hh, b (4H,) = bias_ih, bh (4H,) = bias_hh (both
    optional), rows in the gate order i, f, g, o; V (O, H), c (O,). State (h, c); h0 may be (h0, c0).
    """

    U: np.ndarray
    W: np.ndarray
    V: np.ndarray
    b: np.ndarray | None = None
    bh: np.ndarray | None = None
    c: np.ndarray | None = None
    head: str = "softmax"
    PARAMS = ("U", "W", "V", "b", "bh", "c")
    GATES = 4

    def __post_init__(self):
        self._setup(cells.LSTM())


@dataclass(frozen=True, eq=False, repr=False)
class GRU(Model):
    """A gated recurrent unit network with a linear head, PyTorch's nn.GRU + nn.Linear: U (3H, D) =
    weight_ih, W (3H, H) = weight_hh, b (3H,) = bias_ih, bh (3H,) = bias_hh (both optional), rows in
    the gate order r, z, n; V (O, H), c (O,). reset_after=False is Keras's other form, where the
    reset gate multiplies the state before W_n (see bptt.cells).
    """

    U: np.ndarray
    W: np.ndarray
    V: np.ndarray
    b: np.ndarray | None = None
    bh: np.ndarray | None = None
    c: np.ndarray | None = None
    head: str = "softmax"
    reset_after: bool = True
    PARAMS = ("U", "W", "V", "b", "bh", "c")
    GATES = 3

    def __post_init__(self):
        if not isinstance(self.reset_after, (bool, np.bool_)):
            raise ValueError(f"reset_after must be True or False, got {self.reset_after!r}")
        self._setup(cells.GRU(bool(self.reset_after)))

    def _settings(self):
        return {"head": self.head, "reset_after": bool(self.reset_after)}


# --- initialisers ----------------------------------------------------------------------
def uniform(shape, *, seed) -> np.ndarray:
    """Uniform on [-1/sqrt(n), 1/sqrt(n)], n = shape[-1] (the fan-in; the notebook's source)."""
    n = shape[-1]
    return np.random.default_rng(seed).uniform(-1 / np.sqrt(n), 1 / np.sqrt(n), shape)


def normal(shape, std, *, seed) -> np.ndarray:
    """Gaussian with mean 0 and standard deviation std (min-char-rnn uses std = 0.01)."""
    return np.random.default_rng(seed).normal(0.0, std, shape)


def orthogonal(n, *, seed, gain=1.0) -> np.ndarray:
    """A random (n, n) orthogonal matrix (QR of a Gaussian, signs fixed so it is Haar-distributed)."""
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(n, n)))
    return gain * q * np.sign(np.diag(r))


def identity(n, gain=1.0) -> np.ndarray:
    """gain * I: the IRNN initialisation of Le, Jaitly & Hinton (2015), used with relu."""
    return gain * np.eye(n)


def spectral_radius(W) -> float:
    """rho(W) = max |eigenvalue of W|."""
    return float(np.max(np.abs(np.linalg.eigvals(np.asarray(W, dtype=np.float64)))))


def with_spectral_radius(W, rho) -> np.ndarray:
    """W rescaled so that its spectral radius is rho."""
    r = spectral_radius(W)
    if r == 0:
        raise ValueError("cannot rescale W to a spectral radius: all its eigenvalues are 0")
    return np.asarray(W) * (rho / r)


INITS = ("uniform", "normal", "orthogonal", "identity")


def _sizes(hidden, inputs, outputs, G):
    """(H, D, O) as ints >= 1, within the element limit of bptt.validate.max_elements()."""
    from .validate import too_big

    for name, n in (("hidden", hidden), ("inputs", inputs), ("outputs", outputs)):
        if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"{name} must be a positive integer, got {n!r}")
    H, D, O = int(hidden), int(inputs), int(outputs)
    too_big(f"a model with H = {H}, D = {D}, O = {O}", G * H * (H + D + 2) + O * (H + 1))
    return H, D, O


def random_rnn(hidden, inputs, outputs, *, seed, init="uniform", std=None, radius=None,
               bias=False, activation="tanh", head="softmax", dtype=np.float64) -> RNN:
    """A random model H=hidden, D=inputs, O=outputs.

    init picks W: "uniform" (+-1/sqrt(H)), "normal" (std), "orthogonal", or "identity" (IRNN).
    U and V are Gaussian with `std` when std is given, else uniform +-1/sqrt(fan-in).
    radius rescales W to that spectral radius. Biases, when asked for, start at zero.
    seed: an int or an np.random.Generator (required: randomness is never global).
    """
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}: expected one of {', '.join(INITS)}")
    if init == "normal" and std is None:
        raise ValueError("init='normal' needs std, the standard deviation of the weights")
    H, D, O = _sizes(hidden, inputs, outputs, 1)
    for name, v in (("std", std), ("radius", radius)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating))
                              or not np.isfinite(v) or v < 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
    rng = np.random.default_rng(seed)
    side = (lambda shape: normal(shape, std, seed=rng)) if std is not None else (lambda shape: uniform(shape, seed=rng))
    U, V = side((H, D)), side((O, H))
    W = {"uniform": lambda: uniform((H, H), seed=rng), "normal": lambda: normal((H, H), std, seed=rng),
         "orthogonal": lambda: orthogonal(H, seed=rng), "identity": lambda: identity(H)}[init]()
    if radius is not None:
        W = with_spectral_radius(W, radius)
    b, c = (np.zeros(H), np.zeros(O)) if bias else (None, None)
    return RNN(U=U, W=W, V=V, b=b, c=c, activation=activation, head=head).astype(dtype)


def random_gated(cell, hidden, inputs, outputs, *, seed, std=None, bias=True, forget_bias=0.0,
                 reset_after=True, head="softmax", dtype=np.float64):
    """A random LSTM (cell="lstm") or GRU (cell="gru") with H=hidden, D=inputs, O=outputs.

    Every weight and bias uniform on +-1/sqrt(H), PyTorch's initialisation of nn.LSTM and nn.GRU
    (the head V, c: +-1/sqrt(H) too), or Gaussian with `std` when given. bias=False leaves b, bh
    and c out. forget_bias (LSTM): added to the forget gate's rows of b, e.g. 1.0 (Gers et al.
    2000; Jozefowicz et al. 2015), so the cell starts by keeping its memory.
    seed: an int or an np.random.Generator.
    """
    kinds = {"lstm": LSTM, "gru": GRU}
    if cell not in kinds:
        raise ValueError(f"unknown cell {cell!r}: expected one of {', '.join(kinds)}")
    _sizes(hidden, inputs, outputs, kinds[cell].GATES)
    if std is not None and (isinstance(std, bool) or not isinstance(std, (int, float, np.integer, np.floating))
                            or not np.isfinite(std) or std < 0):
        raise ValueError(f"std must be a finite number >= 0, got {std!r}")
    if isinstance(forget_bias, bool) or not isinstance(forget_bias, (int, float, np.integer, np.floating)) \
            or not np.isfinite(forget_bias) or (forget_bias != 0 and cell != "lstm"):
        raise ValueError(f"forget_bias must be a finite number, for an LSTM, got {forget_bias!r} for {cell}")
    rng = np.random.default_rng(seed)
    H, D, O, G = int(hidden), int(inputs), int(outputs), kinds[cell].GATES
    k = 1 / np.sqrt(H)
    draw = (lambda shape: rng.normal(0.0, std, shape)) if std is not None else (lambda shape: rng.uniform(-k, k, shape))
    U, W, V = draw((G * H, D)), draw((G * H, H)), draw((O, H))
    b, bh, c = (draw((G * H,)), draw((G * H,)), draw((O,))) if bias else (None, None, None)
    if forget_bias:
        b = np.zeros(G * H) if b is None else b
        b[H:2 * H] += forget_bias  # rows of the forget gate (order i, f, g, o)
    settings = {"reset_after": reset_after} if cell == "gru" else {}
    return kinds[cell](U=U, W=W, V=V, b=b, bh=bh, c=c, head=head, **settings).astype(dtype)


def seed_example():
    """The notebook's model and sequence: (model, x, y) with x = ids [1, 0, 2], y = ids [0, 2, 1].

    U, V, W are the notebook's arrays (in float64); H = 2 hidden units, D = O = 3 words.
    """
    U = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])
    V = np.array([[0.2, 0.3], [0.5, 0.6], [0.7, 0.8]])
    W = np.array([[0.4, 0.5], [0.1, 0.2]])
    return RNN(U=U, W=W, V=V), np.array([1, 0, 2]), np.array([0, 2, 1])
