"""Point runners: what one point of a sweep computes, inside a Dask worker.

A kind is a set of parameters (with defaults and allowed values, checked when a spec loads) and a
function run(params, seed) -> metrics (a flat dict of numbers, booleans or strings). The public
kinds take `cell`, a registered cell (bptt.cells; approx also a variant such as Keras's reset-before
GRU). A parameter that does not apply to a point's cell (one its settings and init do not take: the
Elman cell's radius, activation, init, std and omega; the LSTM's forget_bias; bias for the LRU and
the linear cell; approx's radius for a cell without a recurrent W) is stored at its
default (Kind.normalize), so points that differ only in it are one point.

`run_point` wraps a kind's function for the worker: it limits BLAS/OpenMP to one thread for the
duration of the point (a worker runs one point per thread, so more BLAS threads would only
oversubscribe the cores), records timings and where it ran, and turns an exception into a failed
result with its traceback instead of raising, so the sweep goes on and the driver stores the failure.

Kinds:
  flow      the gradient flow of a random model on a random sequence (bptt.flow): decay rate of
            the error with lag, share of the gradient from lags beyond `long_lag`, ...
  train     one training run (bptt.train); see its parameters below.
  approx    the bias of every approximation of the gradient (window K, TBPTT, RTRL, UORO, SnAp) on
            a random model and sequence (bptt.approx.measure).
  selftest  internal, for the test-suite only: sleeps, returns, raises or kills its own worker
            process on request, to exercise the failure handling of the sweep machinery.
"""
from __future__ import annotations

import importlib
import math
import os
import socket
import time
import traceback
from dataclasses import dataclass

import numpy as np

from .. import cells
from ..activations import ACTIVATIONS
from .params import Param
from ..validate import show

DTYPES = ("float32", "float64")
SPELLINGS = cells.variants() + tuple(a for n in cells.names() for a, s in cells.get(n).aliases.items() if not s)


def _takes(option):
    """A test of a Cell subclass: whether its settings or its init take this option."""
    return lambda cls: option in cls.options()


@dataclass(frozen=True)
class Kind:
    name: str
    params: dict          # name -> Param
    run: str              # "module:function", imported in the worker
    public: bool = True
    check: object = None  # optional check(params, where) of a whole point
    only: dict | None = None  # parameter -> a test of the Cell subclasses it applies to (others store its default)

    def normalize(self, params) -> dict:
        """The point's parameters with the cell in its one spelling ("elman" -> "rnn") and those that
        do not apply to its cell set to their defaults."""
        if "cell" not in params:
            return dict(params)
        params = {**params, "cell": cells.canonical(params["cell"])}
        cls = cells.get(params["cell"])
        return {n: (self.params[n].default if self.only and n in self.only and not self.only[n](cls) else v)
                for n, v in params.items()}

    def check_point(self, params, where):
        if self.check is not None:
            self.check(params, where)


# --- flow ---------------------------------------------------------------------------------
FLOW_PARAMS = {
    "cell": Param(str, "rnn", "rnn (the Elman cell: random_rnn, W at `radius`) or another registered cell "
                  "(random_model: the gated cells with PyTorch's uniform init, the LRU and the linear cell with their "
                  "own)", choices=SPELLINGS),
    "hidden": Param(int, 32, "H, hidden units", low=1),
    "inputs": Param(int, 8, "D, input size (ids in 0..D-1 for head softmax)", low=1),
    "outputs": Param(int, 8, "O, output size", low=1),
    "length": Param(int, 100, "T, steps of the sequence", low=2),
    "radius": Param(float, 1.0, "elman: spectral radius of W (W is rescaled to it)", above=0),
    "activation": Param(str, "tanh", "elman: f", choices=tuple(ACTIVATIONS)),
    "init": Param(str, "normal", "elman: W before rescaling: normal (std 1/sqrt(H), the default here; bptt.random_rnn's is "
                  "uniform), uniform, orthogonal, identity",
                  choices=("normal", "uniform", "orthogonal", "identity")),
    "forget_bias": Param(float, 1.0, "a cell with a forget gate: added to its bias (0: PyTorch's init)"),
    "head": Param(str, "softmax", "softmax (random ids in and out) or mse (Gaussian inputs and targets)",
                  choices=("softmax", "mse")),
    "bias": Param(bool, False, "the Elman cell: biases b and c (zero); a gated cell: b, bh and c (PyTorch's "
                  "uniform init); a cell whose init takes no bias (the LRU, the linear cell): its own"),
    "long_lag": Param(int, 50, "the lag beyond which gradient counts as long-range", low=1),
    "dtype": Param(str, "float32", "the model's and the computation's dtype", choices=DTYPES),
}


