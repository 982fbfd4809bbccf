"""Sweep specs: a TOML file that names a kind of run and the points to run it at.

A spec (every key but `kind` optional):

    name = "flow-phase"            # default: the file's stem
    description = "..."
    kind = "flow"                  # the point runner: see bptt.sweep.points.KINDS
    seeds = 3                      # 3 -> seeds 0, 1, 2; or an explicit list [0, 7, 11]

    [fixed]                        # one value per parameter
    hidden = 32

    [grid]                         # every combination of these lists
    radius = [0.5, 1.0, 1.5]
    activation = ["tanh", "relu"]

    [random]                       # `samples` draws of these distributions (one draw sets all of them)
    samples = 20
    seed = 0                       # the draws are reproducible: same spec, same points
    lr = { log_uniform = [1e-4, 1e-1] }    # also uniform = [lo, hi], int = [lo, hi] (inclusive),
                                           # choice = [v1, v2, ...]

The points are grid x random draws x seeds. Each point's parameters are completed with the kind's
defaults (those that do not apply to the point's cell set to theirs: points.Kind.normalize), checked,
and written in a canonical form (sorted keys, ints as ints, floats as floats);
its key is a hash of that form, so a point has the same key whichever spec, order or spelling
(explicit default or omitted) produced it. That key is what makes a sweep resumable.
"""
from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field
from typing import ClassVar
import os
from pathlib import Path

import numpy as np

from ..files import file_name, parse_toml, printable, read_text
from .params import Param
from .points import KINDS
from ..validate import show

PUBLIC_KINDS = {k: v for k, v in KINDS.items() if v.public}

MAX_POINTS = 100_000  # points of one spec; raised with the environment variable BPTT_MAX_POINTS
MAX_POINTS_ENV = "BPTT_MAX_POINTS"
MAX_SPEC_BYTES = 1_000_000
MAX_SPEC_DEPTH = 24

TOP_KEYS = ("name", "description", "kind", "seeds", "fixed", "grid", "random")
DISTRIBUTIONS = ("uniform", "log_uniform", "int", "choice")


@dataclass(frozen=True)
class Point:
    """One run of a sweep: its key and its canonical config {"kind", "params", "seed"}."""

    key: str
    config: dict

    @property
    def params(self) -> dict:
        return self.config["params"]

    @property
    def seed(self) -> int:
        return self.config["seed"]


def canonical(config: dict) -> str:
    """The canonical JSON text of a config (sorted keys, no spaces)."""
    return json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=False)


