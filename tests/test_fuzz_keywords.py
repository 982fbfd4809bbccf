"""Every keyword of every public function, and every file-reading entry, fed bad values.

The public callables are enumerated, not listed: the names in __all__ of bptt, bptt.cells,
bptt.approx, bptt.train, bptt.sweep, bptt.tasks, bptt.frameworks and bptt.report (and bptt's model
classes, bptt.LSTM and the rest of bptt.cells.names()), the functions and classes defined in
bptt.files, bptt.explore, bptt.approx.online and bptt.train.checkpoint, and the public methods of
those classes (each function once: bptt.Model.replace stands for RNN's, LSTM's, ...), but for the
classes in METHODS_LEFT_OUT, whose methods are an interface the library calls itself. Each needs a
valid base call in BASE (or a reason in EXCLUDED): a new public function, method or keyword is
covered from its first day, and one without a base call fails the test instead of being skipped.
From each base call, every parameter (and every keyword a **kwargs function takes in its base
call, and one unknown keyword) is replaced in turn by each value of bad_values(): NaN, +-inf, 0,
-1, 0.5, 1e308, integers beyond int64 (+-2**70, uint64's max), bools, None, strings (empty, with
a newline), bytes, a complex number, a dict, an object(), lists of str, ragged and empty lists,
NumPy scalars, 0-d, 2-d and 4-d arrays, a masked array, uint8 and uint64 arrays; and from the
valid value itself: a masked array of it and it as uint8, uint64, float32, bool, negated and with
a NaN; a model with NaN or huge weights, one of another cell, one in float32.

Every case must end in a result or a ValueError/TypeError whose message is one non-empty line (a
FloatingPointError too: the documented error of a loss or gradient that overflows, core.finite).
Any other exception (MemoryError, OverflowError, IndexError, AttributeError, OSError, ...) and
any call that outlives CASE_SECONDS (a hang, a loop over 2**70) fail the test, which names the
function, the keyword and the value. Each function's cases run in a scratch folder of their own
(a path-like string names a file there), with the reference backend (no compilation) and models of
H = 2..3, T = 4, so a case takes microseconds to milliseconds: more than 10,000 cases in about
20 s of CPU time (the figures of bptt.sweep.plot and the runs of bptt.train.train take most).

Left out (EXCLUDED): bptt.compare and bptt.frameworks' to_torch / from_torch / to_keras / from_keras,
which import PyTorch, JAX or TensorFlow (seconds each; test_frameworks.py and
test_frameworks_io.py cover them); bptt.sweep.local_cluster, which starts Dask worker processes;
bptt.report's build, gather and write_report, which compute the whole report (seconds a call).
run_sweep is called with its cluster replaced by one that refuses in a sentence (a Dask cluster
takes seconds to start); its base call finds every point done and starts none.

The file-reading entries (Model.load, checkpoint.load, read_toml, load_spec, Store, Store.open,
sweep status and results, run_sweep's spec, CharLM.from_file, read_npy, bptt.files' readers, a
resume's checkpoint and metrics.jsonl, and the CLI's file options and run-folder files: --model,
--x, --y, --config, --text, a spec, sweep status, evaluate's config.json, model and checkpoint,
sample's vocab.json and model, `train --resume`'s metrics.jsonl) are fed a FIFO, /dev/zero, a
folder, a missing path, an empty file, deeply nested JSON and TOML, a garbage .npy header, a
truncated .npz, an .npz without its end, random bytes, UTF-16, a symlink loop, a dangling symlink,
a sparse 2 GB file, a name with a newline, a name too long for the file system and a path with a
NUL byte: each is a result or a one-line ValueError/TypeError (the CLI: exit 2 and one line
`bptt VERB: error: ...`), and none blocks.
"""
from __future__ import annotations

import contextlib
import dataclasses
import faulthandler
import importlib
import inspect
import io
import json
import os
import signal
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import bptt

MODULES = ("bptt", "bptt.cells", "bptt.approx", "bptt.approx.online", "bptt.train", "bptt.train.checkpoint",
           "bptt.sweep", "bptt.files", "bptt.tasks", "bptt.frameworks", "bptt.explore", "bptt.report", "bptt.memory",
           "bptt.scan", "bptt.floss")
EXCLUDED = {
    "bptt.memory.figure": "draws with matplotlib (about a second a figure); tests/test_memory.py and "
                          "tests/test_figures.py draw it",
    "bptt.compare": "imports PyTorch, JAX or TensorFlow (seconds each); test_frameworks.py covers it",
    "bptt.frameworks.to_torch": "imports PyTorch",
    "bptt.frameworks.from_torch": "imports PyTorch",
    "bptt.frameworks.to_keras": "imports TensorFlow",
    "bptt.frameworks.from_keras": "imports TensorFlow",
    "bptt.sweep.local_cluster": "starts Dask worker processes (seconds a call)",
    "bptt.report.build": "computes the whole report (seconds a call)",
    "bptt.report.gather": "computes the whole report (seconds a call)",
    "bptt.report.write_report": "computes the whole report (seconds a call)",
    "bptt.diagnose": "runs a PyTorch or Keras model (imports the framework, seconds); test_diagnose.py covers it",
    "bptt.Diagnosis": "made by bptt.diagnose from a framework's model; test_diagnose.py covers it",
    "bptt.Diagnosis.advice": "a method of a Diagnosis (made by bptt.diagnose); test_diagnose.py covers it",
    "bptt.Diagnosis.save": "a method of a Diagnosis (made by bptt.diagnose); test_diagnose_page.py covers it",
}
METHODS_LEFT_OUT = {  # classes whose methods are an interface the library calls itself, with its own arguments
    "bptt.cells.Cell": "the cell protocol the engine calls (test_cell_contract.py checks every registered cell)",
    "bptt.sweep.Store": "the sweep driver's reads and writes (its files are fuzzed below, and in test_untrusted.py)",
    "bptt.train.Stream": "the training loop's stream of TBPTT blocks",
    "bptt.tasks.Task": "the training loop's view of a task (batches, test set, scores)",
    "bptt.tasks.Adding": "as Task", "bptt.tasks.Copy": "as Task", "bptt.tasks.TemporalOrder": "as Task",
    "bptt.tasks.Reber": "as Task", "bptt.tasks.CharLM": "as Task; CharLM.from_file is fuzzed with the files below",
}
CASE_SECONDS = 10  # one case running longer is a hang
HARD_SECONDS = 300  # one function's (one file entry's) cases still running after this: the process ends
MIN_CASES = 10_000
ALLOWED = (ValueError, TypeError, FloatingPointError)