def _check_flow(p, where):
    from ..validate import too_big

    if p["long_lag"] >= p["length"]:
        raise ValueError(f"{where}: long_lag = {p['long_lag']} must be < length = {p['length']} "
                         "(no term has a lag of length or more)")
    H, D, O, T = p["hidden"], p["inputs"], p["outputs"], p["length"]
    G = max(int(s[:-1] or 1) for q in cells.get(p["cell"]).params.values() for s in q.shape if s.endswith("H"))
    too_big(f"{where}: hidden = {H}, inputs = {D}, outputs = {O}, length = {T} (weights, trace and the (T, T) "
            "tables of a point)", G * H * (H + D) + O * H + T * (G * H + O) + T * T)


def run_flow(p, seed) -> dict:
    """The lag analysis of a random model (H, D, O, W at spectral radius `radius`) on a random sequence."""
    from .. import fast
    from ..flow import flow
    from ..model import random_model
    from ..theory import recurrence_norms

    dtype = np.dtype(p["dtype"])
    rng = np.random.default_rng(seed)
    H, D, O, T = p["hidden"], p["inputs"], p["outputs"], p["length"]
    options = {k: p[k] for k in ("init", "radius", "activation", "forget_bias") if k in cells.get(p["cell"]).options()}
    if "init" in options:
        options["std"] = 1 / math.sqrt(H) if p["init"] == "normal" else None
    if "bias" in cells.get(p["cell"]).options():
        options["bias"] = p["bias"]
    model = random_model(p["cell"], H, D, O, seed=rng, head=p["head"], dtype=dtype, **options)
    if p["head"] == "softmax":
        x, y = rng.integers(0, D, T), rng.integers(0, O, T)  # (T,), (T,)
    else:
        x, y = rng.standard_normal((T, D)).astype(dtype), rng.standard_normal((T, O)).astype(dtype)
    fast.wait_for_kernels()  # the same loops for every point, first in its worker or not
    decay = share = lag0 = loss = math.nan  # an overflow (float32) leaves them undefined
    try:
        fl = flow(model, x, y)
        finite = bool(np.all(np.isfinite(fl.trace.S)))
        loss = float(fl.loss)
    except FloatingPointError:
        finite = False
    with np.errstate(all="ignore"):
        if finite:
            prof = fl.by_lag()
            share, lag0 = float(prof.beyond[p["long_lag"]]), float(prof.norm_mean[0])
            try:
                decay = fl.decay_rate()
            except ValueError:  # no error reaches a lag >= 1 with a non-zero size
                pass
    rho, lambda1 = recurrence_norms(model)
    return {
        "loss": loss,
        "decay_rate": decay,                 # Flow.decay_rate(): per-step factor of ||dE_t/ds_k|| with the lag
        "long_lag_fraction": share,          # Flow.by_lag().beyond[long_lag]: share of lags > long_lag
        "grad_lag0": lag0,                   # mean ||dE_t/ds_t||
        "rho": rho,
        "lambda1": lambda1,
        "finite": finite,
    }


