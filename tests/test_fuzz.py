"""Fuzzing every door of bptt with drawn bad input: the API's constructors and functions, model files
(random and mutated bytes, mutated members and headers, meta JSON), checkpoints, TOML training
configs and sweep specs. The outcome must be a result or a one-line ValueError/TypeError (an
overflowing gradient: the documented FloatingPointError), never another exception.
Derandomized and bounded, so the run is the same on every machine."""
import io
import os
import json
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import bptt
from bptt import approx
from bptt.model import random_gated
from bptt.sweep import parse_spec
from bptt.train import checkpoint
from bptt.train.config import KEYS, read_toml, resolve

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
ALLOWED = (ValueError, TypeError)


def outcome(call, allowed=ALLOWED):
    """call()'s result, or None when it raised an allowed error in one line; anything else fails."""
    try:
        return call()
    except allowed as e:
        assert "\n" not in str(e).strip() and str(e), repr(e)
        return None


# --- values: a pool of plausible and implausible things --------------------------------------------
def arrays(max_side=4):
    dtypes = st.sampled_from([np.float64, np.float32, np.int64, np.float16, np.complex128, np.bool_, np.uint8,
                              np.longdouble])
    shapes = st.lists(st.integers(0, max_side), min_size=0, max_size=3).map(tuple)
    def draw(s, d, seed, scale):
        with np.errstate(invalid="ignore"):  # inf and nan cast to an integer type: garbage, on purpose
            return (np.random.default_rng(seed).normal(size=s) * scale).astype(d)
    return st.builds(draw, shapes, dtypes, st.integers(0, 9), st.sampled_from([0.5, 1.0, 1e3, np.inf, np.nan]))


scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 10), st.integers(-2**70, 2**70),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=4),
                    st.sampled_from(["tanh", "relu", "mse", "softmax", "fast", "reference", "sum", "mean", "W"]))
values = st.one_of(scalars, arrays(), st.lists(st.integers(-2, 5), max_size=4),
                   st.lists(st.lists(st.floats(-2, 2), max_size=3), max_size=3))


@st.composite
def models(draw):
    """A valid model (its weights possibly scaled far up) to feed drawn inputs to."""
    kind = draw(st.sampled_from(["elman", "lstm", "gru"]))
    H, D, O = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    head = draw(st.sampled_from(["softmax", "mse"]))
    if kind == "elman":
        m = bptt.random_rnn(H, D, O, seed=draw(st.integers(0, 5)), head=head, bias=draw(st.booleans()))
    else:
        m = random_gated(kind, H, D, O, seed=draw(st.integers(0, 5)), head=head)
    return m.replace(W=m.W * draw(st.sampled_from([1.0, 30.0])))


# --- the API --------------------------------------------------------------------------------------
@FUZZ
@given(kind=st.sampled_from([bptt.RNN, bptt.LSTM, bptt.GRU]),
       kw=st.dictionaries(st.sampled_from(["U", "W", "V", "b", "bh", "c", "head", "activation", "reset_after"]),
                          values, max_size=6))
def test_constructors(kind, kw):
    outcome(lambda: kind(**kw))


@FUZZ
@given(m=models(), x=values, y=values, truncate=st.one_of(st.none(), scalars), h0=st.one_of(st.none(), values),
       reduction=st.one_of(st.just("sum"), scalars), backend=st.sampled_from([None, "reference", "fast", "gpu"]))
def test_gradients_and_forward(m, x, y, truncate, h0, reduction, backend):
    allowed = ALLOWED + (FloatingPointError,)
    outcome(lambda: bptt.forward(m, x, h0, backend=backend), allowed)
    outcome(lambda: bptt.gradients(m, x, y, truncate=truncate, h0=h0, reduction=reduction, backend=backend), allowed)


@FUZZ
@given(m=models(), T=st.integers(1, 5), y=st.one_of(st.none(), values), name=scalars, t=scalars,
       step=scalars, tol=scalars)
def test_flow_and_check(m, T, y, name, t, step, tol):
    x = np.arange(T) % m.D
    y = (np.arange(T) % m.O if m.head == "softmax" else np.zeros((T, m.O))) if y is None else y
    allowed = ALLOWED + (FloatingPointError,)
    fl = outcome(lambda: bptt.flow(m, x, y), allowed)
    if fl is not None:
        outcome(lambda: fl.terms(name, t))
        outcome(lambda: fl.terms("W", t))
    outcome(lambda: bptt.check(m, x, y, step=step, tol=tol), allowed)


