"""Bad input, case by case: each is a one-line ValueError/TypeError naming what was expected and what
came (the CLI: `bptt <verb>: error: ...` on stderr, exit 2), never a traceback, a silent wrong number
or a run that exhausts the machine. The API's everyday cases live in test_validation.py."""
import fcntl
import json
import os
import zipfile

import numpy as np
import pytest

import bptt
from bptt import approx
from bptt.cli import main
from bptt.model import random_gated
from bptt.sweep import Store, parse_spec, run_sweep
from bptt.train import checkpoint
from bptt.train.config import read_toml, resolve
from bptt.train.tbptt import blocks, kept_terms
from conftest import cli, sentence


@pytest.fixture
def seed():
    return bptt.seed_example()


# --- the API ------------------------------------------------------------------------------------
API = {
    "x-a-0d-float": (lambda m, x, y: bptt.gradients(m, 1.0, 0), ["x must be a sequence", "single number 1.0"]),
    "x-a-0d-int": (lambda m, x, y: bptt.forward(m, np.array(2)), ["x must be a sequence"]),
    "terms-t-a-string": (lambda m, x, y: bptt.flow(m, x, y).terms("W", "a"), ["output step t", "'a'"]),
    "terms-t-a-float": (lambda m, x, y: bptt.flow(m, x, y).terms("W", 1.5), ["output step t", "1.5"]),
    "U-ragged": (lambda m, x, y: bptt.RNN(U=[[1, 2], [3]], W=m.W, V=m.V), ["U must be an array", "ragged"]),
    "U-complex": (lambda m, x, y: bptt.RNN(U=m.U + 1j, W=m.W, V=m.V), ["U must be an array of real", "complex"]),
    "W-longdouble": (lambda m, x, y: bptt.RNN(U=m.U, W=m.W.astype(np.longdouble), V=m.V), ["float32 or float64"]),
    "radius-negative": (lambda m, x, y: bptt.random_rnn(3, 3, 3, seed=0, radius=-1), ["radius", ">= 0", "-1"]),
    "radius-nan": (lambda m, x, y: bptt.random_rnn(3, 3, 3, seed=0, radius=float("nan")), ["radius", "nan"]),
    "std-negative": (lambda m, x, y: bptt.random_rnn(3, 3, 3, seed=0, init="normal", std=-0.1), ["std", "-0.1"]),
    "hidden-a-string": (lambda m, x, y: bptt.random_rnn("a", 3, 3, seed=0), ["hidden must be a positive integer"]),
    "hidden-none": (lambda m, x, y: bptt.random_rnn(None, 3, 3, seed=0), ["hidden must be a positive integer"]),
    "hidden-huge": (lambda m, x, y: bptt.random_rnn(100_000, 3, 3, seed=0), ["limit", "BPTT_MAX_ELEMENTS"]),
    "gated-hidden-huge": (lambda m, x, y: random_gated("lstm", 20_000, 3, 3, seed=0), ["BPTT_MAX_ELEMENTS"]),
    "gated-std-nan": (lambda m, x, y: random_gated("gru", 3, 3, 3, seed=0, std=float("nan")), ["std", "nan"]),
    "x-ids-with-an-inf": (lambda m, x, y: bptt.gradients(m, [1.0, np.inf, 2.0], y), ["non-integer value inf"]),
    "x-dense-wrong-D-with-an-inf-row": (lambda m, x, y: bptt.gradients(m, np.vstack([np.ones(4), np.full(4, np.inf)]),
                                                                        [0, 1]), ["inf"]),
    "tbptt-k1-string": (lambda m, x, y: approx.tbptt_gradient(m, x, y, "a"), ["k1 must be a positive integer"]),
    "uoro-samples-1e12": (lambda m, x, y: approx.uoro_samples(m, x, y, 10**12, seed=0), ["BPTT_MAX_ELEMENTS"]),
    "smallest-window-delta-string": (lambda m, x, y: approx.smallest_window(m, x, y, "a"), ["delta must be"]),
    "forget-bias-string": (lambda m, x, y: random_gated("lstm", 3, 3, 3, seed=0, forget_bias="1"), ["forget_bias"]),
    # integers checked in their own dtype, before any cast that could wrap them
    "y-uint64-huge": (lambda m, x, y: bptt.loss(m, x, np.array([1, 2**64 - 1, 0], np.uint64)),
                      ["target id 18446744073709551615", "out of range"]),
    "y-int64-huge": (lambda m, x, y: bptt.loss(m, x, np.array([1, 2**62, 0])), ["target id 4611686018427387904"]),
    "y-float-huge": (lambda m, x, y: bptt.loss(m, x, np.array([1.0, 1e30, 0.0])), ["out of range"]),
    "x-uint64-huge": (lambda m, x, y: bptt.loss(m, np.array([0, 2**64 - 1, 1], np.uint64), y), ["out of range"]),
    # numbers that never end, never fit, or index from the end
    "cliff-steps-1e9": (lambda m, x, y: bptt.cliff([1.0], [0.0], steps=10**9), ["steps", "BPTT_MAX_ELEMENTS"]),
    "cliff-steps-inf": (lambda m, x, y: bptt.cliff([1.0], [0.0], steps=float("inf")), ["steps", "inf"]),
    "blocks-2**70": (lambda m, x, y: blocks(2**70, 2), ["BPTT_MAX_ELEMENTS"]),
    "blocks-inf": (lambda m, x, y: blocks(float("inf"), 2), ["T must be an integer", "inf"]),
    "kept-terms-inf": (lambda m, x, y: kept_terms(float("inf")), ["T must be an integer", "inf"]),
    "kept-terms-truncate-inf": (lambda m, x, y: kept_terms(4, truncate=float("inf")), ["truncate", "inf"]),
    "kept-terms-huge": (lambda m, x, y: kept_terms(10**6), ["BPTT_MAX_ELEMENTS"]),
    "analyse-batch-y-0d": (lambda m, x, y: bptt.analyse_batch(m, np.array([x]), np.array(1), progress=False),
                           ["targets must be (N, T)", "shape ()"]),
    "spectrum-seq-out-of-range": (lambda m, x, y: bptt.jacobian_spectrum(bptt.forward(m, x), 2, 0, seq=1),
                                  ["seq", "0..0", "1"]),
    "spectrum-seq-negative": (lambda m, x, y: bptt.jacobian_spectrum(bptt.forward(m, x), 2, 0, seq=-1),
                              ["seq", "-1"]),
    "spectrum-t-inf": (lambda m, x, y: bptt.jacobian_spectrum(bptt.forward(m, x), float("inf"), 0), ["t", "inf"]),
    "spectrum-max-rounds-0": (lambda m, x, y: bptt.jacobian_spectrum(bptt.forward(m, x), 2, 0, max_rounds=0),
                              ["max_rounds", ">= 1"]),
    "lyapunov-seq-negative": (lambda m, x, y: bptt.lyapunov(bptt.forward(m, x), seq=-1), ["seq", "-1"]),
    "lyapunov-burn-in-inf": (lambda m, x, y: bptt.lyapunov(bptt.forward(m, x), burn_in=float("inf")),
                             ["burn_in", "inf"]),
    "online-lr-nan": (lambda m, x, y: approx.online.train(m, x, y, "rtrl", lr=float("nan")), ["lr", "nan"]),
    "online-lr-inf": (lambda m, x, y: approx.online.train(m, x, y, "rtrl", lr=float("inf")), ["lr", "inf"]),
    "online-lr-0": (lambda m, x, y: approx.online.train(m, x, y, "rtrl", lr=0), ["lr", "> 0"]),
    "online-lr-list": (lambda m, x, y: approx.online.train(m, x, y, "rtrl", lr=[0.1]), ["lr", "[0.1]"]),
    "online-tbptt-lr-nan": (lambda m, x, y: approx.online.train_tbptt(m, x, y, 2, lr=float("nan")), ["lr"]),
    "rtrl-hidden-1500": (lambda m, x, y: approx.online.train(bptt.random_rnn(1500, 3, 3, seed=0), x, y, "rtrl",
                                                             lr=0.1), ["influence matrix", "BPTT_MAX_ELEMENTS"]),
}

