"""Training settings: one validated dataclass, filled from task defaults, a TOML file and the command line.

A clipping threshold of 0 turns that rule off (the tasks' paper defaults clip).
minutes is a wall-clock budget: the run ends after the first update that finds it spent (counted
from the start of the call: a resumed run's budget starts again), however many steps are left;
None (default): no budget.
Precedence: command-line flags > TOML file ([train] table or top level) > the task's paper defaults >
the general defaults below. TOML is parsed with tomllib (tomli before Python 3.11); nothing is
executed. Unknown keys and wrong types are errors that name the key.

The cell: any registered cell (bptt.cells.names(); "rnn", the Elman cell, by default) or alias.
A setting that belongs to some cells only is checked against the cell's declaration (its settings
and the options of its init; bptt.cells):
    activation, radius, init orthogonal / identity (IRNN)    the Elman cell's
    omega              Pascanu's regulariser, for a cell whose bound it is (the Elman cell)
    forget_bias        a cell whose init takes it (the LSTM): added to the forget gate's input bias
                       at the start; default 1.0 (Gers et al. 2000; Jozefowicz et al. 2015; Keras's
                       unit_forget_bias), where PyTorch's nn.LSTM starts from 0; give 0 for PyTorch's
    reset_after        a cell with that setting (the GRU): True (default) or False (the reset gate
                       before W_n, Keras's reset_after=False)
    r_min, r_max       a cell whose init takes them (the LRU: the ring r_min <= |lambda| <= r_max;
                       the linear cell: lambda's range); default the cell's init's (0 and 1)
    max_phase, normalise   the LRU's: the eigenvalues' phases on [0, max_phase] (default 2 pi), and
                       gamma = sqrt(1 - |lambda|^2) (true, default) or gamma = 1 (false)
    dt, gamma, eps, implicit   the coRNN's settings: its time step dt > 0, gamma >= 0 and eps >= 0
                       (default the authors' sMNIST run: 0.042, 2.7, 4.7), and the paper's implicit
                       damping (true, default) or the authors' code's explicit one (false)
    std, bias = false  a cell whose init takes them (not the LRU's nor the linear cell's)
    layers, bidirectional   a bptt.Stack of the cell when layers > 1 or bidirectional (default 1,
                       false: one layer); a stack refuses omega, param, truncate, the fallback
                       "shrink", and a bidirectional one the stream tasks and snapshots
                       (bptt.train.stacked)
    param, param_lr    a cell whose recurrent matrix W is square (the Elman cell): train A instead of W,
                       W = expm(A) ("exp") or Cayley(A) ("cayley") of A's skew part (bptt.param), so
                       that W stays orthogonal; A by the same optimiser at param_lr (default lr). A
                       starts from Henaff's initialisation (init "henaff", the default with param) or
                       from 0 (init "identity": W = I); the fallback "shrink" (which scales W) is refused
    floss, floss_steps, floss_every, floss_weight, floss_lr   gradient flossing (Engelken 2023;
                       bptt.floss), for a cell whose step Jacobian has its derivative (the Elman cell,
                       the LSTM): floss = k pushes the k leading Lyapunov exponents of the forward
                       dynamics towards 0 by their exact gradient. Before training, floss_steps
                       (default 100) Adam updates at floss_lr (default 0.003) of the regulariser alone,
                       mean over a batch of the sum of the k exponents' squares, on one batch of the
                       task drawn for it (the paper's flossing before training); during training,
                       every floss_every-th update (default 0: never) adds floss_weight (default 1)
                       times its gradient on the update's batch to the update's gradient (flossing
                       during training). Not with param (its W is kept orthogonal)
Given for another cell, each is a ValueError; a value the cell's init refuses (e.g. r_min >= r_max)
is one when the settings are read. A setting left out (None) is filled in with the cell's default
(its init's, or TRAIN_DEFAULTS's where training starts otherwise), so config.json shows it.
A cell whose init has no `init` option starts from its own initialisation: init "uniform" is its
default (PyTorch's +-1/sqrt(H) for the gated cells, the ring for the LRU), init "normal" Gaussian
with std for a cell whose init takes std. The tasks' paper defaults for the Elman cell (activation,
its Gaussian or orthogonal init and std) do not carry over to other cells.
"""
from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field, fields