def point_key(config: dict) -> str:
    """A stable key for a point: the first 24 hex digits of the SHA-256 of its canonical JSON."""
    return hashlib.sha256(canonical(config).encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Spec:
    """A validated sweep spec (see the module's notes). `points()` lists its runs.

    Built directly or by parse_spec, it is checked the same way (ValueError naming the field):
    seeds a count >= 1 or a list of distinct integers in 0..2**63 - 1; fixed, grid and random
    values those of the kind's parameters; name one safe file name (it names the sweep's figures)."""

    name: str
    kind: str
    seeds: tuple
    fixed: dict
    grid: dict                    # name -> tuple of values
    random: dict                  # name -> (distribution, args)
    samples: int = 0
    random_seed: int = 0
    description: str = ""
    text: str = field(default="", repr=False)  # the TOML it came from
    source: str = "<spec>"                     # where it came from (for messages)
    kinds: ClassVar[dict] = PUBLIC_KINDS       # the kinds a spec may name

    def __post_init__(self):
        source = self.source if isinstance(self.source, str) else "<spec>"

        def err(msg):
            return ValueError(f"{printable(source)}: {msg}")

        if not isinstance(self.kind, str) or self.kind not in self.kinds:
            raise err(f"kind: expected one of {', '.join(map(repr, self.kinds))}, got {show(self.kind)}")
        file_name(self.name, f"{printable(source)}: name")
        if not isinstance(self.description, str):
            raise err(f"description: expected a string, got {show(self.description)}")
        params = self.kinds[self.kind].params
        for sec, table in (("fixed", self.fixed), ("grid", self.grid), ("random", self.random)):
            if not isinstance(table, dict):
                raise err(f"[{sec}] must be a table (name = value lines under a [{sec}] header), got {show(table)}")
            for pname in table:
                if pname == "seed":
                    raise err(f"[{sec}] seed: seeds are set by the top-level key 'seeds' (a count or a list)")
                if pname not in params:
                    near = difflib.get_close_matches(str(pname), list(params), n=1, cutoff=0.6)
                    raise err(f"[{sec}] unknown parameter {show(pname)} for kind {show(self.kind)}"
                              + (f" (did you mean {near[0]!r}?)" if near else "")
                              + f"; allowed: {', '.join(sorted(params))}")
        seeds = _seeds(self.seeds, err)
        fixed = {n: params[n].check(v, f"{source}: [fixed] {n}") for n, v in self.fixed.items()}
        grid = {n: _grid(n, v, params[n], err, source) for n, v in self.grid.items()}
        random = {n: _distribution(n, {d[0]: list(d[1])} if isinstance(d, tuple) and len(d) == 2 else d,
                                   params[n], err, source) for n, d in self.random.items()}
        samples, rseed = self.samples, self.random_seed
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 0 or (random and samples < 1):
            raise err(f"[random] samples: expected an integer >= 1 (the number of draws), got {show(samples)}")
        if samples and not random:
            raise err("[random] has 'samples' but no parameter to draw")
        if isinstance(rseed, bool) or not isinstance(rseed, int) or not 0 <= rseed < 2**63:
            raise err(f"[random] seed: expected an integer in 0..2**63 - 1, got {show(rseed)}")
        n = len(seeds) * max(samples, 1)
        for values in grid.values():
            n *= len(values)
        _count(n, f"{len(seeds)} seed(s) x {samples or 1} draw(s) x a grid of "
                  f"{' x '.join(str(len(v)) for v in grid.values()) or '1'}", err)
        for name, value in (("seeds", seeds), ("fixed", fixed), ("grid", grid), ("random", random)):
            object.__setattr__(self, name, value)

    def points(self) -> list[Point]:
        """Every point, grid x random draws x seeds, duplicates (same key) dropped, in a fixed order."""
        kind = self.kinds[self.kind]
        names = list(self.grid)
        grid = [dict(zip(names, combo)) for combo in itertools.product(*(self.grid[n] for n in names))]
        draws = _draws(self.random, self.samples, self.random_seed, kind.params) if self.random else [{}]
        out, seen = [], set()
        for g in grid:
            for r in draws:
                params = {n: p.default for n, p in kind.params.items()}
                params.update(self.fixed, **g, **r)
                params = kind.normalize(params)
                varied = {**g, **r}
                kind.check_point(params, f"{self.source}: " + (f"the point {varied}" if varied else "the parameters"))
                for seed in self.seeds:
                    config = {"kind": self.kind, "params": dict(sorted(params.items())), "seed": seed}
                    key = point_key(config)
                    if key not in seen:
                        seen.add(key)
                        out.append(Point(key, config))
        return out


def _draws(random, samples, seed, params):
    """`samples` reproducible draws of the [random] parameters (names in sorted order)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(samples):
        d = {}
        for name in sorted(random):
            dist, args = random[name]
            if dist == "uniform":
                v = float(rng.uniform(args[0], args[1]))
            elif dist == "log_uniform":
                v = float(math.exp(rng.uniform(math.log(args[0]), math.log(args[1]))))
            elif dist == "int":
                v = int(rng.integers(args[0], args[1], endpoint=True))
            else:
                v = args[int(rng.integers(len(args)))]
            d[name] = params[name].check(v, f"[random] {name}")
        out.append(d)
    return out


def load_spec(path) -> Spec:
    """Read and validate a spec file; ValueError names the key, the allowed values and what came."""
    text = read_text(path, "the sweep spec", MAX_SPEC_BYTES)
    return parse_spec(text, default_name=Path(path).stem, source=str(path))


def parse_spec(text: str, *, default_name="sweep", source="<spec>") -> Spec:
    """Validate a spec given as TOML text (see load_spec)."""
    return _parse(text, default_name, source, Spec)


def _parse(text, default_name, source, cls):
    if not isinstance(text, str):
        raise TypeError(f"a spec is TOML text (a str), got {type(text).__name__}")
    data = parse_toml(text, source, MAX_SPEC_DEPTH)
    return from_dict(data, default_name=default_name, source=source, text=text, cls=cls)


def from_dict(data: dict, *, default_name="sweep", source="<spec>", text="", cls=None) -> Spec:
    """Validate a spec given as a dict (the parsed TOML); cls: the Spec class (InternalSpec in tests)."""
    cls = cls or Spec

    def err(msg):
        return ValueError(f"{source}: {msg}")

    unknown = [k for k in data if k not in TOP_KEYS]
    if unknown:
        raise err(f"unknown key {show(unknown[0])}; allowed top-level keys: {', '.join(TOP_KEYS)}")
    if "kind" not in data:
        raise err(f"missing key 'kind': expected one of {', '.join(map(repr, cls.kinds))}")
    sections = {}
    for sec in ("fixed", "grid", "random"):
        v = data.get(sec, {})
        if not isinstance(v, dict):
            raise err(f"[{sec}] must be a table (name = value lines under a [{sec}] header), got {show(v)}")
        sections[sec] = v
    rnd = dict(sections["random"])
    samples = rnd.pop("samples", None)
    rseed = rnd.pop("seed", 0)
    if rnd and samples is None:
        raise err("[random] needs 'samples', the number of draws (an integer >= 1)")
    if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int) or samples < 1):
        raise err(f"[random] samples: expected an integer >= 1, got {show(samples)}")
    owner = {}
    for sec, table in (("fixed", sections["fixed"]), ("grid", sections["grid"]), ("random", rnd)):
        for pname in table:
            if pname in owner:
                raise err(f"parameter {show(pname)} is set in both [{owner[pname]}] and [{sec}]; give it in one place")
            owner[pname] = sec
    spec = cls(name=data.get("name", default_name), kind=data["kind"], seeds=data.get("seeds", 1),
               fixed=sections["fixed"], grid=sections["grid"], random=rnd, samples=samples or 0, random_seed=rseed,
               description=data.get("description", ""), text=text, source=source)
    spec.points()  # every combination checked now, not in the middle of a sweep
    return spec


@dataclass(frozen=True)
class InternalSpec(Spec):
    """A spec that may also name the internal kinds (the test-suite's selftest). No file reaches it:
    load_spec and parse_spec build a Spec, which knows the public kinds only."""

    kinds: ClassVar[dict] = KINDS


def internal_spec(text: str) -> InternalSpec:
    """An InternalSpec from TOML text (for the test-suite)."""
    return _parse(text, "sweep", "<spec>", InternalSpec)


def max_points() -> int:
    """The most points a spec may have: MAX_POINTS, or the environment variable BPTT_MAX_POINTS."""
    text = os.environ.get(MAX_POINTS_ENV)
    if text is None:
        return MAX_POINTS
    if not text.strip().isdigit() or int(text) < 1:
        raise ValueError(f"the environment variable {MAX_POINTS_ENV} must be a positive integer, got {show(text)}")
    return int(text)


def _count(n, what, err):
    if n > max_points():
        raise err(f"{what} make {n:,} points, more than the limit of {max_points():,}; raise it with the "
                  f"environment variable {MAX_POINTS_ENV} if you mean it")


def _seeds(v, err) -> tuple:
    want = "a count >= 1 or a non-empty list of distinct integers in 0..2**63 - 1"
    if isinstance(v, int) and not isinstance(v, bool):
        if v < 1:
            raise err(f"seeds: expected {want}, got {show(v)}")
        _count(v, f"seeds = {v}", err)
        return tuple(range(v))
    if (isinstance(v, (list, tuple)) and v
            and all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**63 for s in v)):
        if len(set(v)) != len(v):
            raise err(f"seeds: the list {show(v)} repeats a seed")
        return tuple(v)
    raise err(f"seeds: expected {want}, got {show(v)}")


def _grid(n, values, param: Param, err, source) -> tuple:
    if not isinstance(values, (list, tuple)) or not values:
        raise err(f"[grid] {n}: expected a non-empty list of values ({param.allowed()}), got {show(values)}")
    checked = tuple(param.check(v, f"{source}: [grid] {n}[{i}]") for i, v in enumerate(values))
    if len(set(checked)) != len(checked):
        raise err(f"[grid] {n}: the list {show(list(values))} repeats a value")
    return checked


def _distribution(name, d, param: Param, err, source):
    where = f"[random] {name}"
    forms = "{ uniform = [lo, hi] }, { log_uniform = [lo, hi] }, { int = [lo, hi] } or { choice = [v1, v2, ...] }"
    if not isinstance(d, dict) or len(d) != 1 or next(iter(d)) not in DISTRIBUTIONS:
        raise err(f"{where}: expected one of {forms}, got {show(d)}")
    dist, args = next(iter(d.items()))
    if dist == "choice":
        if not isinstance(args, list) or not args:
            raise err(f"{where}: choice needs a non-empty list of values ({param.allowed()}), got {show(args)}")
        return dist, tuple(param.check(v, f"{source}: {where} choice[{i}]") for i, v in enumerate(args))
    if param.type not in (int, float):
        raise err(f"{where}: {dist} draws numbers, but {name} takes {param.allowed()}; use choice = [...]")
    if dist == "int" and param.type is not int:
        raise err(f"{where}: int draws integers, but {name} takes {param.allowed()}; use uniform or log_uniform")
    if dist != "int" and param.type is int:
        raise err(f"{where}: {name} takes {param.allowed()}; draw it with int = [lo, hi] or choice")
    if not isinstance(args, list) or len(args) != 2:
        raise err(f"{where}: {dist} needs [lo, hi], got {show(args)}")
    lo, hi = (param.check(v, f"{source}: {where} {dist} bound") for v in args)
    if not lo < hi:
        raise err(f"{where}: {dist} needs lo < hi, got [{show(lo)}, {show(hi)}]")
    if dist == "log_uniform" and lo <= 0:
        raise err(f"{where}: log_uniform needs 0 < lo < hi, got [{show(lo)}, {show(hi)}]")
    return dist, (lo, hi)