def public_callables():
    """{qualified name: callable} of the public API (the module's notes), each object once."""
    found, seen = {}, set()
    for name in MODULES:
        mod = importlib.import_module(name)
        names = getattr(mod, "__all__", None)
        if names is None:
            names = [n for n, o in vars(mod).items()
                     if not n.startswith("_") and getattr(o, "__module__", None) == name]
        if name == "bptt":  # the built-in cells' model classes (not those another test registers)
            names = list(names) + [bptt.cells.get(c).model for c in bptt.cells.names()
                                   if bptt.cells.get(c).__module__.startswith("bptt.cells.")]
        for n in names:
            obj = getattr(mod, n)
            if inspect.ismodule(obj) or not callable(obj) or id(obj) in seen:
                continue
            seen.add(id(obj))
            found[f"{name}.{n}"] = obj
    for qualified, cls in [(q, c) for q, c in found.items() if inspect.isclass(c) and q not in METHODS_LEFT_OUT]:
        for n in dir(cls):
            raw = inspect.getattr_static(cls, n)
            fn = raw.__func__ if isinstance(raw, (classmethod, staticmethod)) else raw
            if (n.startswith("_") or not inspect.isfunction(fn) or not fn.__module__.startswith("bptt")
                    or id(fn) in seen):
                continue
            seen.add(id(fn))
            found[f"{qualified}.{n}"] = getattr(cls, n)  # a plain function (self by keyword) or a bound classmethod
    return found


# --- the scratch world the base calls use ---------------------------------------------------------
class World:
    """Small valid things to call with: H = 3, D = O = 3, T = 4, files in folder."""

    def __init__(self, folder: Path):
        from bptt.sweep import Store, parse_spec
        from bptt.train import resolve, train

        self.folder = folder
        self.m = bptt.random_rnn(3, 3, 3, seed=0, bias=True)
        self.lstm = bptt.random_gated("lstm", 2, 3, 3, seed=0)
        self.x, self.y = np.array([0, 1, 2, 1]), np.array([1, 2, 0, 0])
        self.trace = bptt.forward(self.m, self.x)
        self.flow = bptt.flow(self.m, self.x, self.y)
        self.gated_flow = bptt.flow(self.lstm, self.x, self.y)
        self.lru = bptt.random_model("lru", 2, 3, 3, seed=0)
        self.linear = bptt.Model("linear", lam=[0.5], B=[[1.0]], V=[[1.0]], head="mse")
        self.sens = bptt.memory.sensitivity(self.lru, self.x, self.y)
        self.grads = bptt.gradients(self.m, self.x, self.y)[1]
        self.model_file = folder / "model.npz"
        self.m.save(self.model_file)
        self.cfg = resolve({"task": "adding", "variant": "le", "length": 6, "hidden": 2, "steps": 2, "batch": 2, "eval_every": 2,
                            "checkpoint_every": 2, "dtype": "float64"})
        self.run = folder / "run"
        train(self.cfg, self.run, progress=False, log=lambda s: None)
        self.ckpt = self.run / "checkpoint.npz"
        self.run_toml = folder / "run.toml"  # the run's own settings, for `bptt train --config ... --resume`
        self.run_toml.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in self.cfg.to_dict().items()
                                         if v is not None))
        self.char_run = folder / "char_run"
        train(resolve({"task": "reber", "hidden": 2, "steps": 2, "batch": 1, "chunk": 5, "eval_every": 2,
                       "checkpoint_every": 2}), self.char_run, progress=False, log=lambda s: None)
        self.toml = folder / "c.toml"
        self.toml.write_text('[train]\ntask = "adding"\nhidden = 3\n')
        self.spec_text = 'kind = "flow"\n[fixed]\nhidden = 3\nlength = 6\nlong_lag = 3\n'
        self.spec_file = folder / "s.toml"
        self.spec_file.write_text(self.spec_text)
        self.spec = parse_spec(self.spec_text)
        self.sweep = folder / "sweep"
        self.sweep.mkdir()
        points = parse_spec(self.spec_text.replace("[fixed]", "seeds = 2\n[fixed]") +
                            "[grid]\nradius = [0.5, 1.5]\n").points()
        with Store(self.sweep / "results.sqlite") as st:
            st.add_points(self.spec.name, points + self.spec.points())
            for p in points + self.spec.points():
                st.record(p.key, {"status": "ok", "metrics": {"decay_rate": 0.9, "long_lag_fraction": 0.1,
                                                              "lyapunov_max": -0.1}})
        self.text = "the quick brown fox jumps over the lazy dog. " * 5
        self.text_file = folder / "t.txt"
        self.text_file.write_text(self.text)
        self.npy = folder / "x.npy"
        np.save(self.npy, self.x)
        self.count = 0

    def fresh(self, stem):
        """A path in the scratch folder that nothing has used yet."""
        self.count += 1
        return self.folder / f"{stem}{self.count}"


def fields_of(obj):
    """The constructor's keywords of a dataclass or NamedTuple instance."""
    if dataclasses.is_dataclass(obj):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.init}
    return obj._asdict()


def _sweep_done(w):
    """A sweep folder whose store holds w.spec's one point, done: run_sweep starts no cluster."""
    import shutil

    out = w.fresh("sweep")
    shutil.copytree(w.sweep, out)
    return out


def _checkpoint_loaded(w):
    from bptt.train import checkpoint

    return checkpoint.load(w.ckpt)


def _verify_base(w):
    from bptt.train import checkpoint
    from bptt.train.loop import build_task, initial_model
    from bptt.train.optim import OPTIMIZERS

    task = build_task(w.cfg)
    fresh = initial_model(w.cfg, task)
    opt = OPTIMIZERS[w.cfg.optimizer](w.cfg.lr)
    return dict(path=w.ckpt, loaded=checkpoint.load(w.ckpt), fresh_model=fresh, fresh_opt_state=opt.init(fresh.params),
                steps=w.cfg.steps, stream=False)


def _train_base(w):
    return dict(cfg=w.cfg, out=w.fresh("run"), progress=False, log=lambda s: None)


def _approx_objects(w):
    from bptt import approx

    return approx.window_curve(w.m, w.x, w.y)


def _rule_base(w):
    from bptt.approx.bias import tbptt_keep

    keep, keep0 = tbptt_keep(4, 2)
    return dict(model=w.m, x=w.x, y=w.y, keep=keep, keep0=keep0)


def _comparison():
    from bptt.frameworks import Comparison, Row

    return Comparison(rows=(Row("torch", "loss", 0.0, 0.0, True),), rtol=1e-10, truncate=None, reduction="sum")


MODEL_XY = lambda w: dict(model=w.m, x=w.x, y=w.y)  # noqa: E731

