"""Turning what a caller passes as x, y and h0 into checked arrays, or a ValueError in words.

Inputs x:   token ids, integers, (T,) or (N, T)          -> ids (N, T)
            dense vectors, floats, (T, D) or (N, T, D)    -> X (N, T, D) in the model's dtype
            Float one-hot rows are read as the ids they encode, so they give exactly the ids result. Integer rows that are
            all one-hot are refused: (3, 3) integers could be 3 sequences of ids or 3 one-hot
            steps, and guessing wrong gives a silent wrong number (the notebook's first error).
Targets y:  head "softmax": ids (T,) / (N, T), -1 = no loss at this step; or one-hot rows
            (T, O) / (N, T, O). Head "mse": values (T, O) / (N, T, O); a row of NaN = no loss.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Inputs(NamedTuple):
    ids: np.ndarray | None  # (N, T) int64, or None for dense inputs
    X: np.ndarray | None    # (N, T, D), or None for ids
    N: int
    T: int
    batched: bool


class Targets(NamedTuple):
    ids: np.ndarray | None     # (N, T) int64, -1 where unscored (softmax head)
    values: np.ndarray | None  # (N, T, O) (mse head), 0 where unscored
    mask: np.ndarray           # (N, T) bool, True where the step is scored


def integer(name: str, v, low=None, high=None) -> int:
    """v as an int: an integer (Python or NumPy, not a bool) or a float with a finite integral value,
    in low..high where given; anything else is a ValueError naming name, what is allowed and what came."""
    want = "an integer" + (f" in {low}..{high}" if low is not None and high is not None
                           else f" >= {low}" if low is not None else f" <= {high}" if high is not None else "")
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer, float, np.floating)):
        raise ValueError(f"{name} must be {want}, got {show(v)}")
    if isinstance(v, (float, np.floating)) and not (np.isfinite(v) and v == np.floor(v)):
        raise ValueError(f"{name} must be {want}, got {show(v)}")
    n = int(v)
    if (low is not None and n < low) or (high is not None and n > high):
        raise ValueError(f"{name} must be {want}, got {show(v)}")
    return n


def positive(name: str, v) -> float:
    """v as a float: a finite number > 0 (not a bool, not an array); else a ValueError naming name."""
    if (isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer, float, np.floating))
            or not np.isfinite(float(v)) or not v > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {show(v)}")
    return float(v)


def a_model(model, what="model"):
    """model when it is a bptt model (bptt.Model: RNN, LSTM, GRU, ...); else a TypeError naming what came.
    (A model's class has its cell as CELL; bptt.model is not imported here, which imports this module.)"""
    if getattr(type(model), "CELL", None) is None:
        if type(model).__name__ == "Stack" and type(model).__module__ == "bptt.stack":
            raise TypeError(f"{what} must be a one-layer bptt model here; a bptt.Stack is not taken by this function")
        raise TypeError(f"{what} must be a bptt model (bptt.Model: a registered cell's model, such as bptt.RNN), got "
                        f"{type(model).__name__} {show(model)}")
    return model


def a_network(model, what="model"):
    """model when it is a bptt model or a bptt.Stack of layers; else a TypeError naming what came."""
    if type(model).__name__ == "Stack" and type(model).__module__ == "bptt.stack":
        return model
    return a_model(model, what)


def rng(seed, what="seed"):
    """np.random.default_rng(seed), with a seed it refuses as a one-line error naming what."""
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError) as e:
        raise type(e)(f"{what} must be an integer >= 0, a sequence of them or an np.random.Generator, "
                      f"got {show(seed)}") from None


def not_masked(a, what):
    """A TypeError for a masked array (np.ma), whose mask every computation here would silently drop."""
    if isinstance(a, np.ma.MaskedArray):
        hint = " (for targets: -1, or a row of NaN for the mse head, means no loss)" if what == "y" else ""
        raise TypeError(f"{what} is a masked array (np.ma), whose mask would be ignored: pass {what}.filled(value) "
                        f"with the value the masked entries should take{hint}")