from .. import cells
from ..activations import names as activation_names
from ..files import parse_toml, printable, read_text
from ..inits import INITS
from ..validate import show, too_big
from .optim import OPTIMIZERS

OWN_INITS = ("uniform", "normal")  # init for a cell without an init option: its default, or Gaussian with std
CELL_OPTIONS = ("activation", "radius", "forget_bias", "reset_after", "r_min", "r_max", "max_phase",
                "normalise", "dt", "gamma", "eps", "implicit")  # settings that some cells take (Cell.options)
TRAIN_DEFAULTS = {"forget_bias": 1.0}  # where training starts a cell otherwise than its init's default
FLOATS = ("lr", "param_lr", "minutes", "floss_weight", "floss_lr",
          "clip_norm", "clip_value", "clip_per_param", "omega", "std", "radius", "forget_bias",
          "r_min", "r_max", "max_phase", "dt", "gamma", "eps")  # settings that are numbers (a TOML integer is taken as one)


@dataclass
class TrainConfig:
    task: str = "reber"
    text: str | None = None
    variant: str = "hochreiter"
    length: int | None = None
    cell: str = "rnn"
    hidden: int = 50
    layers: int = 1                   # > 1, or bidirectional: a bptt.Stack of the cell (bptt.train.stacked)
    bidirectional: bool = False
    activation: str | None = None  # the Elman cell's f; None: tanh
    init: str = "uniform"
    std: float | None = None
    radius: float | None = None
    forget_bias: float | None = None  # LSTM only; None: 1.0
    reset_after: bool | None = None   # GRU only; None: True
    r_min: float | None = None        # LRU, linear: |lambda|'s (lambda's) range; None: the cell's default
    r_max: float | None = None
    max_phase: float | None = None    # LRU only; None: 2 pi
    normalise: bool | None = None     # LRU only; None: True (gamma_log); False: gamma = 1
    dt: float | None = None           # coRNN only: the time step; None: the cell's default (0.042)
    gamma: float | None = None        # coRNN only: y's restoring force; None: 2.7
    eps: float | None = None          # coRNN only: the damping; None: 4.7
    implicit: bool | None = None      # coRNN only: the paper's implicit damping (None: True) or explicit
    bias: bool = True
    param: str | None = None          # "exp" or "cayley": W = param(A), A trained (cells with a square W)
    param_lr: float | None = None     # A's learning rate; None: lr
    floss: int | None = None          # k, the leading Lyapunov exponents flossed (bptt.floss); None: off
    floss_steps: int | None = None    # flossing-only updates before training; None: 100 with floss
    floss_every: int | None = None    # add the regulariser's gradient every n-th update; None: 0, never
    floss_weight: float | None = None  # its weight then; None: 1.0
    floss_lr: float | None = None     # the flossing updates' Adam learning rate; None: 0.003
    optimizer: str = "sgd"
    lr: float = 0.01
    clip_norm: float | None = None
    clip_value: float | None = None
    clip_per_param: float | None = None
    fallback: str = "stop"
    omega: float = 0.0
    truncate: int | None = None
    chunk: int = 25
    backprop: int | None = None
    batch: int = 20
    steps: int = 1000
    seed: int = 0
    dtype: str = "float32"
    eval_every: int = 100
    checkpoint_every: int = 100
    lag_threshold: int = 10
    snapshots: list = field(default_factory=list)
    stop_on_success: bool = False
    minutes: float | None = None      # a wall-clock budget; None: none

    @classmethod
    def from_dict(cls, data, source="the settings") -> "TrainConfig":
        """A validated TrainConfig from a dict such as config.json's; unknown keys are a ValueError."""
        if not isinstance(data, dict):
            raise ValueError(f"{source} must be a table of settings, got {show(data)}")
        unknown = sorted(set(data) - KEYS)
        if unknown:
            raise ValueError(f"unknown setting(s) {', '.join(map(show, unknown))} in {source}; "
                             f"known: {', '.join(sorted(KEYS))}")
        return cls(**data).validate()

    def validate(self) -> "TrainConfig":
        from ..tasks import TASKS
        for name in ("task", "variant", "cell", "init", "optimizer", "fallback", "dtype", "text", "activation", "param"):
            v = getattr(self, name)
            if not isinstance(v, str) and not (v is None and name in ("text", "activation", "param")):
                raise ValueError(f"{name} must be a string, got {show(v)}")
        _choice("task", self.task, TASKS)
        _choice("variant", self.variant, ("hochreiter", "le"))
        self._cell_settings()
        _choice("optimizer", self.optimizer, tuple(OPTIMIZERS))
        _choice("fallback", self.fallback, ("stop", "shrink", "skip"))
        _choice("dtype", self.dtype, ("float32", "float64"))
        for name in ("hidden", "chunk", "batch", "eval_every", "checkpoint_every"):
            _int(name, getattr(self, name), 1)
        _int("steps", self.steps, 0)
        _int("seed", self.seed, 0)
        _int("lag_threshold", self.lag_threshold, 0)
        for name in ("length", "truncate", "backprop"):
            if getattr(self, name) is not None:
                _int(name, getattr(self, name), 0 if name == "truncate" else 1)
        if self.task in ("reber", "char") and self.length is not None:
            raise ValueError(f"length applies to adding, copy and temporal; task {show(self.task)} is a stream "
                             "(use chunk and backprop)")
        if self.task == "char" and self.text is None:
            raise ValueError("task 'char' models a text: give one (--text FILE, e.g. the repository's "
                             "data/tinyshakespeare.txt); the embedded Reber corpus is task 'reber'")
        if self.text is not None and self.task != "char":
            raise ValueError(f"text applies to task 'char', not {show(self.task)}")
        if self.backprop is not None and self.backprop < self.chunk:
            raise ValueError(f"backprop (k2 = {self.backprop}) must be at least chunk (k1 = {self.chunk})")
        _pos("lr", self.lr)
        self._param()
        self._floss()
        for name in ("clip_norm", "clip_value", "clip_per_param", "std", "radius", "minutes"):
            if getattr(self, name) is not None:
                _pos(name, getattr(self, name))
        if (not isinstance(self.omega, (int, float)) or isinstance(self.omega, bool) or not self.omega >= 0
                or self.omega == float("inf")):
            raise ValueError(f"omega (the strength alpha of Pascanu's regulariser) must be a finite number >= 0, got {show(self.omega)}")
        if self.init == "normal" and self.std is None:
            raise ValueError("init 'normal' needs std")
        if not isinstance(self.stop_on_success, bool):
            raise ValueError(f"stop_on_success must be true or false, got {show(self.stop_on_success)}")
        if not isinstance(self.bias, bool):
            raise ValueError(f"bias must be true or false, got {show(self.bias)}")
        if not isinstance(self.snapshots, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                                           for s in self.snapshots):
            raise ValueError(f"snapshots must be a list of step numbers >= 0, got {show(self.snapshots)}")
        self._stack()
        self._sizes()
        self._init_values()
        return self

    def stacked(self) -> bool:
        """Whether the run trains a bptt.Stack (layers > 1 or bidirectional) rather than one layer."""
        return self.layers != 1 or self.bidirectional is True

    def _stack(self):
        """layers and bidirectional, and the settings a stack cannot take (bptt.train.stacked's notes)."""
        _int("layers", self.layers, 1)
        if not isinstance(self.bidirectional, bool):
            raise ValueError(f"bidirectional must be true or false, got {show(self.bidirectional)}")
        if not self.stacked():
            return
        what = f"a stack ({self.layers} layer{'s' if self.layers > 1 else ''}" + \
            (", bidirectional)" if self.bidirectional else ")")
        if self.omega:
            raise ValueError(f"omega (Pascanu's regulariser) is derived for one Elman layer, not for {what}: "
                             "give omega 0")
        if self.param is not None:
            raise ValueError(f"param trains one layer's W through A, and {what} has a W per layer: leave param out")
        if self.truncate is not None:
            raise ValueError(f"truncate (the notebook's window) is one layer's rule; {what} trains by full BPTT: "
                             "leave truncate out")
        if self.fallback == "shrink":
            raise ValueError(f"the fallback 'shrink' scales the one recurrent W, and {what} has one per layer: "
                             "give fallback stop or skip")
        if self.bidirectional and self.task in ("reber", "char"):
            raise ValueError(f"task {show(self.task)} is a stream trained by TBPTT, which carries the state forward "
                             "from chunk to chunk; a bidirectional stack's reverse direction needs the inputs after "
                             "each step: give bidirectional false, or a task of whole sequences (adding, copy, temporal)")
        if self.bidirectional and self.snapshots:
            raise ValueError("snapshots are the top layer's bptt.flow table of one direction in time; a bidirectional "
                             "stack has none: leave snapshots out")

    def _param(self):
        """param and param_lr: a parametrisation of a square W, its learning rate and A's start."""
        from ..param import PARAMS
        if self.param is None:
            if self.param_lr is not None:
                raise ValueError(f"param_lr is the learning rate of the parametrised A: give param (exp or cayley) "
                                 f"with it, got param_lr = {show(self.param_lr)} without")
            return
        _choice("param", self.param, tuple(PARAMS))
        if self.param_lr is not None:
            _pos("param_lr", self.param_lr)
        square = [n for n in cells.names() if square_w(n)]
        if not square_w(self.cell):
            raise ValueError(f"param applies to a cell whose recurrent matrix is square ({', '.join(square)}), "
                             f"not to cell {show(self.cell)}")
        if self.init not in ("henaff", "identity"):
            raise ValueError(f"with param, A starts from init 'henaff' (Henaff et al.'s 2x2 rotations) or "
                             f"'identity' (A = 0, W = I), got init {show(self.init)}")
        if self.fallback == "shrink":
            raise ValueError("the fallback 'shrink' scales W, which param keeps orthogonal: give fallback stop or skip")

    def _floss(self):
        """floss and its settings: k in 1..S for a cell with the step Jacobian's derivative; the others'
        defaults filled in; without floss, none of them."""
        from ..floss import supported
        rest = ("floss_steps", "floss_every", "floss_weight", "floss_lr")
        if self.floss is None:
            given = [k for k in rest if getattr(self, k) is not None]
            if given:
                raise ValueError(f"{', '.join(given)} belong{'s' if len(given) == 1 else ''} to gradient flossing: "
                                 f"give floss (k, the leading Lyapunov exponents flossed) with "
                                 f"{'it' if len(given) == 1 else 'them'}")
            return
        S = len(cells.get(self.cell).state) * self.hidden if isinstance(self.hidden, int) else None
        if self.cell not in supported():
            raise ValueError(f"floss applies to the {', '.join(supported())} cells (whose step Jacobian has its "
                             f"derivative), not to cell {show(self.cell)}")
        if self.param is not None:
            raise ValueError(f"floss changes W freely and param keeps it orthogonal: give one of them, got floss = "
                             f"{show(self.floss)} with param = {show(self.param)}")
        _int("floss", self.floss, 1)
        if S is not None and self.floss > S:
            raise ValueError(f"floss (k = {self.floss}) can be at most the {S} exponents of the state of cell "
                             f"{show(self.cell)} at hidden = {self.hidden}")
        for name, default, lo in (("floss_steps", 100, 0), ("floss_every", 0, 0)):
            if getattr(self, name) is None:
                setattr(self, name, default)
            _int(name, getattr(self, name), lo)
        for name, default in (("floss_weight", 1.0), ("floss_lr", 0.003)):
            if getattr(self, name) is None:
                setattr(self, name, default)
            _pos(name, getattr(self, name))
            setattr(self, name, float(getattr(self, name)))

    def _sizes(self):
        """The run's largest arrays within bptt.validate.max_elements(): the weights (G H (H + D)) and
        a batch's trace (batch x steps x G H; steps = length, or backprop for a stream)."""
        G = max(int(s[:-1] or 1) for p in cells.get(self.cell).params.values() for s in p.shape if s.endswith("H"))
        H, E = self.hidden, self.layers * (2 if self.bidirectional else 1)  # E layers and directions
        too_big(f"hidden = {H} (cell {self.cell}, {E} layer(s) and directions)", E * G * H * H * (1 + (E > 1)))
        steps = self.backprop or self.chunk if self.task in ("reber", "char") else (self.length or 0)
        too_big(f"batch = {self.batch} sequences of {steps} steps at hidden = {H}", self.batch * steps * G * H * E)
        if self.length is not None:
            too_big(f"length = {self.length}", self.batch * self.length)

    def _cell_settings(self):
        """Check the settings that belong to some cells against this cell's declaration; fill in its
        defaults (None: not given); the cell by its one spelling (an alias's settings applied)."""
        try:
            cls, alias = cells.resolve(self.cell)
        except ValueError:
            raise ValueError(f"cell must be one of {', '.join(cells.names())}, got {show(self.cell)}") from None
        self.cell = cls.name
        for k, v in alias.items():
            if getattr(self, k) is not None and getattr(self, k) != v:
                raise ValueError(f"the cell spelled {show(self.cell)} has {k} = {show(v)}, got {k} = {show(getattr(self, k))}")
            setattr(self, k, v)
        options = cls.options()
        init_defaults = {k: q.default for k, q in inspect.signature(cls.init).parameters.items()
                         if q.default is not inspect.Parameter.empty}

        def refuse(name, value):
            owners = cells.owners(name) if name != "omega" else [n for n in cells.names() if cells.get(n).pascanu]
            which = f"the {', '.join(owners) or 'no'} cell{'s' if len(owners) > 1 else ''}"
            raise ValueError(f"{name} applies to {which} only, not to cell {show(self.cell)} (got {show(value)})")

        for name in CELL_OPTIONS:
            value = getattr(self, name)
            if name not in options:
                if value is not None:
                    refuse(name, value)
            elif value is None:
                setattr(self, name, TRAIN_DEFAULTS.get(name, cls.settings.get(name, init_defaults.get(name))))
        if self.omega and not cls.pascanu:
            refuse("omega", self.omega)
        if self.std is not None and "std" not in options:
            refuse("std", self.std)
        if self.bias is not True and "bias" not in options:
            refuse("bias", self.bias)
        if "activation" in options:
            _choice("activation", self.activation, activation_names())
        if "init" in options:
            _choice("init", self.init, INITS)
        else:
            own = OWN_INITS if "std" in options else OWN_INITS[:1]
            if self.init not in own:
                normal = ("" if "std" in options else
                          f"; init 'normal' is for the cells whose init takes std ({', '.join(cells.owners('std'))})")
                must = f"one of {', '.join(own)}" if len(own) > 1 else own[0]
                raise ValueError(f"init for cell {show(self.cell)} must be {must} (its own initialisation"
                                 f"{', or Gaussian with std' if 'std' in options else ''}), got {show(self.init)}; "
                                 f"orthogonal and identity (IRNN) are for the {', '.join(cells.owners('init'))} "
                                 f"cell{normal}")
            if self.init == "uniform" and self.std is not None:
                raise ValueError(f"std applies to init 'normal' for cell {show(self.cell)} (the uniform init is "
                                 f"its own), got std = {show(self.std)} with init 'uniform'")
        for name in ("forget_bias", "r_min", "r_max", "max_phase", "dt", "gamma", "eps"):
            if name in options:
                v = getattr(self, name)
                if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or abs(v) == float("inf"):
                    raise ValueError(f"{name} must be a finite number, got {show(v)}")
                setattr(self, name, float(v))
        for name in ("reset_after", "normalise", "implicit"):
            if name in options and not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {show(getattr(self, name))}")

    def _init_values(self):
        """The cell's init checks its own options (the LRU's ring, a radius >= 0, ...): a model of
        one unit is drawn from them, so that a value it refuses is an error when the settings are
        read, not when the run starts."""
        from ..model import random_model
        if self.init == "normal" and self.std is None:
            return  # said by validate
        random_model(self.cell, 1, 1, 1, seed=0, **self.model_options())

    def model_options(self) -> dict:
        """What random_model takes for this cell: its settings and the options of its init."""
        options = cells.get(self.cell).options()
        out = {k: getattr(self, k) for k in CELL_OPTIONS if k in options}
        if "bias" in options:
            out["bias"] = self.bias
        if "init" in options:
            out.update(init=self.init, std=self.std)
        elif "std" in options:
            out["std"] = self.std if self.init == "normal" else None
        return out

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


