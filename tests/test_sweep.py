"""Sweep specs, point runners, the results store and the command's arguments (no cluster here)."""
import json
import sqlite3
import textwrap
from pathlib import Path

import numpy as np
import pytest

import bptt
from conftest import need
from bptt.activations import ACTIVATIONS
from bptt.cli import main
from bptt.sweep import Store, load_spec, parse_spec
from bptt.sweep.points import run_point as _run_point

FLOW = """
kind = "flow"
seeds = 2
[fixed]
hidden = 8
long_lag = 5
[grid]
radius = [0.5, 1.5]
length = [20, 40]
activation = ["tanh", "relu"]
"""


def run_point(config):
    need("threadpoolctl")  # part of the sweep extra, like dask
    return _run_point(config)


def spec_of(text, name="t"):
    return parse_spec(textwrap.dedent(text), default_name=name)


def test_points_are_the_grid_times_the_seeds_with_defaults_filled_in():
    pts = spec_of(FLOW).points()
    assert len(pts) == 2 * 2 * 2 * 2 == len({p.key for p in pts})
    p = pts[0]
    assert p.params["hidden"] == 8 and p.params["dtype"] == "float32" and p.params["init"] == "normal"
    assert {q.seed for q in pts} == {0, 1}
    assert {(q.params["radius"], q.params["length"], q.params["activation"]) for q in pts} == {
        (r, T, a) for r in (0.5, 1.5) for T in (20, 40) for a in ("tanh", "relu")}


def test_keys_do_not_depend_on_spelling_order_or_explicit_defaults():
    a = spec_of(FLOW).points()
    b = spec_of("""
        seeds = [1, 0]
        kind = "flow"
        [grid]
        activation = ["relu", "tanh"]
        length = [40, 20]
        radius = [1.5, 0.5]
        [fixed]
        long_lag = 5
        hidden = 8
        dtype = "float32"
        init = "normal"
        """).points()
    assert {p.key for p in a} == {p.key for p in b}
    c = spec_of(FLOW.replace("hidden = 8", "hidden = 9")).points()
    assert not {p.key for p in a} & {p.key for p in c}


def test_random_draws_are_reproducible_and_inside_their_ranges():
    text = """
        kind = "flow"
        [fixed]
        length = 30
        long_lag = 4
        [random]
        samples = 40
        seed = 3
        radius = { log_uniform = [0.25, 4.0] }
        hidden = { int = [2, 5] }
        activation = { choice = ["tanh", "relu"] }
        """
    a, b = spec_of(text).points(), spec_of(text).points()
    assert [p.key for p in a] == [p.key for p in b]
    r = np.array([p.params["radius"] for p in a])
    assert r.min() >= 0.25 and r.max() <= 4.0 and (r < 1).any() and (r > 1).any()
    assert {p.params["hidden"] for p in a} == {2, 3, 4, 5}
    assert {p.params["activation"] for p in a} == {"tanh", "relu"}
    other = spec_of(text.replace("seed = 3", "seed = 4")).points()
    assert [p.key for p in a] != [p.key for p in other]