def _array(a, what):
    not_masked(a, what)
    try:
        arr = np.asarray(a)
    except ValueError as e:
        raise ValueError(f"{what} is ragged: every sequence must have the same length and every "
                         f"step the same size ({e})") from None
    if arr.dtype == object:
        raise ValueError(f"{what} is ragged or holds non-numbers: every sequence must have the "
                         "same length, every step the same size")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{what} must hold numbers, got dtype {arr.dtype}")
    if arr.size == 0:
        raise ValueError(f"{what} is empty (shape {arr.shape}): a sequence needs at least one step")
    return arr


def _first_bad(mask):
    return tuple(int(i) for i in np.argwhere(mask)[0])


def _is_one_hot(a):
    return bool(np.all((a == 0) | (a == 1)) and np.all(a.sum(-1) == 1))


def inputs(model, x) -> Inputs:
    D = a_network(model).D
    x = _array(x, "x")
    if x.ndim == 0:
        raise ValueError(f"x must be a sequence: token ids (T,) / (N, T) or dense vectors (T, D) / (N, T, D) "
                         f"with D = {D}, got the single number {show(x.item())}")
    if x.dtype.kind == "b":
        raise ValueError("x is boolean: pass token ids as integers or dense vectors as floats")
    if x.dtype.kind in "iu":
        if x.ndim == 2 and x.shape[-1] == D and _is_one_hot(x):
            raise ValueError(
                f"x is an integer array of shape {x.shape} whose rows are all one-hot: it could be "
                f"{x.shape[0]} sequences of token ids or one sequence of one-hot steps. Pass token ids "
                f"(x.argmax(-1) = {x.argmax(-1).tolist()}) or one-hot rows as floats (np.asarray(x, float))")
        if x.ndim not in (1, 2):
            raise ValueError(f"token ids must have shape (T,) or (N, T), got shape {x.shape}")
        # two reductions (x.min() and x.max() less their wrappers); the mask only to name the culprit
        if np.minimum.reduce(x, axis=None) < 0 or np.maximum.reduce(x, axis=None) >= D:
            pos = _first_bad((x < 0) | (x >= D))
            raise ValueError(f"token id {int(x[pos])} at position {pos if len(pos) > 1 else pos[0]} is out of "
                             f"range: the model has D = {D} inputs, so ids must lie in 0..{D - 1}")
        ids = np.asarray(x, dtype=np.int64).reshape(-1, x.shape[-1])
        return Inputs(ids, None, ids.shape[0], ids.shape[1], x.ndim == 2)
    # floats: dense vectors
    dense_shape = f"dense inputs must have shape (T, D) or (N, T, D) with D = {D} (from U)"
    if x.ndim == 1 or x.shape[-1] != D or x.ndim > 3:
        integral = np.all(np.isfinite(x)) and np.all(x == np.round(x))
        if x.ndim in (1, 2) and not integral:
            pos = _first_bad(~np.isfinite(x) | (x != np.round(x)))
            raise ValueError(f"x holds the non-integer value {x[pos]} at position {pos if len(pos) > 1 else pos[0]}: "
                             f"token ids must be integers, and {dense_shape}")
        if x.ndim in (1, 2) and integral:
            raise ValueError(f"x is a float array of shape {x.shape}: token ids must be integers "
                             f"(np.asarray(x, dtype=int)), and {dense_shape}")
        raise ValueError(f"{dense_shape}, got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"x must be finite, but it holds {x[_first_bad(~np.isfinite(x))]} at {_first_bad(~np.isfinite(x))}")
    X = np.asarray(x, dtype=model.dtype).reshape(-1, x.shape[-2], D)
    if _is_one_hot(X):  # one-hot rows take the ids path, so both forms give bit-identical numbers
        return Inputs(X.argmax(-1), None, X.shape[0], X.shape[1], x.ndim == 3)
    return Inputs(None, X, X.shape[0], X.shape[1], x.ndim == 3)


def targets(model, y, xin: Inputs) -> Targets:
    N, T, O, batched = xin.N, xin.T, model.O, xin.batched
    y = _array(y, "y")
    lead = (N, T) if batched else (T,)
    if model.head == "mse":
        if y.shape != lead + (O,):
            raise ValueError(f"targets for the mse head must have shape {lead + (O,)} (x has "
                             f"{'N = %d sequences of ' % N if batched else ''}T = {T} steps, O = {O}), got {y.shape}")
        v = np.asarray(y, dtype=model.dtype).reshape(N, T, O)
        nan = np.isnan(v)
        partial = nan.any(-1) & ~nan.all(-1)
        if partial.any():
            raise ValueError(f"target row {_first_bad(partial)} is partly NaN: a row is either all NaN (no loss) or finite")
        if np.isinf(v).any():
            raise ValueError(f"targets must be finite (NaN rows mean no loss), got inf at {_first_bad(np.isinf(v))}")
        mask = ~nan.all(-1)
        return Targets(None, np.where(nan, 0, v), mask)
    if y.shape == lead + (O,):  # one-hot rows, the notebook's form
        if not _is_one_hot(y):
            raise ValueError(f"targets of shape {y.shape} are read as one-hot rows, but not every row is "
                             "one 1 and zeros elsewhere; pass target ids instead")
        return _ids(np.asarray(y).argmax(-1).reshape(N, T), O)
    if y.shape != lead:
        if y.ndim == len(lead) and y.shape[:-1] == lead[:-1]:
            raise ValueError(f"x and y have different lengths: x has {T} steps, y has {y.shape[-1]}")
        if y.shape[:len(lead)] == lead or y.ndim == len(lead):
            shape_words = f"(N, T) = {lead}" if batched else f"(T,) = {lead}"
            raise ValueError(f"targets must be ids of shape {shape_words} or one-hot rows of shape "
                             f"{lead + (O,)}, got {y.shape}")
        raise ValueError(f"x and y have different lengths: x has {T} steps, y has shape {y.shape}")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            bad = ~np.isfinite(y) | (y != np.round(y))
            raise ValueError(f"target ids must be integers, got {y[_first_bad(bad)]} at {_first_bad(bad)}")
    elif y.dtype.kind not in "iu":
        raise ValueError(f"target ids must be integers, got dtype {y.dtype}")
    _in_range(y.reshape(N, T), O)  # before the cast to int64, which wraps unsigned and huge values
    ids = np.asarray(y, dtype=np.int64).reshape(N, T)
    return Targets(ids, None, ids >= 0)  # in range: checked


def _in_range(y, O):
    """Target ids in -1..O-1, compared in their own dtype (no cast that could wrap them): two
    reductions, the mask only to name the culprit."""
    if (y.dtype.kind != "u" and np.minimum.reduce(y, axis=None) < -1) or np.maximum.reduce(y, axis=None) > O - 1:
        bad = (y < -1) | (y > O - 1) if y.dtype.kind != "u" else y > O - 1
        pos = _first_bad(bad)
        raise ValueError(f"target id {y[pos]} at position {pos} is out of range: the model has O = {O} "
                         f"outputs, so targets lie in 0..{O - 1} (or -1 for no loss at that step)")


def _ids(ids, O):
    if ids.min() < -1 or ids.max() >= O:
        pos = _first_bad((ids < -1) | (ids >= O))
        raise ValueError(f"target id {int(ids[pos])} at position {pos} is out of range: the model has O = {O} "
                         f"outputs, so targets lie in 0..{O - 1} (or -1 for no loss at that step)")
    return Targets(ids, None, ids >= 0)


def initial_state(model, h0, xin: Inputs, H=None) -> np.ndarray:
    """h0 as (N, H) in the model's dtype; zeros when h0 is None. H: the width of this entry of the
    state (model.H unless given)."""
    N, H = xin.N, model.H if H is None else H
    if h0 is None:
        return np.zeros((N, H), dtype=model.dtype)
    not_masked(h0, "h0")
    h = np.asarray(h0)
    want = (N, H) if xin.batched else (H,)
    if h.shape == (H,) and xin.batched:
        h = np.broadcast_to(h, (N, H))
    elif h.shape != want:
        raise ValueError(f"h0 must have shape {want} (H = {H}{', N = %d' % N if xin.batched else ''}), got {h.shape}")
    if h.dtype.kind not in "biuf" or not np.isfinite(h).all():
        raise ValueError("h0 must be a finite array of numbers")
    return np.array(h, dtype=model.dtype).reshape(N, H)


# --- files: .npz archives read with their sizes checked before anything is allocated ---------------
MAX_ELEMENTS_ENV = "BPTT_MAX_ELEMENTS"
MAX_ELEMENTS = 50_000_000  # 400 MB of float64; raised with the environment variable BPTT_MAX_ELEMENTS
MAX_MEMBERS = 1000


def max_elements() -> int:
    """The largest number of array elements a file, a config or a spec may ask for (BPTT_MAX_ELEMENTS)."""
    import os

    text = os.environ.get(MAX_ELEMENTS_ENV)
    if text is None:
        return MAX_ELEMENTS
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"the environment variable {MAX_ELEMENTS_ENV} must be a positive integer, got {show(text)}")
    return n