def _layer(w, D=None):
    """A layer (a model without a head) of the world's Elman cell, reading D inputs (the model's)."""
    U = w.m.U if D is None else np.ones((w.m.H, D)) * 0.1
    return bptt.Model("rnn", U=U, W=w.m.W, b=w.m.b, head=None)


def _stack(w):
    return bptt.Stack([_layer(w)], w.m.V, w.m.c)


def _stack_file(w):
    path = w.fresh("stack").with_suffix(".npz")
    _stack(w).save(path)
    return path


# qualified name -> a function of the World giving valid keyword arguments ("_args": positional ones)
BASE = {
    # bptt
    "bptt.Model": lambda w: dict(_args=["rnn"], U=w.m.U, W=w.m.W, V=w.m.V, b=w.m.b, c=w.m.c, head="softmax",
                                 activation="tanh"),
    "bptt.RNN": lambda w: dict(U=w.m.U, W=w.m.W, V=w.m.V, b=w.m.b, c=w.m.c, head="softmax", activation="tanh"),
    "bptt.LSTM": lambda w: dict(**w.lstm.params, head="softmax"),
    "bptt.GRU": lambda w: dict(**bptt.random_gated("gru", 2, 3, 3, seed=0).params, head="softmax",
                               reset_after=True),
    "bptt.LRU": lambda w: dict(**bptt.random_model("lru", 2, 3, 3, seed=0).params, head="softmax"),
    "bptt.MinGRU": lambda w: dict(**bptt.random_model("mingru", 2, 3, 3, seed=0).params, head="softmax"),
    "bptt.MinLSTM": lambda w: dict(**bptt.random_model("minlstm", 2, 3, 3, seed=0).params, head="softmax"),
    "bptt.Linear": lambda w: dict(**bptt.random_model("linear", 2, 3, 3, seed=0).params, head="softmax"),
    "bptt.CoRNN": lambda w: dict(**bptt.random_model("cornn", 2, 3, 3, seed=0).params, dt=0.1, gamma=1.0, eps=2.0,
                                 implicit=True, head="softmax"),
    "bptt.random_model": lambda w: dict(cell="rnn", hidden=3, inputs=3, outputs=3, seed=0, head="softmax",
                                        radius=0.9, std=0.1, activation="tanh"),
    "bptt.random_rnn": lambda w: dict(hidden=3, inputs=3, outputs=3, seed=0, radius=0.9, std=0.1),
    "bptt.random_gated": lambda w: dict(cell="lstm", hidden=2, inputs=3, outputs=3, seed=0, std=0.1,
                                        forget_bias=1.0),
    "bptt.Trace": lambda w: fields_of(w.trace),
    "bptt.Grads": lambda w: fields_of(w.grads),
    "bptt.flow": MODEL_XY,
    "bptt.Flow": lambda w: fields_of(w.flow),
    "bptt.forward": lambda w: dict(model=w.m, x=w.x, h0=np.zeros(3)),
    "bptt.backward": lambda w: dict(trace=w.trace, y=w.y, truncate=2),
    "bptt.gradients": lambda w: dict(model=w.m, x=w.x, y=w.y, truncate=2, h0=np.zeros(3)),
    "bptt.loss": lambda w: dict(model=w.m, x=w.x, y=w.y, h0=np.zeros(3), reduction="mean"),
    "bptt.check": lambda w: dict(model=w.m, x=w.x, y=w.y, max_entries=4),
    "bptt.CheckReport": lambda w: fields_of(bptt.check(w.m, w.x, w.y, max_entries=2)),
    "bptt.seed_example": lambda w: {},
    "bptt.uniform": lambda w: dict(shape=(2, 3), seed=0),
    "bptt.normal": lambda w: dict(shape=(2, 3), std=0.1, seed=0),
    "bptt.orthogonal": lambda w: dict(n=3, seed=0, gain=1.0),
    "bptt.identity": lambda w: dict(n=3, gain=1.0),
    "bptt.spectral_radius": lambda w: dict(W=w.m.W),
    "bptt.with_spectral_radius": lambda w: dict(W=w.m.W, rho=0.9),
    "bptt.analyse_batch": lambda w: dict(model=w.m, x=np.array([w.x, w.x]), y=np.array([w.y, w.y]), progress=False),
    "bptt.jacobian_spectrum": lambda w: dict(trace=w.trace, t=3, k=1),
    "bptt.lyapunov": lambda w: dict(trace=w.trace, burn_in=1),
    "bptt.Theory": lambda w: dict(activation="tanh", gamma=1.0, lambda1=0.9, rho=0.8, verdict="vanishing",
                                  reason="r"),
    "bptt.cliff": lambda w: dict(w=[1.0, 2.0], b=[0.0, 0.5], steps=5),
    "bptt.Stack": lambda w: dict(layers=[_layer(w), (_layer(w, 3), _layer(w, 3))], V=np.ones((3, 6)), c=np.zeros(3),
                                 head="softmax"),
    # methods (self by keyword; not fuzzed)
    "bptt.Stack.astype": lambda w: dict(self=_stack(w), dtype=np.float32),
    "bptt.Stack.check_finite": lambda w: dict(self=_stack(w)),
    "bptt.Stack.load": lambda w: dict(path=_stack_file(w)),
    "bptt.Stack.replace": lambda w: dict(self=_stack(w), W_l0=w.m.W * 0.5, head="mse"),
    "bptt.Stack.save": lambda w: dict(self=_stack(w), path=w.fresh("s").with_suffix(".npz")),
    "bptt.Model.astype": lambda w: dict(self=w.m, dtype=np.float32),
    "bptt.Model.check_finite": lambda w: dict(self=w.m),
    "bptt.Model.load": lambda w: dict(path=w.model_file),
    "bptt.Model.replace": lambda w: dict(self=w.m, W=w.m.W * 0.5, activation="relu"),
    "bptt.Model.save": lambda w: dict(self=w.m, path=w.fresh("m").with_suffix(".npz")),
    "bptt.Grads.replace": lambda w: dict(self=w.grads, W=w.grads.W * 2),
    "bptt.Flow.bound": lambda w: dict(self=w.flow),
    "bptt.Flow.by_lag": lambda w: dict(self=w.flow),
    "bptt.Flow.cell_path": lambda w: dict(self=w.gated_flow, t=2),
    "bptt.Flow.decay_rate": lambda w: dict(self=w.flow, min_lag=1, max_lag=3),
    "bptt.Flow.deltas": lambda w: dict(self=w.flow, t=2),
    "bptt.Flow.explain": lambda w: dict(self=w.flow, name="W", t=2, precision=4),
    "bptt.Flow.jacobian_spectrum": lambda w: dict(self=w.flow, t=3, k=1),
    "bptt.Flow.lyapunov": lambda w: dict(self=w.flow, burn_in=1),
    "bptt.Flow.saturation": lambda w: dict(self=w.flow),
    "bptt.Flow.state_errors": lambda w: dict(self=w.flow, t=2),
    "bptt.Flow.terms": lambda w: dict(self=w.flow, name="W", t=2),
    "bptt.Flow.theory": lambda w: dict(self=w.flow),
    "bptt.CheckReport.to_dict": lambda w: dict(self=bptt.check(w.m, w.x, w.y, max_entries=2)),
    "bptt.Theory.as_dict": lambda w: dict(self=w.flow.theory()),
    "bptt.Theory.bound": lambda w: dict(self=w.flow.theory(), lags=[1, 2]),
    "bptt.Theory.log10_bound": lambda w: dict(self=w.flow.theory(), lags=[1, 2]),
    "bptt.approx.Agreement.as_dict": lambda w: dict(self=_approx_objects(w).bias),
    "bptt.approx.Curve.smallest_window": lambda w: dict(self=_approx_objects(w), delta=0.1, name="W"),
    "bptt.approx.LagTable.dropped": lambda w: dict(self=_approx_objects(w).table),
    "bptt.approx.LagTable.full": lambda w: dict(self=_approx_objects(w).table),
    "bptt.approx.LagTable.window": lambda w: dict(self=_approx_objects(w).table, K=2),
    "bptt.approx.LagTable.windows": lambda w: dict(self=_approx_objects(w).table),
    "bptt.approx.online.History.as_dict": lambda w: dict(self=bptt.approx.online.History()),
    "bptt.train.TrainConfig.from_dict": lambda w: dict(data=w.cfg.to_dict(), source="the settings"),
    "bptt.train.TrainConfig.model_options": lambda w: dict(self=dataclasses.replace(w.cfg)),
    "bptt.train.TrainConfig.to_dict": lambda w: dict(self=dataclasses.replace(w.cfg)),
    "bptt.train.TrainConfig.validate": lambda w: dict(self=dataclasses.replace(w.cfg)),
    "bptt.train.TrainConfig.stacked": lambda w: dict(self=dataclasses.replace(w.cfg, layers=2)),
    "bptt.random_stack": lambda w: dict(cell="lstm", hidden=2, inputs=3, outputs=3, layers=2, bidirectional=True,
                                        seed=0, head="softmax", forget_bias=1.0),
    "bptt.load_model": lambda w: dict(path=w.model_file),
    "bptt.Stack.describe": lambda w: dict(self=bptt.random_stack("gru", 2, 3, 3, layers=2, seed=0)),
    "bptt.Stack.from_arrays": lambda w: dict(meta=bptt.random_stack("gru", 2, 3, 3, layers=2, seed=0).describe(),
                                             arrays=dict(bptt.random_stack("gru", 2, 3, 3, layers=2, seed=0).params),
                                             path="stack.npz"),
    "bptt.sweep.Spec.points": lambda w: dict(self=w.spec),
    "bptt.tasks.Vocab.decode": lambda w: dict(self=bptt.tasks.Vocab("abc"), ids=[0, 2]),
    "bptt.tasks.Vocab.encode": lambda w: dict(self=bptt.tasks.Vocab("abc"), text="cab"),
    "bptt.frameworks.Comparison.failures": lambda w: dict(self=_comparison()),
    "bptt.frameworks.Comparison.to_dict": lambda w: dict(self=_comparison()),
    "bptt.frameworks.Comparison.to_json": lambda w: dict(self=_comparison(), indent=1),
    "bptt.report.Settings.quick": lambda w: dict(seed=0),
    # bptt.cells
    "bptt.cells.Cell": lambda w: {},
    "bptt.cells.Param": lambda w: dict(shape=("H", "D"), optional=False, role="input"),
    "bptt.cells.register": lambda w: dict(cell=bptt.cells.get("rnn")),
    "bptt.cells.names": lambda w: {},
    "bptt.cells.get": lambda w: dict(name="lstm"),
    "bptt.cells.resolve": lambda w: dict(name="gru-before"),
    "bptt.cells.make": lambda w: dict(name="rnn", activation="relu"),
    "bptt.cells.sizes": lambda w: dict(shape=("4H", "D"), D=3, H=2),
    "bptt.cells.variants": lambda w: {},
    "bptt.cells.canonical": lambda w: dict(name="elman"),
    "bptt.cells.owners": lambda w: dict(option="radius"),
    "bptt.cells.layers": lambda w: dict(framework="torch"),
    # bptt.approx
    "bptt.approx.rtrl": MODEL_XY,
    "bptt.approx.snap": lambda w: dict(model=w.m, x=w.x, y=w.y, order=1),
    "bptt.approx.uoro": lambda w: dict(model=w.m, x=w.x, y=w.y, seed=0, samples=2),
    "bptt.approx.uoro_samples": lambda w: dict(model=w.m, x=w.x, y=w.y, samples=2, seed=0),
    "bptt.approx.window_curve": MODEL_XY,
    "bptt.approx.lag_table": MODEL_XY,
    "bptt.approx.tbptt_gradient": lambda w: dict(model=w.m, x=w.x, y=w.y, k1=2, k2=3),
    "bptt.approx.rule_gradient": _rule_base,
    "bptt.approx.compare": lambda w: dict(exact=w.grads, approx=bptt.approx.tbptt_gradient(w.m, w.x, w.y, 2)[1]),
    "bptt.approx.smallest_window": lambda w: dict(model=w.m, x=w.x, y=w.y, delta=0.1, name="W"),
    "bptt.approx.Agreement": lambda w: fields_of(_approx_objects(w).bias),
    "bptt.approx.Curve": lambda w: fields_of(_approx_objects(w)),
    "bptt.approx.LagTable": lambda w: fields_of(_approx_objects(w).table),
    "bptt.approx.online.History": lambda w: {},
    "bptt.approx.online.method_named": lambda w: dict(name="uoro", seed=0),
    "bptt.approx.online.train": lambda w: dict(model=w.m, x=w.x, y=w.y, method="rtrl", lr=0.1),
    "bptt.approx.online.train_tbptt": lambda w: dict(model=w.m, x=w.x, y=w.y, k1=2, k2=3, lr=0.1),
    # bptt.train
    "bptt.train.train": _train_base,
    "bptt.train.TrainConfig": lambda w: fields_of(w.cfg),
    "bptt.train.resolve": lambda w: dict(cli={"task": "adding", "hidden": 3}, toml={"lr": 0.1}),
    "bptt.train.read_toml": lambda w: dict(path=w.toml),
    "bptt.train.Diverged": lambda w: dict(_args=["diverged"]),
    "bptt.train.lag_fraction": lambda w: dict(fl=w.flow, threshold=2),
    "bptt.train.sgd": lambda w: dict(lr=0.1),
    "bptt.train.momentum": lambda w: dict(lr=0.1, mass=0.9, nesterov=True),
    "bptt.train.adagrad": lambda w: dict(lr=0.1, eps=1e-8),
    "bptt.train.rmsprop": lambda w: dict(lr=0.1, decay=0.9, eps=1e-8),
    "bptt.train.adam": lambda w: dict(lr=0.1, b1=0.9, b2=0.999, eps=1e-8),
    "bptt.train.Optimizer": lambda w: fields_of(bptt.train.sgd(0.1)),
    "bptt.train.global_norm": lambda w: dict(grads=w.grads.params),
    "bptt.train.clip_by_value": lambda w: dict(grads=w.grads.params, c=1.0),
    "bptt.train.clip_by_global_norm": lambda w: dict(grads=w.grads.params, max_norm=1.0),
    "bptt.train.clip_per_param_norm": lambda w: dict(grads=w.grads.params, max_norm=1.0),
    "bptt.train.fallback": lambda w: dict(grads=w.grads.params, params=w.m.params, mode="shrink", shrink=0.02),
    "bptt.train.untrustworthy": lambda w: dict(norm=1.0, limit=10.0),
    "bptt.train.omega": lambda w: dict(trace=w.trace, y=w.y, exact=True),
    "bptt.train.omega_value": MODEL_XY,
    "bptt.train.Stream": lambda w: dict(data=np.tile(np.arange(8) % 3, (2, 1)), k1=2, k2=3),
    "bptt.train.blocks": lambda w: dict(T=5, k1=2),
    "bptt.train.kept_terms": lambda w: dict(T=4, k1=2, k2=3),
    "bptt.train.tbptt_gradients": lambda w: dict(model=w.m, x=w.x, y=w.y, k1=2, k2=3),
    "bptt.train.checkpoint.save": lambda w: dict(path=w.fresh("c") .with_suffix(".npz"), model=w.m, opt_state={},
                                                 meta={"step": 1}),
    "bptt.train.checkpoint.load": lambda w: dict(path=w.ckpt),
    "bptt.train.checkpoint.verify": _verify_base,
    # bptt.sweep
    "bptt.sweep.Spec": lambda w: fields_of(w.spec),
    "bptt.sweep.Point": lambda w: fields_of(w.spec.points()[0]),
    "bptt.sweep.load_spec": lambda w: dict(path=w.spec_file),
    "bptt.sweep.parse_spec": lambda w: dict(text=w.spec_text, default_name="s", source="here"),
    "bptt.sweep.point_key": lambda w: dict(config=w.spec.points()[0].config),
    "bptt.sweep.Store": lambda w: dict(path=w.sweep / "results.sqlite", create=False, readonly=True),
    "bptt.sweep.run_sweep": lambda w: dict(spec=w.spec, out=_sweep_done(w), workers=1, progress=False),
    "bptt.sweep.results": lambda w: dict(out=w.sweep, status="ok"),
    "bptt.sweep.status_text": lambda w: dict(out=w.sweep, slowest=2, failures=2),
    "bptt.sweep.plot": lambda w: dict(out=w.sweep, to=w.fresh("plots"), fmt="svg"),
    # bptt.files
    "bptt.files.as_path": lambda w: dict(path="a", what="the file"),
    "bptt.files.run_folder": lambda w: dict(path=w.run),
    "bptt.files.read_bytes": lambda w: dict(path=w.toml, what="the file", limit=1000),
    "bptt.files.kind_of": lambda w: dict(mode=os.stat(w.folder).st_mode),
    "bptt.files.read_text": lambda w: dict(path=w.toml, what="the file", limit=1000),
    "bptt.files.nesting": lambda w: dict(text="[[1]]"),
    "bptt.files.loads_json": lambda w: dict(text="[[1]]", what="the JSON", depth=4),
    "bptt.files.parse_toml": lambda w: dict(text="a = [1]", what="the TOML", depth=4),
    "bptt.files.read_json": lambda w: dict(path=w.run / "config.json", what="the JSON", limit=100_000, depth=4),
    "bptt.files.write_atomic": lambda w: dict(path=w.fresh("f"), data="text"),
    "bptt.files.clean_stale": lambda w: dict(folder=w.run),
    "bptt.files.file_name": lambda w: dict(name="a-name", what="the name"),
    "bptt.files.printable": lambda w: dict(text="a\x1bb"),
    "bptt.files.folder_lock": lambda w: dict(folder=w.folder, also=w.toml),
    # bptt.tasks
    "bptt.tasks.Task": lambda w: {},
    "bptt.tasks.make": lambda w: dict(name="adding", length=6, variant="le", seed=0),
    "bptt.tasks.Adding": lambda w: dict(length=6, variant="le", test_size=3, test_seed=1),
    "bptt.tasks.Copy": lambda w: dict(length=12, test_size=3, test_seed=1),
    "bptt.tasks.TemporalOrder": lambda w: dict(length=12, test_size=3, test_seed=1),
    "bptt.tasks.Reber": lambda w: dict(train_strings=5, test_strings=3, seed=0, test_seed=1),
    "bptt.tasks.CharLM": lambda w: dict(text=w.text, test_fraction=0.2, source="s", probe_length=5, max_test=50,
                                        test_rows=2),
    "bptt.tasks.Vocab": lambda w: dict(chars=list("abc")),
    "bptt.tasks.sample": lambda w: dict(model=w.m, vocab=bptt.tasks.Vocab(list("abc")), n=3, seed=0, start="ab",
                                        temperature=0.5, h0=np.zeros(3)),
    "bptt.tasks.conditional_entropy": lambda w: dict(ids=np.array([0, 1, 0, 2, 1]), V=3),
    "bptt.tasks.reber_string": lambda w: dict(rng=np.random.default_rng(0)),
    # bptt.frameworks
    "bptt.frameworks.available": lambda w: {},
    "bptt.frameworks.Comparison": lambda w: dict(rows=(), rtol=1e-10, truncate=None, reduction="sum"),
    "bptt.frameworks.Row": lambda w: dict(framework="torch", quantity="loss", max_abs_err=0.0, max_rel_err=0.0,
                                          passed=True),
    "bptt.frameworks.reference": lambda w: dict(name="torch"),
    "bptt.frameworks.relative_error": lambda w: dict(ours=w.m.W, theirs=w.m.W + 1e-9),
    # bptt.explore
    "bptt.explore.asset": lambda w: dict(name="engine.js"),
    "bptt.explore.cells_json": lambda w: {},
    # bptt.floss
    "bptt.floss.supported": lambda w: {},
    "bptt.floss.exponents": lambda w: dict(model=w.m, x=w.x, h0=None, burn_in=1),
    "bptt.floss.exponent_grads": lambda w: dict(model=w.m, x=w.x, cotangent=np.ones((1, 3)), h0=None, burn_in=1),
    "bptt.floss.flossing": lambda w: dict(model=w.lstm, x=w.x, k=2, h0=None, burn_in=0),
    # bptt.memory
    "bptt.memory.recurrent_names": lambda w: dict(model=w.lru),
    "bptt.memory.sensitivity": lambda w: dict(model=w.lru, x=w.x, y=w.y, h0=np.zeros(4), params=["nu_log"]),
    "bptt.memory.Sensitivity": lambda w: fields_of(w.sens),
    "bptt.memory.Sensitivity.at": lambda w: dict(self=w.sens, t=-1),
    "bptt.memory.Sensitivity.error_flow": lambda w: dict(self=w.sens, lags=(1, 2)),
    "bptt.memory.closed_form": lambda w: dict(lam=0.9, rho=0.5),
    "bptt.memory.closed_forms": lambda w: dict(lam=0.9, rho=0.5),
    "bptt.memory.ar1": lambda w: dict(N=2, T=5, rho=0.5, seed=0, x0=np.zeros(2)),
    "bptt.memory.burn_in": lambda w: dict(lam=0.9),
    "bptt.memory.linear_sensitivity": lambda w: dict(model=w.linear, x=np.ones((2, 5, 1)), start=None),
    "bptt.memory.samples": lambda w: dict(lam=0.5, rho=0.5, n=4, seed=0, normalise=False, chunk=2),
    "bptt.memory.Estimate": lambda w: dict(mean=1.0, se=0.1),
    "bptt.memory.monte_carlo": lambda w: dict(lam=0.5, rho=0.5, n=4, seed=0),
    # bptt.scan
    "bptt.scan.method": lambda w: dict(scan="parallel"),
    "bptt.scan.linear": lambda w: dict(a=np.full((4, 2), 0.5), b=np.ones((4, 2)), h0=np.zeros(2), scan="parallel"),
    "bptt.scan.prefixes": lambda w: dict(a=np.full((4, 2), 0.5), b=np.ones((4, 2))),
    "bptt.scan.backward": lambda w: dict(a=np.full((4, 2), 0.5), e=np.ones((4, 2)), scan="parallel"),
    "bptt.explore.page": lambda w: {},
    "bptt.explore.output_path": lambda w: dict(path=w.fresh("e.html")),
    "bptt.explore.write_explorer": lambda w: dict(path=w.fresh("e.html")),
    # bptt.report
    "bptt.report.Content": lambda w: dict(settings=bptt.report.Settings.quick(), version="0"),
    "bptt.report.Settings": lambda w: fields_of(bptt.report.Settings.quick()),
}