# TypeError: a masked array (its mask would be dropped), a thing of the wrong type
API_TYPES = {
    "x-masked": (lambda m, x, y: bptt.loss(m, np.ma.array(x, mask=[0, 1, 0]), y), ["masked", "x.filled("]),
    "y-masked": (lambda m, x, y: bptt.loss(m, x, np.ma.array(y, mask=[0, 1, 0])), ["masked", "y.filled(", "-1"]),
    "h0-masked": (lambda m, x, y: bptt.forward(m, x, np.ma.array(np.zeros(m.H))), ["masked", "h0.filled("]),
    "batch-y-masked": (lambda m, x, y: bptt.analyse_batch(m, np.array([x]), np.ma.array([y]), progress=False),
                       ["masked"]),
    "backward-none": (lambda m, x, y: bptt.backward(None, y), ["Trace", "NoneType"]),
    "online-method-3": (lambda m, x, y: approx.online.train(m, x, y, 3, lr=0.1), ["method", "int"]),
}


@pytest.mark.parametrize("case", list(API_TYPES), ids=list(API_TYPES))
def test_the_api_refuses_the_wrong_type_in_a_sentence(seed, case):
    call, words = API_TYPES[case]
    sentence(TypeError, lambda: call(*seed), *words)


INITIALISERS = {
    "with-spectral-radius-nan": lambda: bptt.with_spectral_radius(np.eye(3), float("nan")),
    "orthogonal-gain-nan": lambda: bptt.orthogonal(3, seed=0, gain=float("nan")),
    "normal-std-nan": lambda: bptt.normal((3, 3), float("nan"), seed=0),
}