# --- train --------------------------------------------------------------------------------
METHODS = ("vanilla", "clip", "clip_omega", "irnn")
GATED_METHODS = ("vanilla", "clip")  # the methods of a gated cell (Omega and the IRNN are the Elman cell's)
TRAIN_PARAMS = {
    "task": Param(str, "temporal", "adding, temporal (order) or copy", choices=("adding", "temporal", "copy")),
    "cell": Param(str, "rnn", "rnn (the Elman cell) or another registered cell; a gated cell starts from "
                  "PyTorch's uniform init, the LRU and the linear cell from their own, and each takes method "
                  "vanilla or clip", choices=SPELLINGS),
    "variant": Param(str, "hochreiter", "the adding problem's variant", choices=("hochreiter", "le")),
    "length": Param(int, 50, "T, the task's sequence length", low=2),
    "method": Param(str, "clip", "vanilla: tanh, Gaussian W (std), no clipping; clip: + global-norm clipping at "
                    "`clip_norm`; clip_omega: + Pascanu's Omega with strength `omega`; irnn: relu, W = I, clipping",
                    choices=METHODS),
    "hidden": Param(int, 50, "H", low=1),
    "optimizer": Param(str, "sgd", "sgd, momentum, nesterov, adagrad, rmsprop or adam",
                       choices=("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam")),
    "lr": Param(float, 0.01, "learning rate", above=0),
    "batch": Param(int, 20, "N, sequences per step", low=1),
    "steps": Param(int, 2000, "at most this many updates", low=1),
    "eval_every": Param(int, 100, "test-set evaluation interval (steps)", low=1),
    "stop_on_success": Param(bool, True, "end the run at the first evaluation that meets the task's criterion"),
    "clip_norm": Param(float, 1.0, "the global-norm clipping threshold, as train's --clip-norm (methods clip, "
                       "clip_omega, irnn)", above=0),
    "omega": Param(float, 2.0, "alpha, the strength of Omega (clip_omega)", above=0),
    "std": Param(float, 0.1, "elman: standard deviation of the Gaussian init (all methods but irnn)", above=0),
    "forget_bias": Param(float, 1.0, "a cell with a forget gate: added to its bias at the start (0: PyTorch's "
                         "init)"),
    "dtype": Param(str, "float32", "the training dtype", choices=DTYPES),
}


def train_settings(p, seed) -> dict:
    """The point's parameters as bptt.train settings (the method spelled out)."""
    m = p["method"]
    s = {"task": p["task"], "variant": p["variant"], "length": p["length"], "cell": p["cell"],
         "hidden": p["hidden"], "optimizer": p["optimizer"], "lr": p["lr"], "batch": p["batch"], "steps": p["steps"],
         "eval_every": p["eval_every"], "checkpoint_every": p["steps"], "dtype": p["dtype"], "seed": seed,
         "clip_norm": 0.0 if m == "vanilla" else p["clip_norm"], "clip_value": 0.0,
         "omega": p["omega"] if m == "clip_omega" else 0.0, "stop_on_success": p["stop_on_success"]}
    cls = cells.get(cells.canonical(p["cell"]))
    if "init" not in cls.options():  # a cell with its own initialisation
        s.update(init="uniform", forget_bias=p["forget_bias"] if "forget_bias" in cls.options() else None)
    elif m == "irnn":
        s.update(activation="relu", init="identity")
    else:
        s.update(activation="tanh", init="normal", std=p["std"])
    return s


def _check_train(p, where):
    from bptt import tasks
    from bptt.train import resolve

    if not cells.get(cells.canonical(p["cell"])).pascanu and p["method"] not in GATED_METHODS:
        raise ValueError(f"{where}: method {show(p['method'])} is the Elman cell's; a point with cell {show(p['cell'])} "
                         f"takes method {' or '.join(GATED_METHODS)}")
    try:
        resolve(train_settings(p, 0))
        tasks.make(p["task"], length=p["length"], variant=p["variant"])
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None