# --- the bad values -----------------------------------------------------------------------------------
def bad_values(valid, w):
    """(label, value) pairs for one parameter whose valid value is `valid`."""
    out = [("nan", float("nan")), ("inf", float("inf")), ("-inf", float("-inf")), ("0", 0), ("-1", -1),
           ("0.5", 0.5), ("1e308", 1e308), ("2**70", 2**70), ("-2**70", -2**70), ("True", True), ("False", False),
           ("None", None), ("''", ""), ("'x'", "x"), ("'a\\nb'", "a\nb"), ("b'x'", b"x"), ("1j", 1j),
           ("a dict", {"a": 1}), ("object()", object()), ("['a', 'b']", ["a", "b"]),
           ("[]", []), ("ragged", [[1], [1, 2]]), ("np.float32 nan", np.float32("nan")),
           ("np.uint64 max", np.uint64(2**64 - 1)), ("np.int64 -1", np.int64(-1)), ("0-d nan", np.array(np.nan)),
           ("4-d ones", np.ones((2, 2, 2, 2))), ("a 3x3 matrix", np.eye(3)),
           ("masked [0, 1, 2]", np.ma.masked_array([0, 1, 2], mask=[0, 1, 0])),
           ("uint8 [0, 1, 2]", np.arange(3, dtype=np.uint8)), ("uint64 [0, 1, 2**64-1]", np.array([0, 1, 2**64 - 1], np.uint64))]
    if isinstance(valid, (bool, np.bool_)) or valid is None:
        return out
    if isinstance(valid, bptt.Model):
        first = next(iter(valid.params))  # W, or a cell's first parameter (the LRU's nu_log)
        name = "W" if "W" in valid.params else first
        return out + [(f"model with NaN {name}", valid.replace(**{name: np.full_like(valid.params[name], np.nan)})),
                      (f"model with huge {name}", valid.replace(**{name: valid.params[name] * 1e200})),
                      ("an LSTM model", w.lstm), ("a float32 model", valid.astype(np.float32))]
    try:
        a = np.asarray(valid)
    except (ValueError, TypeError):
        return out
    if a.dtype.kind not in "iuf" or a.size > 10_000:
        return out
    one = (lambda b: b[()]) if a.ndim == 0 else (lambda b: b)
    with np.errstate(all="ignore"):
        out += [("masked", np.ma.masked_array(a)), ("as uint8", one(a.astype(np.uint8))),
                ("as uint64", one(a.astype(np.uint64))), ("as float32", one(a.astype(np.float32))),
                ("as bool", one(a.astype(bool))), ("negated", one(-a))]
        if a.size:
            b = a.astype(np.float64)
            b.flat[0] = np.nan
            out.append(("with a NaN", one(b)))
    return out