@pytest.mark.parametrize("case", list(INITIALISERS), ids=list(INITIALISERS))
def test_initialisers_refuse_nan(case):
    sentence(ValueError, INITIALISERS[case], "nan")


def test_windows_beyond_any_length_are_the_whole_sequence(seed):
    """TBPTT's k1 = k2 = 2**69 and SnAp's order 2**69 (once an OverflowError and an endless loop) keep
    every term: the exact gradient, and RTRL's for this dense W."""
    m, x, y = seed
    loss, g = bptt.gradients(m, x, y)
    loss_t, g_t = approx.tbptt_gradient(m, x, y, 2**69)
    loss_r, g_r = approx.rtrl(m, x, y)
    loss_s, g_s = approx.snap(m, x, y, 2**69)
    for k in ("U", "W", "V"):
        np.testing.assert_allclose(getattr(g_t, k), getattr(g, k), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(getattr(g_s, k), getattr(g_r, k), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(getattr(g_r, k), getattr(g, k), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("case", list(API), ids=list(API))
def test_the_api_refuses_in_a_sentence(seed, case):
    call, words = API[case]
    sentence(ValueError, lambda: call(*seed), *words)


def test_the_element_limit_is_raised_by_its_environment_variable(monkeypatch):
    monkeypatch.setenv("BPTT_MAX_ELEMENTS", "10")
    sentence(ValueError, lambda: bptt.random_rnn(3, 3, 3, seed=0), "limit of 10", "BPTT_MAX_ELEMENTS")
    monkeypatch.setenv("BPTT_MAX_ELEMENTS", "many")
    sentence(ValueError, lambda: bptt.random_rnn(3, 3, 3, seed=0), "BPTT_MAX_ELEMENTS must be a positive integer")
    monkeypatch.setenv("BPTT_MAX_ELEMENTS", "1000")
    assert bptt.random_rnn(3, 3, 3, seed=0).H == 3


# --- model files --------------------------------------------------------------------------------
def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def _header_only(path, name, shape, dtype="<f8"):
    """An .npz whose member declares shape but holds no data (a few hundred bytes)."""
    from numpy.lib import format as npformat
    import io

    buf = io.BytesIO()
    npformat.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("meta.npy", _npy(np.array(json.dumps({"format": "bptt.RNN/1"}))))
        zf.writestr(name + ".npy", buf.getvalue())
    return path


def _npy(a):
    import io
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def _good(tmp_path):
    m = bptt.random_rnn(3, 4, 2, seed=0)
    m.save(tmp_path / "good.npz")
    return m, tmp_path / "good.npz"


def _mutated(tmp_path, change):
    """good.npz's arrays, changed by change(dict), saved as bad.npz."""
    _, good = _good(tmp_path)
    with np.load(good) as f:
        arrays = {k: f[k] for k in f.files}
    change(arrays)
    return _npz(tmp_path / "bad.npz", **arrays)


MODEL_FILES = {
    "truncated": (lambda t: _write(t, _good(t)[1].read_bytes()[:300]), ["not a model file", "not a zip"]),
    "crc-corrupt": (lambda t: _flip_data_byte(t), ["damaged model file"]),
    "an-npy": (lambda t: _write(t, _npy(np.ones(3))), ["expected an .npz archive", "an .npy array"]),
    "random-bytes": (lambda t: _write(t, np.random.default_rng(0).bytes(2000)), ["not a model file"]),
    "missing-W": (lambda t: _mutated(t, lambda a: a.pop("W")), ["lacks the array(s) W"]),
    "missing-V": (lambda t: _mutated(t, lambda a: a.pop("V")), ["lacks the array(s) V"]),
    "meta-a-list": (lambda t: _mutated(t, lambda a: a.update(meta=np.array("[1, 2]"))), ["JSON object", "[1, 2]"]),
    "meta-not-json": (lambda t: _mutated(t, lambda a: a.update(meta=np.array("{nope"))), ["not valid JSON"]),
    "meta-a-number": (lambda t: _mutated(t, lambda a: a.update(meta=np.arange(3.0))), ["'meta' must be a JSON string"]),
    "head-a-list": (lambda t: _mutated(t, lambda a: a.update(meta=np.array('{"head": [1]}'))), ["head", "[1]"]),
    "W-complex": (lambda t: _mutated(t, lambda a: a.update(W=a["W"] + 1j)), ["W must be an array of real"]),
    "declared-2x1e8": (lambda t: _header_only(t / "bad.npz", "W", (2, 100_000_000)), ["BPTT_MAX_ELEMENTS"]),
    "declared-1e5x1e5": (lambda t: _header_only(t / "bad.npz", "W", (100_000, 100_000)), ["BPTT_MAX_ELEMENTS"]),
    "declared-bigger-than-bytes": (lambda t: _header_only(t / "bad.npz", "W", (300, 300)), ["damaged", "declares"]),
    "object-dtype": (lambda t: _header_only(t / "bad.npz", "W", (2,), "|O"), ["Python objects"]),
    "a-folder": (lambda t: t, ["a folder, not a regular file"]),
    "absent": (lambda t: t / "absent.npz", ["does not exist"]),
}


def _write(tmp_path, data):
    (tmp_path / "bad.npz").write_bytes(data)
    return tmp_path / "bad.npz"


def _flip_data_byte(tmp_path):
    """good.npz with one byte of W's data changed: the zip's CRC no longer matches."""
    _, good = _good(tmp_path)
    data = bytearray(good.read_bytes())
    with zipfile.ZipFile(good) as zf:
        info = zf.getinfo("W.npy")
    at = info.header_offset + 30 + len(info.filename) + len(info.extra) + info.file_size - 3
    data[at] ^= 0xFF
    return _write(tmp_path, bytes(data))


@pytest.mark.parametrize("case", list(MODEL_FILES), ids=list(MODEL_FILES))
def test_model_files_are_refused_in_a_sentence(tmp_path, case, capsys):
    make, words = MODEL_FILES[case]
    path = make(tmp_path)
    sentence(ValueError, lambda: bptt.Model.load(path), *words)
    cli(["check", "--model", path, "--frameworks", "none"], capsys, *words)


def test_random_bytes_do_not_suggest_unpickling(tmp_path):
    path = MODEL_FILES["random-bytes"][0](tmp_path)
    with pytest.raises(ValueError) as e:
        bptt.Model.load(path)
    assert "pickle" not in str(e.value)


def test_a_good_model_file_still_loads(tmp_path):
    m, path = _good(tmp_path)
    assert np.array_equal(bptt.Model.load(path).W, m.W)


# --- the CLI ------------------------------------------------------------------------------------
def test_cli_x_files(tmp_path, capsys):
    np.savez(tmp_path / "x.npz", x=np.arange(3))
    cli(["flow", "--x", tmp_path / "x.npz"], capsys, "is an .npz archive")
    np.save(tmp_path / "x0.npy", np.array(1))
    cli(["flow", "--x", tmp_path / "x0.npy"], capsys, "single number")
    (tmp_path / "junk.npy").write_bytes(b"junk" * 10)
    cli(["flow", "--x", tmp_path / "junk.npy"], capsys, "not an .npy file")


@pytest.mark.parametrize("x, words", [
    (np.array([True, False, True]), ["dtype bool"]),
    (np.array([1 + 1j, 2, 0]), ["dtype complex128"]),
    (np.array(["a", "b", "c"]), ["dtype <U1"]),
    (np.zeros(3, dtype=[("a", "i4"), ("b", "f4")]), ["dtype [("]),
    (np.array([0.0, 1.0, 2.0]), ["floats of shape (3,)", "(T, D)"]),
], ids=["bool", "complex", "string", "structured", "float-1d"])
def test_cli_x_of_a_dtype_that_is_no_input(tmp_path, capsys, x, words):
    np.save(tmp_path / "x.npy", x)
    cli(["flow", "--x", tmp_path / "x.npy"], capsys, *words)


@pytest.mark.parametrize("argv, words", [
    (["demo", "--precision", "99999999999999999999"], ["--precision", "0..17"]),
    (["approx", "--hidden", "1500"], ["influence matrix", "BPTT_MAX_ELEMENTS"]),
    (["train", "--task", "temporal", "--length", "25000", "--batch", "1", "--hidden", "2"],
     ["(T, T) tables", "25000", "BPTT_MAX_ELEMENTS"]),
], ids=["demo-precision-1e20", "approx-hidden-1500", "train-temporal-length-25000"])
def test_cli_numbers_that_would_hang_or_exhaust_memory(tmp_path, capsys, argv, words):
    cli(argv + (["--out", tmp_path / "run"] if argv[0] == "train" else []), capsys, *words)


@pytest.mark.parametrize("argv", [
    ["check", "--length", "1000000000", "--frameworks", "none"],
    ["check", "--batch", "1000000000", "--frameworks", "none"],
    ["flow", "--length", "20000"],
    ["approx", "--length", "1000000000"],
], ids=["check-length-1e9", "check-batch-1e9", "flow-length-2e4", "approx-length-1e9"])
def test_cli_sequences_beyond_the_element_limit(argv, capsys):
    cli(argv, capsys, "asks for", "BPTT_MAX_ELEMENTS")


def test_cli_check_radius_and_hidden(capsys):
    cli(["check", "--radius", "-1", "--frameworks", "none"], capsys, "radius", "-1")
    cli(["check", "--hidden", "20000", "--frameworks", "none"], capsys, "BPTT_MAX_ELEMENTS")


def _run(tmp_path, *extra):
    """A finished 6-step run of the adding task in tmp_path/run (checkpoints at 3 and 6)."""
    out = tmp_path / "run"
    argv = ["train", "--task", "adding", "--length", "20", "--hidden", "4", "--steps", "6", "--checkpoint-every",
            "3", "--eval-every", "3", "--batch", "4", "--out", out, "--quiet", *extra]
    assert main([str(a) for a in argv]) == 0
    return out, argv


def test_cli_train_out_a_file_and_text_dev_null(tmp_path, capsys):
    (tmp_path / "f").write_text("")
    cli(["train", "--out", tmp_path / "f", "--steps", "1"], capsys, "is a file, not a folder")
    cli(["train", "--task", "char", "--text", os.devnull, "--out", tmp_path / "r", "--steps", "1"], capsys,
        "character device, not a regular file")
    (tmp_path / "empty.txt").write_text("")
    cli(["train", "--task", "char", "--text", tmp_path / "empty.txt", "--out", tmp_path / "r", "--steps", "1"], capsys,
        "at least 100 characters, got 0")
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe" + b"a" * 200)
    cli(["train", "--task", "char", "--text", tmp_path / "bin.txt", "--out", tmp_path / "r", "--steps", "1"], capsys,
        "not UTF-8")


def test_cli_sample_and_evaluate_with_broken_files(tmp_path, capsys):
    out, _ = _run(tmp_path)
    (out / "vocab.json").write_text('{"chars": [1, 2]}')
    cli(["sample", out], capsys, "one-character strings")
    (out / "vocab.json").write_text("not json")
    cli(["sample", out], capsys, "not valid JSON")
    cfg = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**cfg, "colour": "blue"}))
    cli(["evaluate", out], capsys, "unknown setting(s) 'colour'")
    (out / "config.json").write_text("[1, 2]")
    cli(["evaluate", out], capsys, "must be a table of settings")