@FUZZ
@given(hidden=scalars, inputs=scalars, outputs=scalars, radius=scalars, std=scalars,
       init=st.sampled_from(["uniform", "normal", "orthogonal", "identity", "he"]),
       cell=st.sampled_from(["lstm", "gru", "elman"]), forget_bias=scalars)
def test_random_models(hidden, inputs, outputs, radius, std, init, cell, forget_bias):
    outcome(lambda: bptt.random_rnn(hidden, inputs, outputs, seed=0, init=init, std=std, radius=radius))
    outcome(lambda: random_gated(cell, hidden, inputs, outputs, seed=0, std=std, forget_bias=forget_bias))


@FUZZ
@given(m=models(), T=st.integers(1, 4), k1=scalars, k2=scalars, samples=scalars, order=scalars, delta=scalars)
def test_approximations(m, T, k1, k2, samples, order, delta):
    x = np.arange(T) % m.D
    y = np.arange(T) % m.O if m.head == "softmax" else np.zeros((T, m.O))
    allowed = ALLOWED + (FloatingPointError,)
    outcome(lambda: approx.tbptt_gradient(m, x, y, k1, k2), allowed)
    outcome(lambda: approx.uoro_samples(m, x, y, samples, seed=0), allowed)
    outcome(lambda: approx.snap(m, x, y, order), allowed)
    outcome(lambda: approx.smallest_window(m, x, y, delta), allowed)
    outcome(lambda: approx.rtrl(m, x, y), allowed)


# --- model files ----------------------------------------------------------------------------------
def _model_bytes(kind="elman"):
    buf_path = io.BytesIO()
    m = bptt.random_rnn(3, 2, 2, seed=0, bias=True) if kind == "elman" else random_gated(kind, 2, 2, 2, seed=0)
    arrays = {"meta": np.array(json.dumps({**m.settings, "format": f"bptt.{type(m).__name__}/1"})), **m.params}
    np.savez(buf_path, **arrays)
    return buf_path.getvalue()


GOOD = {k: _model_bytes(k) for k in ("elman", "lstm", "gru")}


@FUZZ
@given(kind=st.sampled_from(list(GOOD)), edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)),
                                                         max_size=8), cut=st.one_of(st.none(), st.integers(0, 10**6)))
def test_model_files_with_mutated_bytes(tmp_path, kind, edits, cut):
    data = bytearray(GOOD[kind])
    for at, byte in edits:
        data[at % len(data)] = byte
    data = bytes(data[:cut] if cut is not None else data)
    (tmp_path / "m.npz").write_bytes(data)
    outcome(lambda: bptt.Model.load(tmp_path / "m.npz"))


@FUZZ
@given(data=st.binary(max_size=600))
def test_model_files_of_random_bytes(tmp_path, data):
    (tmp_path / "m.npz").write_bytes(data)
    with pytest.raises(ValueError) as e:
        bptt.Model.load(tmp_path / "m.npz")
    assert "pickle" not in str(e.value)


json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False),
                                     st.text(max_size=5)),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                        max_size=3), max_leaves=8)
meta_keys = st.sampled_from(["format", "head", "activation", "reset_after", "other"])


def _header(name, shape, descr):
    from numpy.lib import format as npformat
    buf = io.BytesIO()
    npformat.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue() + b"\0" * 64


@FUZZ
@given(kind=st.sampled_from(list(GOOD)), member=st.sampled_from(["U", "W", "V", "b", "meta", "Z"]),
       replace=st.one_of(arrays(), st.none()), meta=st.one_of(st.none(), json_values,
                                                             st.dictionaries(meta_keys, json_values, max_size=4)),
       header=st.one_of(st.none(), st.tuples(st.lists(st.integers(0, 10**6), max_size=3).map(tuple),
                                              st.sampled_from(["<f8", "<f4", "|O", "<U9", "|b1", ">i4"]))))