# --- running a case -------------------------------------------------------------------------------------
class Hang(BaseException):
    """Raised in the case that outlives CASE_SECONDS (a BaseException: no `except Exception` hides it)."""


def _alarm(signum, frame):
    raise Hang(f"still running after {CASE_SECONDS} s")


@contextlib.contextmanager
def watchdog():
    """SIGALRM after CASE_SECONDS in each case (verdict), restored afterwards; and, for a call that
    never returns to Python (where no signal handler runs), faulthandler ends the process with every
    thread's traceback when one function's cases outlive HARD_SECONDS (deadline): a hang fails the
    run, never stalls it."""
    old = signal.signal(signal.SIGALRM, _alarm)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        faulthandler.cancel_dump_traceback_later()


def deadline():
    """(Re)start the hard deadline of the watchdog, at each function or file entry."""
    faulthandler.dump_traceback_later(HARD_SECONDS, exit=True, file=sys.__stderr__)  # past pytest's capture


def verdict(call):
    """None when call() returns or raises an allowed one-line error; else what went wrong, in words."""
    signal.setitimer(signal.ITIMER_REAL, CASE_SECONDS)
    try:
        result = call()
    except ALLOWED as e:
        text = str(e)
        if not text or "\n" in text:
            return f"{type(e).__name__} of {len(text.splitlines())} line(s): {text[:300]!r}"
        return None
    except Hang as e:
        return f"hang: {e}"
    except BaseException as e:  # noqa: BLE001 (every other type is the failure this test looks for)
        if isinstance(e, KeyboardInterrupt):
            raise
        return f"{type(e).__name__}: {str(e)[:300]!r}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    close = getattr(result, "close", None)
    if type(result).__name__ == "Store" and callable(close):
        close()
    return None