# --- checkpoints and metrics.jsonl --------------------------------------------------------------
def _meta(change):
    def f(arrays):
        meta = json.loads(str(arrays["meta"]))
        change(meta)
        arrays["meta"] = np.array(json.dumps(meta))
    return f


CHECKPOINTS = {
    "step-negative": (_meta(lambda m: m.update(step=-30)), ["step must be an integer in 0..6", "-30"]),
    "step-beyond-steps": (_meta(lambda m: m.update(step=999)), ["step must be an integer in 0..6", "999"]),
    "step-a-float": (_meta(lambda m: m.update(step=20.5)), ["step must be an integer", "20.5"]),
    "step-a-string": (_meta(lambda m: m.update(step="6")), ["step must be an integer", "'6'"]),
    "step-missing": (_meta(lambda m: m.pop("step")), ["lacks the key(s) step"]),
    "rng-missing": (_meta(lambda m: m.pop("rng")), ["lacks the key(s) rng"]),
    "rng-wrong": (_meta(lambda m: m.update(rng={"a": 1})), ["rng is not the state"]),
    "config-a-list": (_meta(lambda m: m.update(config=[1])), ["config must be a table"]),
    "meta-a-list": (lambda a: a.update(meta=np.array("[]")), ["JSON object"]),
    "kind-unknown": (_meta(lambda m: m.update(model_kind="CNN")), ["unknown kind 'CNN'"]),
    "W-removed": (lambda a: a.pop("model/W"), ["lacks the array(s) model/W"]),
    "float64-in-float32-run": (lambda a: a.update({k: v.astype(np.float64) for k, v in a.items()
                                                   if k.startswith("model/")}), ["dtype float32", "float64"]),
    "W-wrong-shape": (lambda a: a.update({"model/W": np.zeros((5, 5), np.float32)}), ["not valid", "U must have"]),
    "another-hidden-size": (lambda a: a.update({f"model/{k}": v for k, v in bptt.random_rnn(
        5, 2, 1, seed=0, bias=True, head="mse", dtype=np.float32).params.items()}), ["shape (4, 2)", "got shape (5, 2)"]),
    "odd-array": (lambda a: a.update(junk=np.zeros(2)), ["'junk'"]),
}


