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

import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field
import os
from pathlib import Path

import numpy as np

from .params import Param
from .points import KINDS

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
    """A validated sweep spec (see the module's notes). `points()` lists its runs."""

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

    def points(self) -> list[Point]:
        """Every point, grid x random draws x seeds, duplicates (same key) dropped, in a fixed order."""
        kind = KINDS[self.kind]
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
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_SPEC_BYTES + 1)
    except OSError as e:
        raise ValueError(f"cannot read the sweep spec {str(path)!r}: {e.strerror or e}") from None
    if len(raw) > MAX_SPEC_BYTES:
        raise ValueError(f"the sweep spec {path} is longer than {MAX_SPEC_BYTES:,} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"the sweep spec {path} is not UTF-8 text (byte {e.start} is "
                         f"{raw[e.start:e.start + 1]!r}): TOML files are UTF-8") from None
    return parse_spec(text, default_name=path.stem, source=str(path))


def parse_spec(text: str, *, default_name="sweep", source="<spec>") -> Spec:
    """Validate a spec given as TOML text (see load_spec)."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    from ..train.config import depth_bound

    if depth_bound(text) > MAX_SPEC_DEPTH:
        raise ValueError(f"{source} nests brackets or dotted keys {depth_bound(text)} deep: a spec nests at "
                         f"most {MAX_SPEC_DEPTH} deep")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{source} is not valid TOML: {e}") from None
    return from_dict(data, default_name=default_name, source=source, text=text)


def from_dict(data: dict, *, default_name="sweep", source="<spec>", text="") -> Spec:
    """Validate a spec given as a dict (the parsed TOML)."""
    def err(msg):
        return ValueError(f"{source}: {msg}")

    unknown = [k for k in data if k not in TOP_KEYS]
    if unknown:
        raise err(f"unknown key {unknown[0]!r}; allowed top-level keys: {', '.join(TOP_KEYS)}")
    if "kind" not in data:
        raise err(f"missing key 'kind': expected one of {_kinds(KINDS)}")
    kind = data["kind"]
    if kind not in KINDS:
        raise err(f"kind: expected one of {_kinds(KINDS)}, got {kind!r}")
    params = KINDS[kind].params
    name = data.get("name", default_name)
    if not isinstance(name, str) or not name.strip():
        raise err(f"name: expected a non-empty string, got {name!r}")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise err(f"description: expected a string, got {description!r}")
    seeds = _seeds(data.get("seeds", 1), err)

    sections = {}
    for sec in ("fixed", "grid", "random"):
        v = data.get(sec, {})
        if not isinstance(v, dict):
            raise err(f"[{sec}] must be a table (name = value lines under a [{sec}] header), got {v!r}")
        sections[sec] = v
    rnd = dict(sections["random"])
    samples = rnd.pop("samples", None)
    rseed = rnd.pop("seed", 0)
    owner = {}
    for sec, table in (("fixed", sections["fixed"]), ("grid", sections["grid"]), ("random", rnd)):
        for pname in table:
            if pname == "seed":
                raise err(f"[{sec}] seed: seeds are set by the top-level key 'seeds' (a count or a list)")
            if pname not in params:
                raise err(f"[{sec}] unknown parameter {pname!r} for kind {kind!r}; allowed: "
                          f"{', '.join(sorted(params))}")
            if pname in owner:
                raise err(f"parameter {pname!r} is set in both [{owner[pname]}] and [{sec}]; give it in one place")
            owner[pname] = sec

    fixed = {n: params[n].check(v, f"{source}: [fixed] {n}") for n, v in sections["fixed"].items()}
    grid = {}
    for n, values in sections["grid"].items():
        if not isinstance(values, list) or not values:
            raise err(f"[grid] {n}: expected a non-empty list of values ({params[n].allowed()}), got {values!r}")
        checked = tuple(params[n].check(v, f"{source}: [grid] {n}[{i}]") for i, v in enumerate(values))
        if len(set(checked)) != len(checked):
            raise err(f"[grid] {n}: the list {values!r} repeats a value")
        grid[n] = checked

    random = {}
    if rnd:
        if samples is None:
            raise err("[random] needs 'samples', the number of draws (an integer >= 1)")
        for n, d in rnd.items():
            random[n] = _distribution(n, d, params[n], err, source)
    if samples is not None:
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise err(f"[random] samples: expected an integer >= 1, got {samples!r}")
        if not rnd:
            raise err("[random] has 'samples' but no parameter to draw")
    if isinstance(rseed, bool) or not isinstance(rseed, int) or rseed < 0:
        raise err(f"[random] seed: expected an integer >= 0, got {rseed!r}")

    n = len(seeds) * max(samples or 1, 1)
    for values in grid.values():
        n *= len(values)
    _count(n, f"{len(seeds)} seed(s) x {samples or 1} draw(s) x a grid of "
              f"{' x '.join(str(len(v)) for v in grid.values()) or '1'}", err)
    spec = Spec(name=name, kind=kind, seeds=seeds, fixed=fixed, grid=grid, random=random,
                samples=samples or 0, random_seed=rseed, description=description, text=text, source=source)
    spec.points()  # every combination checked now, not in the middle of a sweep
    return spec


def _kinds(kinds) -> str:
    return ", ".join(f"{k!r}" + ("" if v.public else " (internal: exercises failure handling in tests)")
                     for k, v in kinds.items())


def max_points() -> int:
    """The most points a spec may have: MAX_POINTS, or the environment variable BPTT_MAX_POINTS."""
    text = os.environ.get(MAX_POINTS_ENV)
    if text is None:
        return MAX_POINTS
    if not text.strip().isdigit() or int(text) < 1:
        raise ValueError(f"the environment variable {MAX_POINTS_ENV} must be a positive integer, got {text!r}")
    return int(text)


def _count(n, what, err):
    if n > max_points():
        raise err(f"{what} make {n:,} points, more than the limit of {max_points():,}; raise it with the "
                  f"environment variable {MAX_POINTS_ENV} if you mean it")


def _seeds(v, err) -> tuple:
    if isinstance(v, int) and not isinstance(v, bool):
        if v < 1:
            raise err(f"seeds: expected a count >= 1 or a non-empty list of integers >= 0, got {v!r}")
        _count(v, f"seeds = {v}", err)
        return tuple(range(v))
    if (isinstance(v, list) and v and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in v)):
        if len(set(v)) != len(v):
            raise err(f"seeds: the list {v!r} repeats a seed")
        return tuple(v)
    raise err(f"seeds: expected a count >= 1 or a non-empty list of integers >= 0, got {v!r}")


def _distribution(name, d, param: Param, err, source):
    where = f"[random] {name}"
    forms = "{ uniform = [lo, hi] }, { log_uniform = [lo, hi] }, { int = [lo, hi] } or { choice = [v1, v2, ...] }"
    if not isinstance(d, dict) or len(d) != 1 or next(iter(d)) not in DISTRIBUTIONS:
        raise err(f"{where}: expected one of {forms}, got {d!r}")
    dist, args = next(iter(d.items()))
    if dist == "choice":
        if not isinstance(args, list) or not args:
            raise err(f"{where}: choice needs a non-empty list of values ({param.allowed()}), got {args!r}")
        return dist, tuple(param.check(v, f"{source}: {where} choice[{i}]") for i, v in enumerate(args))
    if param.type not in (int, float):
        raise err(f"{where}: {dist} draws numbers, but {name} takes {param.allowed()}; use choice = [...]")
    if dist == "int" and param.type is not int:
        raise err(f"{where}: int draws integers, but {name} takes {param.allowed()}; use uniform or log_uniform")
    if dist != "int" and param.type is int:
        raise err(f"{where}: {name} takes {param.allowed()}; draw it with int = [lo, hi] or choice")
    if not isinstance(args, list) or len(args) != 2:
        raise err(f"{where}: {dist} needs [lo, hi], got {args!r}")
    lo, hi = (param.check(v, f"{source}: {where} {dist} bound") for v in args)
    if not lo < hi:
        raise err(f"{where}: {dist} needs lo < hi, got [{lo!r}, {hi!r}]")
    if dist == "log_uniform" and lo <= 0:
        raise err(f"{where}: log_uniform needs 0 < lo < hi, got [{lo!r}, {hi!r}]")
    return dist, (lo, hi)