def invoke(fn, kwargs):
    kwargs = dict(kwargs)
    args = kwargs.pop("_args", [])
    return fn(*args, **kwargs)


def keywords(fn, base):
    """The parameters to fuzz: every named one of fn's signature, the base call's other keywords
    (a **kwargs function's), "_args[i]" for its positional arguments, and an unknown keyword when
    fn takes **kwargs."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        params = []
    kinds = inspect.Parameter
    names = [p.name for p in params if p.kind in (kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY) and p.name != "self"]
    assert not [p for p in params if p.kind is kinds.POSITIONAL_ONLY], fn
    names += [k for k in base if k not in names and k not in ("_args", "self")]
    names += [("_args", i) for i in range(len(base.get("_args", [])))]
    if any(p.kind is kinds.VAR_KEYWORD for p in params):
        names.append("no_such_keyword")
    return names


def substitute(base, key, value):
    kwargs = dict(base)
    if isinstance(key, tuple):
        args = list(kwargs["_args"])
        args[key[1]] = value
        kwargs["_args"] = args
    else:
        kwargs[key] = value
    return kwargs


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("world")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BPTT_BACKEND", "reference")
        mp.chdir(folder)
        return World(folder)


@pytest.fixture
def scratch(world, monkeypatch):
    """The cases' setting: the reference backend, the scratch folder as the working directory, no Dask cluster."""
    from bptt.sweep import runner

    def no_cluster(*a, **k):
        raise ValueError("no Dask cluster in this test")

    monkeypatch.setenv("BPTT_BACKEND", "reference")
    monkeypatch.chdir(world.folder)
    for name in BASE:
        (world.folder / "cwd" / name).mkdir(parents=True, exist_ok=True)
    monkeypatch.setattr(runner, "local_cluster", no_cluster)
    return world