def too_big(what: str, n: int) -> None:
    """A ValueError when n elements exceed the limit, naming the limit and how to raise it."""
    limit = max_elements()
    if n > limit:
        raise ValueError(f"{what} asks for {n:,} array elements, more than the limit of {limit:,}; "
                         f"raise it with the environment variable {MAX_ELEMENTS_ENV} if the machine has the memory")


def show(v, width=60) -> str:
    """repr(v) on one line (an array's rows joined by spaces), cut to width characters, for messages
    about values that may be huge."""
    text = " ".join(repr(v).split())
    return text if len(text) <= width else text[:width - 3] + "..."


def _header(f, name, path):
    from numpy.lib import format as npformat

    version = npformat.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = npformat.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, fortran, dtype = npformat.read_array_header_2_0(f)
    else:
        raise ValueError(f"{path}: member {show(name)} has .npy format version {version}, expected 1.0 or 2.0")
    return shape, dtype


def read_npz(path, what: str) -> dict:
    """The arrays of an .npz file by name, read without pickles. Every member's .npy header is read
    first: an object dtype, a shape larger than its bytes, or more elements in all than
    max_elements() is a ValueError before any array is allocated. what: "model file", "checkpoint"."""
    import tokenize
    import zipfile
    import zlib

    from numpy.lib import format as npformat

    from .files import printable

    p = regular_file(path, f"a {what}")
    shown = printable(p)
    damaged = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError, SyntaxError,
               tokenize.TokenError, RecursionError, MemoryError)
    try:
        zf = zipfile.ZipFile(p)
    except zipfile.BadZipFile:
        with open(p, "rb") as f:
            start = f.read(6)
        kind = "an .npy array" if start == b"\x93NUMPY" else "a file that is not a zip archive"
        raise ValueError(f"{shown} is not a {what}: expected an .npz archive of .npy arrays, got {kind}") from None
    except damaged as e:
        raise ValueError(f"cannot read the {what} {shown}: {e}") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise ValueError(f"{shown} is not a {what}: it holds {len(infos)} members, expected at most {MAX_MEMBERS}")
        total = 0
        for info in infos:
            if not info.filename.endswith(".npy"):
                raise ValueError(f"{shown} is not a {what}: its member {show(info.filename)} is not an .npy array")
            if info.flag_bits & 0x1:
                raise ValueError(f"{shown} is not a {what}: its member {show(info.filename)} is encrypted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise ValueError(f"{shown} is not a {what}: its member {show(info.filename)} uses zip compression method "
                                 f"{info.compress_type}, expected stored (np.savez) or deflated (np.savez_compressed)")
            try:
                with zf.open(info) as f:
                    shape, dtype = _header(f, info.filename, p)
            except damaged as e:
                raise ValueError(f"{shown} is a damaged {what}: member {show(info.filename)}: {e}") from None
            if dtype.hasobject:
                raise ValueError(f"{shown}: member {show(info.filename)} holds Python objects (dtype {dtype}); "
                                 f"a {what} holds numbers and text only")
            n = int(np.prod(shape, dtype=object)) if shape else 1
            total += max(n, 1) * max(dtype.itemsize // 8, 1)
            too_big(f"{shown} (member {info.filename!r} of shape {shape})", total)
            if n * dtype.itemsize > info.file_size:
                raise ValueError(f"{shown} is a damaged {what}: member {show(info.filename)} declares shape {shape} of "
                                 f"{dtype} ({n * dtype.itemsize:,} bytes) but holds {info.file_size:,} bytes")
        arrays = {}
        for info in infos:
            try:
                with zf.open(info) as f:
                    arrays[info.filename[:-4]] = npformat.read_array(f, allow_pickle=False)
            except damaged as e:
                raise ValueError(f"{shown} is a damaged {what}: member {show(info.filename)}: {e}") from None
    meta = arrays.get("meta")
    if meta is not None and meta.dtype.kind == "U" and meta.shape == ():
        from .files import MAX_JSON_DEPTH, nesting
        if nesting(str(meta)) > MAX_JSON_DEPTH:  # read as JSON by its caller: refused before any recursion
            raise ValueError(f"{shown}: 'meta' nests brackets {nesting(str(meta))} deep; a {what} nests at most "
                             f"{MAX_JSON_DEPTH} deep")
    return arrays


def regular_file(path, what: str):
    """path as a Path to an existing regular file; else a ValueError (TypeError for a non-path)."""
    import os
    import stat

    from .files import as_path, kind_of, printable

    p = as_path(path, what)
    shown = printable(p)
    try:
        mode = os.stat(p).st_mode
    except FileNotFoundError:
        raise ValueError(f"cannot read {what} from {shown}: it does not exist") from None
    except OSError as e:
        raise ValueError(f"cannot read {what} from {shown}: {e.strerror or e}") from None
    if not stat.S_ISREG(mode):
        raise ValueError(f"cannot read {what} from {shown}: it is {kind_of(mode)}, not a regular file")
    return p


def read_npy(path, what: str) -> np.ndarray:
    """The array in an .npy file, read without pickles, its header checked before anything is
    allocated (as read_npz). what: "inputs", "targets"."""
    import tokenize

    from numpy.lib import format as npformat

    from .files import printable

    p = regular_file(path, what)
    shown = printable(p)
    with open(p, "rb") as f:
        start = f.read(6)
        f.seek(0)
        if start[:2] == b"PK":
            raise ValueError(f"{shown} is an .npz archive: give the {what} as one .npy array (np.save)")
        if start != b"\x93NUMPY":
            raise ValueError(f"{shown} is not an .npy file: give the {what} as an array written by np.save")
        try:
            shape, dtype = _header(f, "the array", p)
        except (ValueError, EOFError, SyntaxError, tokenize.TokenError, RecursionError, MemoryError) as e:
            raise ValueError(f"{shown} is a damaged .npy file: {e}") from None
        if dtype.hasobject:
            raise ValueError(f"{shown} holds Python objects (dtype {dtype}): the {what} must be numbers")
        n = int(np.prod(shape, dtype=object)) if shape else 1
        too_big(f"{shown} (shape {shape})", n)
        if n * dtype.itemsize > p.stat().st_size:
            raise ValueError(f"{shown} is a damaged .npy file: it declares shape {shape} of {dtype} "
                             f"({n * dtype.itemsize:,} bytes) but is {p.stat().st_size:,} bytes long")
        f.seek(0)
        try:
            return npformat.read_array(f, allow_pickle=False)
        except (ValueError, EOFError, OSError) as e:
            raise ValueError(f"{shown} is a damaged .npy file: {e}") from None


def listed(words, prefix="", last="or") -> str:
    """Words as a list in a sentence, each after prefix: ("RNN", "LSTM", "GRU"), "nn." -> "nn.RNN, nn.LSTM
    or nn.GRU" (last="and": "... and nn.GRU"), for messages and help texts built from the registry."""
    words = [prefix + w for w in words]
    return f" {last} ".join(filter(None, (", ".join(words[:-1]), words[-1]))) if words else ""