def _resume(tmp_path, change):
    out, argv = _run(tmp_path)
    with np.load(out / "checkpoint.npz") as f:
        arrays = {k: f[k] for k in f.files}
    change(arrays)
    np.savez(out / "checkpoint.npz", **arrays)
    return argv + ["--resume"]


@pytest.mark.parametrize("case", list(CHECKPOINTS), ids=list(CHECKPOINTS))
def test_checkpoints_are_verified_before_resuming(tmp_path, case, capsys):
    change, words = CHECKPOINTS[case]
    cli(_resume(tmp_path, change), capsys, *words)


def test_a_checkpoint_declaring_a_huge_array_is_refused_before_loading(tmp_path):
    _header_only(tmp_path / "c.npz", "model/W", (100_000, 100_000))
    sentence(ValueError, lambda: checkpoint.load(tmp_path / "c.npz"), "BPTT_MAX_ELEMENTS")


def test_metrics_history(tmp_path, capsys):
    out, argv = _run(tmp_path)
    metrics = out / "metrics.jsonl"
    lines = metrics.read_text().splitlines()
    metrics.write_text("\n".join(lines) + '\n{"step": 7, "lo')  # a line cut short by a kill
    assert main([str(a) for a in argv + ["--resume"]]) == 0
    assert "line 7 was cut short" in capsys.readouterr().err
    assert metrics.read_text().splitlines() == lines
    metrics.write_text("\n".join(lines[:3]) + "\n")
    cli(argv + ["--resume"], capsys, "ends at step 3 but the checkpoint is at step 6")
    metrics.write_text("garbage\n" + "\n".join(lines) + "\n")
    cli(argv + ["--resume"], capsys, "line 1 is not a metrics record")
    metrics.unlink()
    cli(argv + ["--resume"], capsys, "metrics.jsonl is missing")


