"""Sweeps of kind "approx": each point measures every approximation on a random model and sequence."""
import textwrap

import numpy as np
import pytest

import bptt
from bptt.approx.measure import random_data, random_model
from bptt.sweep import parse_spec
from conftest import need

SPEC = """
name = "approx-radius"
kind = "approx"
seeds = 2
[fixed]
hidden = 6
length = 30
window = 5
samples = 20
[grid]
cell = ["elman", "gru"]
radius = [0.6, 1.4]
"""


def run_point(config):
    need("threadpoolctl")  # part of the sweep extra, like dask
    from bptt.sweep.points import run_point as run

    out = run(config)
    assert out["status"] == "ok", out.get("traceback")
    return out["metrics"]


def relative(a: bptt.Grads, b: bptt.Grads) -> float:
    """||a - b|| / ||b|| over every parameter (the initial state apart, as "all" is measured)."""
    va = np.concatenate([a.params[k].ravel() for k in sorted(b.params)])
    vb = np.concatenate([b.params[k].ravel() for k in sorted(b.params)])
    return float(np.linalg.norm(va - vb) / np.linalg.norm(vb))


def test_the_spec_is_grid_times_seeds_and_each_point_measures_its_own_model():
    spec = parse_spec(textwrap.dedent(SPEC))
    points = spec.points()
    assert len(points) == 2 * 2 * 2
    for p in points[:3]:
        m = run_point(p.config)
        prm = p.params
        rng = np.random.default_rng(p.config["seed"])  # the point's model and data, drawn again here
        model = random_model(prm["cell"], prm["hidden"], prm["inputs"], prm["outputs"], prm["radius"], rng)
        x, y = random_data(model, prm["length"], prm["batch"], rng)
        loss, exact = bptt.gradients(model, x, y)
        _, windowed = bptt.gradients(model, x, y, truncate=prm["window"])  # the engine's own window
        assert m["loss"] == pytest.approx(loss, rel=1e-12)
        assert m["window_rel"] == pytest.approx(relative(windowed, exact), rel=1e-8)
        assert m["rtrl_rel"] < 1e-10 and m["rtrl_cos"] == pytest.approx(1, abs=1e-12)
        assert -1 <= m["uoro_cos"] <= 1 and m["uoro_rel"] > 0
        assert 0 <= m["smallest_window"] <= prm["length"]


@pytest.mark.parametrize("fixed,expected", [
    ("window = 40", "window = 40 must be <= length = 30"),
    ("k1 = 8\nk2 = 4", "k2 = 4 must be >= k1 = 8"),
    ("samples = 0", "samples"),
    ("cell = 'vanilla'", "cell"),
])
def test_bad_approx_specs_say_what_is_wrong(fixed, expected):
    text = f'kind = "approx"\n[fixed]\nlength = 30\n{fixed}\n'
    with pytest.raises(ValueError, match=expected):
        parse_spec(text).points()