BAD = [
    ('kind = "flow"\nsamples = 3', ["unknown key 'samples'", "allowed top-level keys", "grid"]),
    ("seeds = 2", ["missing key 'kind'", "'flow'"]),
    ('kind = "flw"', ["kind", "expected one of", "'flow'", "'flw'"]),
    ('kind = "flow"\n[grid]\nradiuss = [1.0]', ["[grid] unknown parameter 'radiuss'", "allowed:", "radius"]),
    ('kind = "flow"\n[grid]\nactivation = ["tanh", "softplus"]',
     ["[grid] activation[1]", "one of " + ", ".join(map(repr, ACTIVATIONS)), "'softplus'"]),  # bptt.activations' list
    ('kind = "flow"\n[grid]\nradius = [1.0, -0.5]', ["[grid] radius[1]", "a number > 0", "-0.5"]),
    ('kind = "flow"\n[grid]\nradius = []', ["[grid] radius", "non-empty list"]),
    ('kind = "flow"\n[grid]\nradius = 1.0', ["[grid] radius", "non-empty list", "1.0"]),
    ('kind = "flow"\n[fixed]\nhidden = 2.5', ["[fixed] hidden", "an integer >= 1", "2.5"]),
    ('kind = "flow"\n[fixed]\nhidden = true', ["[fixed] hidden", "an integer", "True"]),
    ('kind = "flow"\n[fixed]\nbias = 1', ["[fixed] bias", "true or false"]),
    ('kind = "flow"\n[fixed]\nradius = 1.0\n[grid]\nradius = [0.5]', ["'radius'", "set in both [fixed] and [grid]"]),
    ('kind = "flow"\n[grid]\nseed = [1, 2]', ["seed", "top-level key 'seeds'"]),
    ('kind = "flow"\nseeds = 0', ["seeds", "a count >= 1", "got 0"]),
    ('kind = "flow"\nseeds = [1, 1]', ["seeds", "repeats"]),
    ('kind = "flow"\n[random]\nradius = { uniform = [0.5, 2.0] }', ["[random] needs 'samples'"]),
    ('kind = "flow"\n[random]\nsamples = 2\nradius = { gauss = [0, 1] }', ["[random] radius", "log_uniform", "gauss"]),
    ('kind = "flow"\n[random]\nsamples = 2\nradius = { log_uniform = [0.0, 2.0] }', ["[random] radius", "> 0", "0.0"]),
    ('kind = "flow"\n[random]\nsamples = 2\nradius = { uniform = [2.0, 1.0] }', ["[random] radius", "lo < hi"]),
    ('kind = "flow"\n[random]\nsamples = 2\nhidden = { uniform = [2, 9] }', ["[random] hidden", "int = [lo, hi]"]),
    ('kind = "flow"\n[random]\nsamples = 2\nactivation = { uniform = [0, 1] }', ["[random] activation", "choice"]),
    ('kind = "flow"\n[fixed]\nlength = 40\nlong_lag = 40', ["long_lag = 40 must be < length = 40"]),
    ('kind = "flow"\n[grid]\nlength = [60, 30]', ["the point {'length': 30}", "long_lag = 50 must be < length = 30"]),
    ('kind = "flow"\n[grid', ["not valid TOML"]),
]


@pytest.mark.parametrize("text,expected", BAD)
def test_bad_specs_say_which_key_is_wrong_and_what_is_allowed(text, expected):
    with pytest.raises(ValueError) as e:
        parse_spec(text, source="bad.toml")
    msg = str(e.value)
    assert msg.startswith("bad.toml"), msg
    for frag in expected:
        assert frag in msg, (frag, msg)


def test_the_command_reports_a_bad_spec_and_exits_2(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text('kind = "flow"\n[grid]\nactivation = ["tanh", "softplus"]\n')
    assert main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "bptt sweep: error:" in err and "softplus" in err and "'relu'" in err
    assert not (tmp_path / "out").exists()
    assert main(["sweep", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "out")]) == 2
    assert "cannot read the sweep spec" in capsys.readouterr().err