def test_every_public_callable_has_a_base_call_or_a_reason():
    api = public_callables()
    missing = sorted(set(api) - set(BASE) - set(EXCLUDED))
    stale = sorted((set(BASE) | set(EXCLUDED) | set(METHODS_LEFT_OUT)) - set(api))
    assert not missing, f"public callables without a base call in BASE (or a reason in EXCLUDED): {missing}"
    assert not stale, f"BASE, EXCLUDED or METHODS_LEFT_OUT names what is not public (any more): {stale}"


def test_every_keyword_of_every_public_function_takes_bad_values(scratch):
    w = scratch
    api = {n: f for n, f in public_callables().items() if n in BASE}
    failures, cases, took = [], 0, {}
    with watchdog():
        for name, fn in api.items():
            os.chdir(w.folder / "cwd" / name)  # a path-like string names a file of this function's own
            deadline()
            base = BASE[name](w)
            problem = verdict(lambda: invoke(fn, base))
            assert problem is None, f"the base call of {name} must succeed: {problem}"
            start = time.perf_counter()
            for key in keywords(fn, base):
                valid = base.get(key) if not isinstance(key, tuple) else base["_args"][key[1]]
                for label, value in bad_values(valid, w):
                    kwargs = substitute(BASE[name](w) if _fresh(name) else base, key, value)
                    problem = verdict(lambda: invoke(fn, kwargs))
                    cases += 1
                    if problem:
                        failures.append(f"{name}({_kw(key)}={label}): {problem}")
            took[name] = time.perf_counter() - start
    slowest = sorted(took.items(), key=lambda kv: -kv[1])[:5]
    print(f"{cases} cases; slowest functions: " + ", ".join(f"{n} {s:.2f} s" for n, s in slowest))
    assert not failures, f"{len(failures)} of {cases} cases failed:\n" + "\n".join(failures[:80])
    assert cases >= MIN_CASES, cases


def _fresh(name):
    """Whether each case needs a base call of its own (one that writes a file or folder once)."""
    return name in ("bptt.Model.save", "bptt.train.train", "bptt.sweep.run_sweep", "bptt.files.write_atomic",
                    "bptt.train.checkpoint.save", "bptt.explore.write_explorer", "bptt.explore.output_path",
                    "bptt.sweep.plot")


def _kw(key):
    return f"<positional {key[1]}>" if isinstance(key, tuple) else key


# --- file-reading entries, fed special files ------------------------------------------------------------
def _good_npz():
    buf = io.BytesIO()
    m = bptt.random_rnn(3, 3, 3, seed=0)
    np.savez(buf, meta=np.array(json.dumps({"format": "bptt.RNN/1", **m.settings})), **m.params)
    return buf.getvalue()


def _make(kind, path: Path):
    """Put the special file `kind` at path (or leave path missing); returns the path to give."""
    data = {"empty": b"", "nested-json": b"[" * 50_000 + b"]" * 50_000,
            "nested-toml": b"x = " + b"[" * 5000 + b"]" * 5000 + b"\n",
            "garbage-npy-header": b"\x93NUMPY\x01\x00\x20\x00{'descr': '''<f8, 'shape': (3,)}  \n",
            "truncated-npz": _good_npz()[:300], "npz-without-its-end": _good_npz()[:-30],
            "random-bytes": np.random.default_rng(0).bytes(3000), "utf-16": '{"a": 1}'.encode("utf-16")}
    if kind in data:
        path.write_bytes(data[kind])
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "folder":
        path.mkdir()
    elif kind == "symlink-loop":
        path.symlink_to(path)
    elif kind == "dangling-symlink":
        path.symlink_to(path.parent / "nowhere")
    elif kind == "sparse-2GB":
        with open(path, "wb") as f:
            f.truncate(2**31)
    elif kind == "newline-in-name":
        path = path.with_name(path.name + "\nforged: line")
        path.write_bytes(b"\x00\x01garbage")
    elif kind == "name-too-long":
        path = path.with_name("x" * 300)
    elif kind == "nul-in-name":
        return str(path) + "\x00.npz"
    else:
        assert kind == "missing", kind
    return path


FILE_KINDS = ("fifo", "dev-zero", "folder", "missing", "empty", "nested-json", "nested-toml", "garbage-npy-header",
              "truncated-npz", "npz-without-its-end", "random-bytes", "utf-16", "symlink-loop", "dangling-symlink",
              "sparse-2GB", "newline-in-name", "name-too-long", "nul-in-name")