KEYS = {f.name for f in fields(TrainConfig)}


def square_w(cell) -> bool:
    """Whether a registered cell's recurrent parameter is a square (H, H) matrix, which param takes."""
    return any(p.role == "recurrent" and p.shape == ("H", "H") for p in cells.get(cell).params.values())
ELMAN_ONLY = ("activation", "init", "std", "radius")  # task defaults that go with the Elman cell



def _choice(name, v, options):
    if not isinstance(v, str) or v not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(str, options))}, got {show(v)}")


def _int(name, v, lo):
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {show(v)}")


def _pos(name, v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0 or v != v or v == float("inf"):
        raise ValueError(f"{name} must be a positive number, got {show(v)}")


MAX_TOML_BYTES = 1_000_000
MAX_TOML_DEPTH = 4


def _depth(v) -> int:
    if isinstance(v, dict):
        return 1 + max((_depth(x) for x in v.values()), default=0)
    if isinstance(v, list):
        return 1 + max((_depth(x) for x in v), default=0)
    return 0


def read_toml(path) -> dict:
    """The settings in a TOML file: its [train] table if it has one, else its top level."""
    text = read_text(path, "the config file", MAX_TOML_BYTES)
    data = parse_toml(text, str(path), MAX_TOML_DEPTH * 4 + 8)
    if _depth(data) > MAX_TOML_DEPTH:
        raise ValueError(f"{path} nests tables {_depth(data)} deep: settings nest at most {MAX_TOML_DEPTH} deep")
    if "train" in data:
        others = sorted(set(data) - {"train"})
        if others:
            raise ValueError(f"{path} has a [train] table and also the top-level key(s) {', '.join(map(show, others))}: "
                             "give every setting inside [train]")
        data = data["train"]
        if not isinstance(data, dict):
            raise ValueError(f"{path}: train must be a table of settings ([train] with name = value lines), "
                             f"got {show(data)}")
    unknown = sorted(set(data) - KEYS)
    if unknown:
        raise ValueError(f"unknown setting(s) {', '.join(map(show, unknown))} in {path}; known: {', '.join(sorted(KEYS))}")
    for k, v in data.items():  # TOML integers where floats are expected are fine
        if k in FLOATS and isinstance(v, int) and not isinstance(v, bool):
            data[k] = float(v)
    return data


def resolve(cli: dict, toml: dict | None = None) -> TrainConfig:
    """A validated TrainConfig: CLI values (None = not given) over TOML over task defaults."""
    from ..tasks.base import Task
    for what, table in (("cli", cli), ("toml", toml)):
        if not isinstance(table, dict) and not (what == "toml" and table is None):
            raise TypeError(f"{what} must be a dict of settings, got {type(table).__name__}")
    unknown = sorted(map(str, set(cli) - KEYS))
    if unknown:
        raise ValueError(f"unknown setting(s) {', '.join(map(printable, unknown))}")
    given = {**(toml or {}), **{k: v for k, v in cli.items() if v is not None}}
    task = given.get("task", TrainConfig.task)
    from .. import tasks
    _choice("task", task, tasks.TASKS)
    cls = {"adding": tasks.Adding, "copy": tasks.Copy, "temporal": tasks.TemporalOrder, "reber": tasks.Reber,
           "char": tasks.CharLM}[task]
    defaults = dict(getattr(cls, "defaults", {}) or Task.defaults)
    cell = given.get("cell", TrainConfig.cell)
    if given.get("param") is not None and "init" not in given and isinstance(cell, str) and \
            square_w(cells.resolve(cell)[0].name):
        given["init"] = "henaff"  # A's start; the task's init is W's
    if not isinstance(cell, str) or not cells.resolve(cell)[0].pascanu:
        for k in ELMAN_ONLY:  # the paper's settings of the Elman cell; a gated cell starts from its own
            defaults.pop(k, None)
    if given.get("init") not in (None, "normal") and "std" not in given:
        defaults.pop("std", None)  # the paper's std goes with its normal init
    if given.get("clip_norm") is not None or given.get("clip_value") is not None:
        defaults.pop("clip_norm", None)
        defaults.pop("clip_value", None)
    merged = {**defaults, **given}
    for k in ("clip_norm", "clip_value", "clip_per_param"):
        if merged.get(k) == 0:  # 0 turns a clipping rule off
            merged[k] = None
    return TrainConfig(**merged).validate()