@pytest.mark.parametrize("argv,expected", [
    (["sweep", "status"], "needs the sweep folder"),
    (["sweep", "spec.toml"], "needs --out DIR"),
    (["sweep", "status", "d", "--workers", "2"], "--workers do(es) not apply to `bptt sweep status`"),
    (["sweep", "spec.toml", "--out", "d", "--json"], "--json do(es) not apply to running a spec"),
    (["sweep", "status", "nowhere"], "no sweep results at"),
])
def test_command_line_misuse_is_explained(argv, expected, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert expected in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["flow", "train", "approx"])
def test_sweep_params_lists_every_parameter_with_a_default_that_toml_reads_back(kind, capsys):
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    from bptt.sweep.points import KINDS

    assert main(["sweep", "params", kind]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    assert [ln.split()[0] for ln in lines] == list(KINDS[kind].params)
    for ln in lines:
        name, _, default = ln.split()[:3]
        assert tomllib.loads(f"v = {default}")["v"] == KINDS[kind].params[name].default
    assert main(["sweep", "params", "selftest"]) == 2


def test_flow_points_take_exactly_the_activations_bptt_has():
    from bptt.sweep.points import KINDS

    assert KINDS["flow"].params["activation"].choices == tuple(ACTIVATIONS)


def flow_config(**params):
    base = {"hidden": 6, "inputs": 4, "outputs": 3, "length": 30, "radius": 0.9, "activation": "identity",
            "init": "orthogonal", "head": "softmax", "bias": False, "long_lag": 7, "dtype": "float64"}
    base.update(params)
    return {"kind": "flow", "params": base, "seed": 5}


def test_flow_point_measures_rho_as_the_decay_rate_of_a_linear_orthogonal_rnn():
    res = run_point(flow_config())
    assert res["status"] == "ok", res["traceback"]
    m = res["metrics"]
    assert m["decay_rate"] == pytest.approx(0.9, abs=1e-6)
    assert m["rho"] == pytest.approx(0.9, abs=1e-12) and m["lambda1"] == pytest.approx(0.9, abs=1e-12)
    assert m["finite"] is True and res["version"] == bptt.__version__


def test_flow_point_long_lag_fraction_matches_the_terms_rebuilt_one_output_at_a_time():
    cfg = flow_config(activation="tanh", init="normal", radius=1.2, length=25, long_lag=6)
    m = run_point(cfg)["metrics"]
    # the same model and sequence, decomposed with Flow.terms (a separate backward pass per output)
    p, rng = cfg["params"], np.random.default_rng(cfg["seed"])
    model = bptt.random_rnn(6, 4, 3, seed=rng, init="normal", std=1 / np.sqrt(6), radius=1.2,
                            activation="tanh", dtype=np.float64)
    x, y = rng.integers(0, 4, 25), rng.integers(0, 3, 25)
    fl = bptt.flow(model, x, y)
    norms = np.array([[np.linalg.norm(term) for term in fl.terms("W", t)] for t in range(25)])  # [t, k]
    lag = np.arange(25)[:, None] - np.arange(25)[None, :]
    want = norms[lag > p["long_lag"]].sum() / norms[lag >= 0].sum()
    assert m["long_lag_fraction"] == pytest.approx(want, rel=1e-9)
    assert m["loss"] == pytest.approx(bptt.loss(model, x, y), rel=1e-12)


def test_a_point_runs_with_one_blas_thread_whatever_the_process_had():
    threadpoolctl = need("threadpoolctl")
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        before = [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
        assert before and min(before) == 2
        res = run_point(flow_config(dtype="float32"))
        after = [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    assert res["status"] == "ok" and res["blas_threads"] == 1
    assert after == before  # restored for the rest of the process


def test_a_point_that_raises_comes_back_failed_with_its_traceback():
    res = run_point({"kind": "selftest", "params": {"mode": "raise", "seconds": 0.0, "value": 3.0, "marker": ""},
                     "seed": 0})
    assert res["status"] == "failed" and res["metrics"] is None
    assert res["error"] == "RuntimeError: selftest point raised on purpose (value 3.0)"
    assert "Traceback (most recent call last)" in res["traceback"] and "run_selftest" in res["traceback"]
    assert res["seconds"] >= 0 and res["finished_at"] >= res["started_at"]


def test_the_store_commits_each_result_where_another_connection_sees_it(tmp_path):
    spec = spec_of(FLOW)
    pts = spec.points()
    with Store(tmp_path / "results.sqlite") as st:
        assert st.add_points("t", pts) == len(pts)
        assert st.add_points("t", pts) == 0  # idempotent
        st.record(pts[0].key, {"status": "ok", "metrics": {"a": 1.5}, "seconds": 0.25, "version": "x"}, run_id=1)
        other = sqlite3.connect(tmp_path / "results.sqlite")
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        row = other.execute("SELECT status, metrics, attempts, params FROM points WHERE key = ?", (pts[0].key,)).fetchone()
        assert row[:3] == ("ok", '{"a": 1.5}', 1) and json.loads(row[3]) == pts[0].params
        assert st.counts() == {"pending": len(pts) - 1, "ok": 1, "failed": 0}
        with pytest.raises(KeyError):
            st.record("nope", {"status": "ok"})


def test_results_frame_has_a_column_per_parameter_and_metric(tmp_path):
    pd = need("pandas")
    from bptt.sweep import results

    pts = spec_of(FLOW).points()
    with Store(tmp_path / "results.sqlite") as st:
        st.add_points("t", pts)
        st.record(pts[1].key, {"status": "ok", "metrics": {"decay_rate": 0.5, "seed": 7.0, "finite": True},
                               "started_at": 1e9, "finished_at": 1e9 + 2, "seconds": 2.0}, run_id=1)
    df = results(tmp_path)
    assert len(df) == len(pts) and list(df["key"]) == [p.key for p in pts]
    row = df[df["key"] == pts[1].key].iloc[0]
    assert row["decay_rate"] == 0.5 and row["metric_seed"] == 7.0 and row["seed"] == pts[1].seed
    assert row["radius"] == pts[1].params["radius"] and row["status"] == "ok"
    assert row["finished_at"] - row["started_at"] == pd.Timedelta(seconds=2)
    assert np.isnan(df[df["key"] == pts[0].key].iloc[0]["decay_rate"])
    assert "radius" in df.attrs["params"] and "decay_rate" in df.attrs["metrics"]
    assert len(results(tmp_path, status="ok")) == 1


def test_a_train_point_trains_and_reports_the_task_criterion():
    cfg = spec_of("""
        kind = "train"
        [fixed]
        task = "temporal"
        length = 10
        hidden = 4
        steps = 3
        eval_every = 3
        batch = 2
        method = "clip_omega"
        """).points()[0].config
    res = run_point(cfg)
    assert res["status"] == "ok", res["traceback"]
    m = res["metrics"]
    assert m["steps_done"] == 3 and m["success"] in (True, False) and m["diverged"] is False
    assert m["baseline"] == pytest.approx(np.log(4)) and np.isfinite(m["test_loss"]) and 0 <= m["test_error"] <= 1
    assert np.isfinite(m["rho"]) and 0 <= m["lag_fraction"] <= 1


def test_train_points_are_checked_against_the_task_when_the_spec_loads():
    with pytest.raises(ValueError, match=r"bad.toml: the point \{'length': 10\}: length must be an integer >= 20"):
        parse_spec('kind = "train"\n[fixed]\ntask = "adding"\n[grid]\nlength = [40, 10]', source="bad.toml")


def test_a_train_spec_names_the_clipping_threshold_as_the_command_line_does(capsys):
    # bptt train --clip-norm; a spec's [fixed] clip_norm; the old spelling `clip` is refused with the new name
    from bptt.sweep.points import train_settings
    pt = parse_spec('kind = "train"\n[fixed]\nclip_norm = 0.5\nlength = 20', source="s.toml").points()[0]
    assert pt.params["clip_norm"] == 0.5 and train_settings(pt.params, 0)["clip_norm"] == 0.5
    with pytest.raises(ValueError) as e:
        parse_spec('kind = "train"\n[fixed]\nclip = 0.5', source="old.toml")
    assert "unknown parameter 'clip'" in str(e.value) and "did you mean 'clip_norm'?" in str(e.value)
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "--clip-norm" in capsys.readouterr().out


def test_success_plot_shows_the_rate_over_seeds_for_each_method_and_length(tmp_path):
    need("matplotlib")
    need("pandas")
    from bptt.sweep import plot, results
    from bptt.sweep.plots import success_vs_length

    pts = spec_of("""
        kind = "train"
        seeds = 4
        [fixed]
        task = "temporal"
        [grid]
        length = [10, 20]
        method = ["clip", "irnn"]
        """).points()
    rng = np.random.default_rng(0)
    with Store(tmp_path / "results.sqlite") as st:
        st.add_points("t", pts)
        for p in pts:
            st.record(p.key, {"status": "ok", "metrics": {"success": bool(rng.integers(0, 2))}}, run_id=1)
    df = results(tmp_path)
    fig = success_vs_length(df)
    lines = {c.get_label(): c.lines[0] for c in fig.axes[0].containers}  # errorbar: (data line, caps, bars)
    assert set(lines) == {"clip", "irnn"}
    for method, ln in lines.items():
        want = [df[(df.method == method) & (df.length == T)]["success"].astype(float).mean() for T in (10, 20)]
        assert list(ln.get_ydata()) == pytest.approx(want)
    (path,) = plot(tmp_path, fmt="svg")
    assert path.name == "t.svg" and path.read_text().lstrip().startswith("<?xml")  # named after the spec, "t"


# --- cells -----------------------------------------------------------------------------------
def test_a_parameter_another_cell_lacks_is_stored_at_its_default_so_such_points_are_one():
    pts = spec_of("""
        kind = "train"
        [fixed]
        method = "clip"
        [grid]
        cell = ["elman", "lstm", "gru"]
        forget_bias = [0.0, 1.0]
        std = [0.1, 0.2]
        """).points()
    by_cell = {c: [p.params for p in pts if p.params["cell"] == c] for c in ("rnn", "lstm", "gru")}  # one spelling
    assert {(q["forget_bias"], q["std"]) for q in by_cell["rnn"]} == {(1.0, 0.1), (1.0, 0.2)}
    assert {(q["forget_bias"], q["std"]) for q in by_cell["lstm"]} == {(0.0, 0.1), (1.0, 0.1)}
    assert {(q["forget_bias"], q["std"]) for q in by_cell["gru"]} == {(1.0, 0.1)}
    assert len(pts) == 5 == len({p.key for p in pts})
    flow = spec_of('kind = "flow"\n[fixed]\nlength = 60\n[grid]\ncell = ["elman", "gru"]\nradius = [0.5, 2.0]\n'
                   'activation = ["tanh", "relu"]').points()
    assert sorted((p.params["cell"], p.params["radius"], p.params["activation"]) for p in flow) == [
        ("gru", 1.0, "tanh"), ("rnn", 0.5, "relu"), ("rnn", 0.5, "tanh"), ("rnn", 2.0, "relu"),
        ("rnn", 2.0, "tanh")]


@pytest.mark.parametrize("method", ["clip_omega", "irnn"])
def test_elman_methods_are_refused_for_a_gated_cell_when_the_spec_loads(method):
    with pytest.raises(ValueError, match=rf"bad.toml: the point \{{'cell': 'gru'\}}: method '{method}' is the "
                                         r"Elman cell's; a point with cell 'gru' takes method vanilla or clip"):
        parse_spec(f'kind = "train"\n[fixed]\nmethod = "{method}"\n[grid]\ncell = ["elman", "gru"]', source="bad.toml")


def test_a_flow_point_of_an_lstm_measures_the_model_random_gated_draws():
    from bptt.model import random_gated

    cfg = flow_config(cell="lstm", forget_bias=1.0, dtype="float64", length=25, long_lag=5)
    m = run_point(cfg)["metrics"]
    rng = np.random.default_rng(cfg["seed"])  # the point's draws, in its order: the model, then x and y
    model = random_gated("lstm", 6, 4, 3, seed=rng, bias=False, forget_bias=1.0)
    x, y = rng.integers(0, 4, 25), rng.integers(0, 3, 25)
    assert m["rho"] is None and m["lambda1"] == pytest.approx(np.linalg.norm(model.W, 2), rel=1e-12)
    assert m["loss"] == pytest.approx(bptt.loss(model, x, y), rel=1e-12)
    share = bptt.flow(model, x, y).by_lag().beyond[5]
    assert m["long_lag_fraction"] == pytest.approx(share, rel=1e-12) and 0 < share < 1


def test_a_train_point_of_a_gated_cell_trains_that_cell():
    cfg = spec_of("""
        kind = "train"
        [fixed]
        task = "temporal"
        cell = "gru"
        length = 10
        hidden = 4
        steps = 3
        eval_every = 3
        batch = 2
        """).points()[0].config
    res = run_point(cfg)
    assert res["status"] == "ok", res["traceback"]
    m = res["metrics"]
    assert m["steps_done"] == 3 and m["rho"] is None and m["lambda1"] > 0 and np.isfinite(m["test_loss"])
    from bptt.sweep.points import train_settings
    assert train_settings(cfg["params"], 0)["cell"] == "gru"


def test_the_success_plot_gives_each_gated_cell_its_own_line(tmp_path):
    need("matplotlib")
    need("pandas")
    from bptt.sweep import results
    from bptt.sweep.plots import success_vs_length, with_cells

    pts = spec_of("""
        kind = "train"
        seeds = 2
        [fixed]
        method = "clip"
        [grid]
        length = [10, 20]
        cell = ["elman", "lstm", "gru"]
        """).points()
    with Store(tmp_path / "results.sqlite") as st:
        st.add_points("t", pts)
        for p in pts:
            st.record(p.key, {"status": "ok", "metrics": {"success": p.params["cell"] == "lstm"}}, run_id=1)
    fig = success_vs_length(with_cells(results(tmp_path)))
    lines = {c.get_label(): list(c.lines[0].get_ydata()) for c in fig.axes[0].containers}
    assert lines == {"clip": [0.0, 0.0], "lstm clip": [1.0, 1.0], "gru clip": [0.0, 0.0]}


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[1] / "sweeps").glob("*.toml")),
                         ids=lambda p: p.name)
def test_the_specs_in_sweeps_load(path):
    pts = load_spec(path).points()
    assert pts and len({p.key for p in pts}) == len(pts)
    if "cells" in path.name:
        assert {p.params["cell"] for p in pts} == {"rnn", "lstm", "gru"}