def run_train(p, seed) -> dict:
    """One training run (bptt.train.train) in a temporary folder; its summary and last evaluation as metrics.

    A run that diverges (NaN/Inf, the loop's stop) is a result, not a failure: success False, diverged True.
    """
    import json
    import tempfile

    from bptt.train import Diverged, resolve, train

    cfg = resolve(train_settings(p, seed))
    with tempfile.TemporaryDirectory(prefix="bptt-sweep-") as d:
        try:
            summary = train(cfg, d, progress=False, log=lambda *a, **k: None)
            diverged = None
        except Diverged as e:
            summary, diverged = {"test_success": False}, str(e)
        lines = [json.loads(ln) for ln in open(os.path.join(d, "metrics.jsonl")) if ln.strip()]
    evals = [r for r in lines if "rho" in r]
    last = evals[-1] if evals else {}
    out = {"success": bool(summary.get("test_success")), "diverged": diverged is not None,
           "steps_done": lines[-1]["step"] if lines else 0, "solved_at": summary.get("solved_at"),
           "baseline": summary.get("baseline"), "train_seconds": summary.get("wall_s"),
           "grad_norm": lines[-1]["grad_norm"] if lines else None,
           "rho": last.get("rho"), "lambda1": last.get("lambda1"), "lag_fraction": last.get("lag_fraction")}
    out.update({k: v for k, v in summary.items()
                if k.startswith("test_") and k != "test_success" and isinstance(v, (int, float))})
    return out


# --- approx -------------------------------------------------------------------------------
APPROX_PARAMS = {
    "cell": Param(str, "rnn", f"a registered cell or a variant of one: {', '.join(cells.variants())}",
                  choices=SPELLINGS),
    "hidden": Param(int, 16, "H, hidden units", low=1, high=256),
    "inputs": Param(int, 8, "D, the number of input ids", low=1),
    "outputs": Param(int, 8, "O, the number of output classes", low=1),
    "length": Param(int, 50, "T, steps of the random sequence", low=1, high=2000),
    "batch": Param(int, 1, "N, random sequences", low=1),
    "radius": Param(float, 1.0, "the spectral radius of W (of each gate's H x H block)", above=0),
    "window": Param(int, 10, "the notebook's window K measured", low=0),
    "k1": Param(int, 5, "TBPTT(k1, k2): an update every k1 steps", low=1),
    "k2": Param(int, 10, "TBPTT(k1, k2): k2 steps back", low=1),
    "samples": Param(int, 100, "n, UORO estimates averaged", low=1, high=100_000),
    "delta": Param(float, 0.01, "the tolerance of the smallest window K (relative error, all parameters)", low=0),
}
APPROX_METHODS = ("window", "tbptt", "rtrl", "uoro", "snap1", "snap2")  # measure()'s rows, in order


def _check_approx(p, where):
    if p["window"] > p["length"]:
        raise ValueError(f"{where}: window = {p['window']} must be <= length = {p['length']}")
    if p["k2"] < p["k1"]:
        raise ValueError(f"{where}: k2 = {p['k2']} must be >= k1 = {p['k1']} (TBPTT(k1, k2) looks back k2 >= k1 steps)")


def run_approx(p, seed) -> dict:
    """Every approximation's bias on a random model and sequence (bptt.approx.measure): for each
    method its relative error ("<method>_rel") and cosine ("<method>_cos") to the exact gradient, of
    all parameters together and of W ("..._W"), the smallest window K that meets `delta`, the loss."""
    from ..approx.measure import measure, random_data, random_model

    rng = np.random.default_rng(seed)
    model = random_model(p["cell"], p["hidden"], p["inputs"], p["outputs"], p["radius"], rng)
    x, y = random_data(model, p["length"], p["batch"], rng)
    res = measure(model, x, y, windows=(p["window"],), rules=((p["k1"], p["k2"]),), samples=p["samples"],
                  seed=seed, delta=p["delta"])
    out = {"loss": res["loss"], "smallest_window": res["smallest_window"]}
    for name, row in zip(APPROX_METHODS, res["methods"]):
        for stat in ("rel", "cos"):
            out[f"{name}_{stat}"] = row["all"][stat]
            out[f"{name}_{stat}_W"] = row["W"][stat] if "W" in row else None  # a cell without W: none
    return out


# --- selftest (internal) ------------------------------------------------------------------
SELFTEST_PARAMS = {
    "mode": Param(str, "ok", "ok, raise, exit (kills its worker every time), exit_once (kills its worker "
                  "once: the first run creates `marker`)", choices=("ok", "raise", "exit", "exit_once")),
    "seconds": Param(float, 0.0, "sleep this long first", low=0, high=60),
    "value": Param(float, 0.0, "returned as value * 2 + seed"),
    "marker": Param(str, "", "a file path, for exit_once"),
}