def test_model_files_with_mutated_members(tmp_path, kind, member, replace, meta, header):
    with zipfile.ZipFile(io.BytesIO(GOOD[kind])) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    if replace is None:
        members.pop(member + ".npy", None)
    elif replace.dtype != np.longdouble:
        buf = io.BytesIO()
        np.save(buf, replace)
        members[member + ".npy"] = buf.getvalue()
    if meta is not None:
        buf = io.BytesIO()
        np.save(buf, np.array(json.dumps(meta)))
        members["meta.npy"] = buf.getvalue()
    if header is not None:
        members[member + ".npy"] = _header(member, *header)
    with zipfile.ZipFile(tmp_path / "m.npz", "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    outcome(lambda: bptt.Model.load(tmp_path / "m.npz"))


# --- checkpoints ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    from bptt.train import train
    out = tmp_path_factory.mktemp("run")
    cfg = resolve({"task": "reber", "hidden": 3, "steps": 4, "checkpoint_every": 2, "eval_every": 2,
                   "batch": 2, "chunk": 5})
    train(cfg, out, progress=False, log=lambda s: None)
    return cfg, out


@settings(FUZZ, max_examples=40)
@given(key=st.sampled_from(["step", "smooth", "last_norm", "last_norm_step", "rng", "config", "stream",
                            "model_kind", "head", "activation", "format"]),
       value=st.one_of(json_values, st.just("__drop__")),
       array=st.sampled_from([None, "model/W", "model/U", "opt/0", "extra/h"]), replace=st.one_of(arrays(), st.none()))
def test_checkpoints(tmp_path, finished_run, key, value, array, replace):
    from bptt.train.loop import train
    cfg, run = finished_run
    for name in ("checkpoint.npz", "metrics.jsonl", "config.json"):
        (tmp_path / name).write_bytes((run / name).read_bytes())
    with np.load(tmp_path / "checkpoint.npz") as f:
        arrays_ = {k: f[k] for k in f.files}
    meta = json.loads(str(arrays_["meta"]))
    if value == "__drop__":
        meta.pop(key, None)
    else:
        meta[key] = value
    arrays_["meta"] = np.array(json.dumps(meta))
    if array is not None:
        name = array if array != "opt/0" else next((k for k in arrays_ if k.startswith("opt/")), "opt/m/W")
        if replace is None:
            arrays_.pop(name, None)
        elif replace.dtype != np.longdouble:
            arrays_[name] = replace
    np.savez(tmp_path / "checkpoint.npz", **arrays_)
    outcome(lambda: train(cfg, tmp_path, resume=True, progress=False, log=lambda s: None))


# --- TOML configs and sweep specs ------------------------------------------------------------------
def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v) if np.isfinite(v) else ("nan" if v != v else ("inf" if v > 0 else "-inf"))
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    return '""'


toml_values = st.recursive(st.one_of(st.booleans(), st.integers(-10, 10**12), st.floats(), st.text(max_size=6),
                                     st.sampled_from(["adding", "char", "reber", "lstm", "gru", "adam", "float64"])),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                                        max_size=2), max_leaves=6)


@FUZZ
@given(table=st.booleans(), top=st.dictionaries(st.sampled_from(sorted(KEYS) + ["train", "other"]), toml_values,
                                                 max_size=5),
       noise=st.one_of(st.none(), st.binary(max_size=40)))
def test_toml_configs(tmp_path, table, top, noise):
    body = "".join(f"{json.dumps(k)} = {toml_value(v)}\n" for k, v in top.items() if k != "train")
    text = ("[train]\n" + body) if table else body
    data = text.encode() if noise is None else text.encode() + noise
    (tmp_path / "c.toml").write_bytes(data)
    outcome(lambda: resolve({}, read_toml(tmp_path / "c.toml")))


@FUZZ
@given(kind=st.sampled_from(["flow", "train", "approx", "nothing"]),
       top=st.dictionaries(st.sampled_from(["seeds", "name", "description", "extra"]), toml_values, max_size=3),
       tables=st.dictionaries(st.sampled_from(["fixed", "grid", "random"]),
                              st.dictionaries(st.sampled_from(["hidden", "length", "radius", "samples", "seed",
                                                               "cell", "long_lag", "steps"]), toml_values,
                                              max_size=3), max_size=3))
def test_sweep_specs(kind, top, tables):
    text = f'kind = "{kind}"\n' + "".join(f"{k} = {toml_value(v)}\n" for k, v in top.items())
    for name, table in tables.items():
        text += f"[{name}]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in table.items())
    outcome(lambda: parse_spec(text))