# --- TOML training configs ------------------------------------------------------------------------
TOMLS = {
    "train-a-number": (b"train = 5\n", ["train must be a table", "5"]),
    "text-a-number": (b'[train]\ntask = "char"\ntext = 0\n', ["text must be a string, got 0"]),
    "task-a-list": (b"task = [1]\n", ["task must be one of", "got [1]"]),
    "unknown-beside-train": (b"foo = 1\n[train]\nhidden = 4\n", ["top-level key(s) 'foo'"]),
    "binary": (bytes(range(256)) * 4, ["not UTF-8"]),
    "utf-16": ('[train]\nhidden = 4\n'.encode("utf-16"), ["not UTF-8"]),
    "nested-5000-arrays": (b"x = " + b"[" * 5000 + b"]" * 5000 + b"\n", ["5000 deep"]),
    "nested-3000-tables": (b"x = " + b"{a=" * 3000 + b"1" + b"}" * 3000 + b"\n", ["3000 deep"]),
    "dotted-5000": (b".".join([b"a"] * 5000) + b" = 1\n", ["4999 deep"]),
    "hidden-1e7": (b"hidden = 10000000\n", ["hidden = 10000000", "BPTT_MAX_ELEMENTS"]),
    "length-1e9": (b'task = "adding"\nlength = 1000000000\n', ["BPTT_MAX_ELEMENTS"]),
    "not-toml": (b"hidden == 4\n", ["not valid TOML"]),
    "omega-nan": (b"omega = nan\n", ["omega", "finite", "nan"]),
    "omega-inf": (b"omega = inf\n", ["omega", "finite", "inf"]),
}