def _check_selftest(p, where):
    if p["mode"] == "exit_once" and not p["marker"]:
        raise ValueError(f"{where}: mode 'exit_once' needs marker, a file path")


def run_selftest(p, seed) -> dict:
    """Internal: sleep, then return, raise or SIGKILL this worker process (see SELFTEST_PARAMS)."""
    import signal

    time.sleep(p["seconds"])
    if p["mode"] == "raise":
        raise RuntimeError(f"selftest point raised on purpose (value {p['value']})")
    if p["mode"] == "exit" or (p["mode"] == "exit_once" and not os.path.exists(p["marker"])):
        if p["mode"] == "exit_once":
            with open(p["marker"], "w") as f:
                f.write(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    blas = _blas_threads()
    return {"value": p["value"] * 2 + seed, "pid": os.getpid(), "blas_threads_seen": blas}


KINDS = {
    "flow": Kind("flow", FLOW_PARAMS, "bptt.sweep.points:run_flow", check=_check_flow,
                 only={k: _takes(k) for k in ("radius", "activation", "init", "forget_bias", "bias")}),
    "train": Kind("train", TRAIN_PARAMS, "bptt.sweep.points:run_train", check=_check_train,
                  only={"std": _takes("init"), "omega": lambda cls: cls.pascanu, "forget_bias": _takes("forget_bias")}),
    "approx": Kind("approx", APPROX_PARAMS, "bptt.sweep.points:run_approx", check=_check_approx,
                   only={"radius": lambda cls: any(q.role == "recurrent" for q in cls.params.values())}),
    "selftest": Kind("selftest", SELFTEST_PARAMS, "bptt.sweep.points:run_selftest", public=False,
                     check=_check_selftest),
}


# --- the worker side ----------------------------------------------------------------------
def _blas_threads():
    """The largest thread count among the loaded BLAS libraries (None when threadpoolctl sees none)."""
    from threadpoolctl import threadpool_info

    n = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]
    return max(n) if n else None


def _json_number(v):
    """Metrics go to JSON: numpy scalars become Python numbers, non-finite floats become None."""
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    if v is None or isinstance(v, str):
        return v
    raise TypeError(f"a metric must be a number, a boolean, a string or None, got {type(v).__name__}")


def run_point(config: dict) -> dict:
    """Run one point {"kind", "params", "seed"} and return its result (never raises for the point's errors).

    Result: status ("ok" or "failed"), metrics (dict or None), error (one line) and traceback
    (text) when it failed, started_at/finished_at (Unix seconds), seconds (duration), worker
    ("host:pid"), blas_threads (the BLAS thread count seen inside the point), version.
    """
    from threadpoolctl import threadpool_limits

    from .. import __version__

    started = time.time()
    t0 = time.perf_counter()
    out = {"status": "failed", "metrics": None, "error": None, "traceback": None, "blas_threads": None}
    try:
        kind = KINDS[config["kind"]]
        module, func = kind.run.split(":")
        fn = getattr(importlib.import_module(module), func)  # import first: its libraries get limited too
        with threadpool_limits(limits=1):
            out["blas_threads"] = _blas_threads()
            params = {**{n: q.default for n, q in kind.params.items()}, **config["params"]}  # a config
            metrics = fn(params, config["seed"])  # stored before a parameter existed runs at its default
        out["metrics"] = {k: _json_number(v) for k, v in metrics.items()}
        out["status"] = "ok"
    except Exception as e:  # the point failed: record it, the sweep goes on
        out["error"] = f"{type(e).__name__}: {e}".splitlines()[0][:500]
        out["traceback"] = traceback.format_exc()
    out.update(started_at=started, finished_at=time.time(), seconds=time.perf_counter() - t0,
               worker=f"{socket.gethostname()}:{os.getpid()}", version=__version__)
    return out