# --- numeric extremes for the counts, steps and rates of the public functions ---------------------
extremes = st.one_of(st.sampled_from([float("nan"), float("inf"), -float("inf"), 0, -1, 0.5, 1e30, 2**63, 2**64,
                                      -2**70, True, None, "3", [2], np.uint64(2**64 - 1), np.int64(-1),
                                      np.float32("nan")]), st.integers(-3, 6))


@FUZZ
@given(a=extremes, b=extremes, c=extremes)
def test_counts_and_steps_at_their_extremes(a, b, c):
    from bptt.train.tbptt import blocks, kept_terms

    m, x, y = bptt.seed_example()
    trace = bptt.forward(m, x)
    outcome(lambda: bptt.cliff([1.0, 2.0], [0.0], steps=a))
    outcome(lambda: blocks(a, b))
    outcome(lambda: kept_terms(a if isinstance(a, int) and a < 50 else 3, truncate=b, k1=c))
    outcome(lambda: bptt.jacobian_spectrum(trace, a, b, seq=c))
    outcome(lambda: bptt.jacobian_spectrum(trace, 2, 0, max_rounds=a))
    outcome(lambda: bptt.lyapunov(trace, seq=a, burn_in=b))
    outcome(lambda: approx.online.train(m, x, y, "rtrl", lr=a, limit=1e12 if b is None else b))
    outcome(lambda: approx.online.train(m, x, y, a, lr=0.1))


# --- special files wherever a path is read -----------------------------------------------------------
def _special(tmp_path, kind):
    p = tmp_path / kind
    if kind == "fifo":
        os.mkfifo(p)
    elif kind == "dev-zero":
        p.symlink_to("/dev/zero")
    elif kind == "folder":
        p.mkdir()
    elif kind == "nested-json":
        p.write_text("[" * 50_000 + "]" * 50_000)
    elif kind == "garbage-npy":
        p.write_bytes(b"\x93NUMPY\x01\x00\x20\x00{'descr': '''<f8, 'shape': (3,)}  \n")
    return p


def _readers():
    from bptt.sweep import load_spec
    from bptt.tasks import CharLM
    from bptt.validate import read_npy

    return {"read_toml": read_toml, "load_spec": load_spec, "char-text": CharLM.from_file,
            "Model.load": bptt.Model.load, "checkpoint.load": checkpoint.load,
            "read_npy": lambda p: read_npy(p, "inputs")}


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "folder", "nested-json", "garbage-npy"])
@pytest.mark.parametrize("reader", ["read_toml", "load_spec", "char-text", "Model.load", "checkpoint.load", "read_npy"])
def test_special_files_are_refused_in_a_sentence(tmp_path, kind, reader):
    path = _special(tmp_path, kind)
    if (reader, kind) == ("char-text", "nested-json"):  # brackets are a text like any other
        assert bptt.tasks.CharLM.from_file(path).D == 2
        return
    with pytest.raises((ValueError, TypeError)) as e:
        _readers()[reader](path)
    assert "\n" not in str(e.value)


# --- masked arrays and unsigned dtypes -------------------------------------------------------------
@FUZZ
@given(dtype=st.sampled_from([np.uint8, np.uint16, np.uint32, np.uint64, np.int8, np.int64]),
       ys=st.lists(st.integers(0, 2**64 - 1), min_size=3, max_size=3), masked=st.sampled_from([None, "x", "y", "h0"]))
def test_unsigned_and_masked_inputs_give_the_int64_numbers_or_a_sentence(dtype, ys, masked):
    m, x, y = bptt.seed_example()
    info = np.iinfo(dtype)
    yv = np.array([min(v, int(info.max)) for v in ys], dtype=dtype)
    args = {"x": np.asarray(x), "y": yv, "h0": np.zeros(m.H)}
    if masked is not None:
        args[masked] = np.ma.array(args[masked])
    got = outcome(lambda: bptt.loss(m, args["x"], args["y"], h0=args["h0"]))
    if masked is not None:
        assert got is None
    elif all(0 <= int(v) < m.O for v in yv):
        assert got == bptt.loss(m, x, [int(v) for v in yv])
    else:
        assert got is None