@pytest.mark.parametrize("case", list(TOMLS), ids=list(TOMLS))
def test_toml_configs_are_refused_in_a_sentence(tmp_path, case, capsys):
    data, words = TOMLS[case]
    (tmp_path / "c.toml").write_bytes(data)
    sentence(ValueError, lambda: resolve({}, read_toml(tmp_path / "c.toml")), *words)
    cli(["train", "--config", tmp_path / "c.toml", "--out", tmp_path / "run", "--steps", "1"], capsys, *words)


def test_cli_hidden_beyond_the_limit(tmp_path, capsys):
    cli(["train", "--hidden", "20000", "--out", tmp_path / "run", "--steps", "1"], capsys, "BPTT_MAX_ELEMENTS")


# --- sweep specs and stores ------------------------------------------------------------------------
SPECS = {
    "seeds-1e7": ('kind = "flow"\nseeds = 10000000\n', ["10,000,000 points", "BPTT_MAX_POINTS"]),
    "samples-1e9": ('kind = "flow"\n[random]\nsamples = 1000000000\nradius = {uniform = [0.5, 1.5]}\n',
                    ["1,000,000,000 points", "BPTT_MAX_POINTS"]),
    "grid-x-seeds": ('kind = "flow"\nseeds = 1000\n[grid]\nradius = ' + str([0.1 * i for i in range(1, 201)]) + "\n",
                     ["200,000 points"]),
    "flow-hidden-1e5": ('kind = "flow"\n[fixed]\nhidden = 100000\n', ["hidden = 100000", "BPTT_MAX_ELEMENTS"]),
    "flow-length-1e9": ('kind = "flow"\n[fixed]\nlength = 1000000000\n', ["length = 1000000000", "BPTT_MAX_ELEMENTS"]),
    "train-hidden-1e7": ('kind = "train"\n[fixed]\nhidden = 10000000\n', ["BPTT_MAX_ELEMENTS"]),
    "nested": ('kind = "flow"\nx = ' + "[" * 3000 + "]" * 3000 + "\n", ["3000 deep"]),
}