RUN_KINDS = tuple(k for k in FILE_KINDS if k not in ("newline-in-name", "name-too-long", "nul-in-name"))


def _cli(*argv):
    """bptt argv in this process: None on exit 0, else the ValueError its one-line error stands for."""
    from bptt.cli import main

    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main([str(a) for a in argv])
    lines = err.getvalue().strip().splitlines()
    if code == 0:
        return None
    assert code == 2 and lines and "Traceback" not in err.getvalue(), (code, err.getvalue()[-2000:])
    assert lines[-1].startswith(f"bptt {argv[0]}: error: "), lines
    raise ValueError(lines[-1])


def _run_copy(w, source, name, kind):
    """A copy of the run folder source with its file name replaced by the special file kind."""
    import shutil

    run = w.fresh("run")
    shutil.copytree(source, run)
    (run / name).unlink()
    _make(kind, run / name)
    return run


def _readers(w):
    """name -> (kinds, function of a path or of a kind): every entry that reads a file it is given."""
    from bptt import sweep
    from bptt.files import read_bytes, read_json, read_text, run_folder
    from bptt.tasks import CharLM, make
    from bptt.train import checkpoint, read_toml, train
    from bptt.validate import read_npy

    quiet = dict(progress=False, log=lambda s: None)
    small = ["--hidden", "3", "--length", "6"]
    at = lambda source, name, call: (RUN_KINDS, lambda kind: call(_run_copy(w, source, name, kind)))  # noqa: E731
    return {
        "Model.load": (FILE_KINDS, bptt.Model.load),
        "RNN.load": (FILE_KINDS, bptt.RNN.load),
        "checkpoint.load": (FILE_KINDS, checkpoint.load),
        "read_toml": (FILE_KINDS, read_toml),
        "load_spec": (FILE_KINDS, sweep.load_spec),
        "Store": (FILE_KINDS, lambda p: sweep.Store(p, create=False, readonly=True)),
        "Store.open": (FILE_KINDS, sweep.Store.open),
        "status_text": (FILE_KINDS, sweep.status_text),
        "results": (FILE_KINDS, sweep.results),
        "run_sweep": (FILE_KINDS, lambda p: sweep.run_sweep(p, w.fresh("sweep"), workers=1, progress=False)),
        "CharLM.from_file": (FILE_KINDS, CharLM.from_file),
        "tasks.make(char)": (FILE_KINDS, lambda p: make("char", text=p)),
        "read_npy": (FILE_KINDS, lambda p: read_npy(p, "inputs")),
        "files.read_bytes": (FILE_KINDS, lambda p: read_bytes(p, "the file", 10_000)),
        "files.read_text": (FILE_KINDS, lambda p: read_text(p, "the file", 10_000)),
        "files.read_json": (FILE_KINDS, lambda p: read_json(p, "the file")),
        "files.run_folder": (FILE_KINDS, run_folder),
        "sweep store in a folder": at(w.sweep, "results.sqlite", sweep.status_text),
        "resume: metrics.jsonl": at(w.run, "metrics.jsonl", lambda r: train(w.cfg, r, resume=True, **quiet)),
        "resume: checkpoint.npz": at(w.run, "checkpoint.npz", lambda r: train(w.cfg, r, resume=True, **quiet)),
        "resume: config.json": at(w.run, "config.json", lambda r: train(w.cfg, r, resume=True, **quiet)),
        "bptt check --model": (FILE_KINDS, lambda p: _cli("check", "--model", p, "--frameworks", "none")),
        "bptt flow --model": (FILE_KINDS, lambda p: _cli("flow", "--model", p, "--length", "6")),
        "bptt approx --model": (FILE_KINDS, lambda p: _cli("approx", "--model", p, "--length", "6")),
        "bptt flow --x": (FILE_KINDS, lambda p: _cli("flow", "--x", p, *small)),
        "bptt flow --y": (FILE_KINDS, lambda p: _cli("flow", "--x", w.npy, "--y", p, *small)),
        "bptt train --config": (FILE_KINDS, lambda p: _cli("train", "--config", p, "--out", w.fresh("run"),
                                                           "--steps", "1", "--quiet")),
        "bptt train --text": (FILE_KINDS, lambda p: _cli("train", "--task", "char", "--text", p, "--out",
                                                         w.fresh("run"), "--steps", "1", "--hidden", "2",
                                                         "--quiet")),
        "bptt sweep SPEC": (FILE_KINDS, lambda p: _cli("sweep", p, "--out", w.fresh("sweep"), "--quiet")),
        "bptt sweep status DIR": (FILE_KINDS, lambda p: _cli("sweep", "status", p)),
        "bptt sweep status (store)": at(w.sweep, "results.sqlite", lambda r: _cli("sweep", "status", r)),
        "bptt evaluate RUN": (FILE_KINDS, lambda p: _cli("evaluate", p)),
        "bptt evaluate (config.json)": at(w.run, "config.json", lambda r: _cli("evaluate", r)),
        "bptt evaluate (model.npz)": at(w.run, "model.npz", lambda r: _cli("evaluate", r)),
        "bptt evaluate --checkpoint": at(w.run, "checkpoint.npz", lambda r: _cli("evaluate", r, "--checkpoint")),
        "bptt sample (vocab.json)": at(w.char_run, "vocab.json", lambda r: _cli("sample", r, "-n", "3")),
        "bptt sample (model.npz)": at(w.char_run, "model.npz", lambda r: _cli("sample", r, "-n", "3")),
        "bptt train --resume (metrics.jsonl)": at(w.run, "metrics.jsonl", lambda r: _cli(
            "train", "--config", w.run_toml, "--out", r, "--resume", "--quiet")),
    }


def test_every_file_reading_entry_refuses_special_files_in_a_sentence(scratch):
    w = scratch
    failures, cases, took = [], 0, {}
    with watchdog():
        for name, (kinds, read) in _readers(w).items():
            start = time.perf_counter()
            deadline()
            for kind in kinds:
                os.chdir(w.folder)
                if kinds is RUN_KINDS:
                    problem = verdict(lambda: read(kind))
                else:
                    folder = w.fresh("special")
                    folder.mkdir()
                    path = _make(kind, folder / "file")
                    problem = verdict(lambda: read(path))
                cases += 1
                if problem:
                    failures.append(f"{name} <- {kind}: {problem}")
            took[name] = time.perf_counter() - start
    slowest = sorted(took.items(), key=lambda kv: -kv[1])[:8]
    print(f"{cases} cases; slowest entries: " + ", ".join(f"{n} {s:.2f} s" for n, s in slowest))
    assert not failures, f"{len(failures)} of {cases} cases failed:\n" + "\n".join(failures)