@pytest.mark.parametrize("case", list(SPECS), ids=list(SPECS))
def test_sweep_specs_are_refused_before_their_points_are_made(case):
    text, words = SPECS[case]
    sentence(ValueError, lambda: parse_spec(text), *words)


def test_sweep_spec_files(tmp_path, capsys):
    (tmp_path / "s.toml").write_bytes('kind = "flow"\n'.encode("utf-16"))
    cli(["sweep", tmp_path / "s.toml", "--out", tmp_path / "o"], capsys, "not UTF-8")
    (tmp_path / "s.toml").write_text(SPECS["seeds-1e7"][0])
    cli(["sweep", tmp_path / "s.toml", "--out", tmp_path / "o"], capsys, "BPTT_MAX_POINTS")


def test_sweep_status_on_files_that_are_not_a_store(tmp_path, capsys):
    import sqlite3

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "results.sqlite").write_bytes(b"not a database at all" * 10)
    cli(["sweep", "status", tmp_path / "a"], capsys, "not an SQLite database")
    (tmp_path / "b").mkdir()
    db = sqlite3.connect(tmp_path / "b" / "results.sqlite")
    db.execute("CREATE TABLE songs (title TEXT)")
    db.commit()
    db.close()
    cli(["sweep", "status", tmp_path / "b"], capsys, "another program", "songs")
    tables = sqlite3.connect(tmp_path / "b" / "results.sqlite").execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    assert tables == [("songs",)]  # the other program's database is left as it was
    sentence(ValueError, lambda: Store(tmp_path / "b" / "results.sqlite"), "another program")


def test_two_sweep_folders_sharing_one_store_through_a_symlink_are_refused(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    Store(a / "results.sqlite").close()
    (b / "results.sqlite").symlink_to(a / "results.sqlite")
    spec = parse_spec('kind = "flow"\n[fixed]\nhidden = 4\nlength = 8\nlong_lag = 4\n')
    with open(a / "results.sqlite", "ab") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a driver writing to a holds it
        sentence(ValueError, lambda: run_sweep(spec, b, workers=1), "another `bptt train` or `bptt sweep` is writing to",
                 "the same file as")
