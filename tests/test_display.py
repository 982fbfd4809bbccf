"""The notebook displays (_repr_html_) show the numbers their objects hold.

Each display is parsed back with html.parser: every element with data-key gives (data-value, text),
and the test compares them with the object's own attributes, the full value exactly and the text
to the digits shown. The plain-text repr of each object is unchanged.
"""
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

import bptt
from bptt import display
from bptt.frameworks import Comparison, Row
from bptt.sweep.runner import SweepSummary
from bptt.train import resolve, train
from bptt.train.loop import TrainSummary


class Shown(HTMLParser):
    """key -> (data-value or None, text) of every element with data-key; the tags seen; all text."""

    def __init__(self, html):
        super().__init__()
        self.keys, self.open, self.tags, self.text = {}, [], [], []
        self.feed(html)
        self.close()
        assert not self.open, f"unclosed elements {self.open}"

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        self.open.append((tag, a.get("data-key"), a.get("data-value"), []))

    def handle_startendtag(self, tag, attrs):
        self.tags.append(tag)

    def handle_endtag(self, tag):
        name, key, val, text = self.open.pop()
        assert name == tag, f"</{tag}> closes <{name}>"
        if key is not None:
            assert key not in self.keys, f"data-key {key!r} appears twice"
            self.keys[key] = (val, "".join(text).strip())

    def handle_data(self, data):
        self.text.append(data)
        for _, _, _, text in self.open:
            text.append(data)

    def number(self, key):
        """The full value of key, after checking its text is that value rounded as shown."""
        val, text = self.keys[key]
        assert val is not None, f"{key} carries no data-value"
        v = float(val)
        text = text.rsplit(": ", 1)[-1]  # a heatmap cell's text is its <title>, "t = 2, k = 0: 0.003985"
        shown = float(text.replace("inf", "Infinity")) if text not in ("nan",) else np.nan
        if np.isfinite(v):
            assert shown == pytest.approx(v, rel=1e-3, abs=0), (key, text, val)
        else:
            assert str(shown) == str(v), (key, text, val)
        return v

    def label(self, key):
        return self.keys[key][1]


def shown(obj):
    return Shown(obj._repr_html_())


def test_model_shows_every_entry_norm_range_and_pascanus_numbers():
    m, _, _ = bptt.seed_example()
    s = shown(m)
    for k, a in m.params.items():
        assert s.label(f"shape({k})") == "x".join(map(str, a.shape))
        assert s.number(f"norm({k})") == np.linalg.norm(a)
        assert s.number(f"min({k})") == a.min() and s.number(f"max({k})") == a.max()
        for i, j in np.ndindex(*a.shape):
            assert s.number(f"{k}[{i}, {j}]") == a[i, j]
    assert s.number("rho(W)") == pytest.approx(bptt.spectral_radius(m.W), rel=1e-15)
    assert s.number("lambda_1 = ||W||_2") == pytest.approx(np.linalg.svd(m.W, compute_uv=False)[0], rel=1e-14)
    assert repr(m) in "".join(s.text)  # the title is the plain repr, which is unchanged
    assert repr(m).startswith("RNN(H=2, D=3, O=3")


def test_large_and_gated_models_show_summaries_not_entries():
    m = bptt.random_gated("lstm", 16, 5, 3, seed=0)
    s = shown(m)
    for k, a in m.params.items():
        assert s.number(f"norm({k})") == pytest.approx(np.linalg.norm(a), rel=1e-15)
        assert s.number(f"max({k})") == a.max()
    assert "W[0, 0]" not in s.keys and "c[0]" in s.keys  # W has 4H x H = 1024 entries, c has 3
    assert "rho(W)" not in s.keys  # a gated W (4H, H) has no spectral radius of Pascanu's kind


def test_trace_shows_states_outputs_and_probabilities():
    m, x, _ = bptt.seed_example()
    tr = bptt.forward(m, x)
    s = shown(tr)
    np.testing.assert_array_equal([s.number(f"s_-1[{i}]") for i in range(2)], tr.states[0])
    for t in range(3):
        assert s.number(f"x_{t}") == x[t]
        np.testing.assert_array_equal([s.number(f"s_{t}[{i}]") for i in range(2)], tr.states[t + 1])
        np.testing.assert_array_equal([s.number(f"q_{t}[{i}]") for i in range(3)], tr.q[t])
        np.testing.assert_allclose([s.number(f"o_{t}[{i}]") for i in range(3)], tr.o[t], rtol=1e-15)


def test_trace_of_a_long_batch_shows_first_and_last_steps_of_sequence_0_as_norms():
    m = bptt.random_rnn(12, 4, 4, seed=1)
    X = np.random.default_rng(0).normal(size=(3, 40, 4))
    tr = bptt.forward(m, X)
    s = shown(tr)
    steps = sorted(int(k[len("norm(s_"):-1]) for k in s.keys if k.startswith("norm(s_") and k != "norm(s_-1)")
    assert steps == list(range(6)) + list(range(34, 40))
    for t in steps:
        assert s.number(f"norm(s_{t})") == pytest.approx(np.linalg.norm(tr.states[0, t + 1]), rel=1e-15)
        np.testing.assert_array_equal([s.number(f"x_{t}[{i}]") for i in range(4)], X[0, t])
    assert "N = 3" in "".join(s.text)


def test_flow_shows_summary_lag_table_and_every_heatmap_cell():
    m = bptt.random_rnn(8, 4, 4, seed=2, radius=1.2)
    x, y = np.arange(24) % 4, (np.arange(24) + 1) % 4
    fl = bptt.flow(m, x, y)
    s = shown(fl)
    assert s.number("loss") == fl.loss and s.number("T") == 24
    assert s.number("||dE_23/ds_0||") == fl.dE_ds[23, 0]
    assert s.number("decay rate per step") == fl.decay_rate()
    th = fl.theory()
    assert s.number("lambda_1 gamma") == th.growth and s.label("verdict") == th.verdict
    prof = fl.by_lag()
    for l in (0, 1, 2, 3, 5, 10, 20, 23):
        assert s.number(f"count[{l}]") == prof.count[l] == 24 - l
        assert s.number(f"norm_mean[{l}]") == prof.norm_mean[l]
        assert s.number(f"ratio_mean[{l}]") == prof.ratio_mean[l]
        assert s.number(f"beyond[{l}]") == prof.beyond[l]
    # T = 24 <= BINS: one cell per (t, k), t >= k, each with the table's value
    cells = {k: v for k, v in s.keys.items() if k.startswith("dE_ds[") and ":" not in k}
    assert len(cells) == 24 * 25 // 2
    for t, k in zip(*np.tril_indices(24)):
        assert float(s.keys[f"dE_ds[{t}, {k}]"][0]) == fl.dE_ds[t, k]
    assert s.number("dE_ds.log10_max") == pytest.approx(np.log10(fl.dE_ds.max()), rel=1e-12)
    assert s.number("dE_ds.log10_min") == pytest.approx(np.log10(fl.dE_ds[np.tril_indices(24)].min()), rel=1e-12)
    assert "svg" in s.tags and s.tags.count("rect") >= len(cells)


def test_flow_heatmap_colours_follow_log10_of_the_values():
    m, x, y = bptt.seed_example()
    html = bptt.flow(m, x, y)._repr_html_()
    fills = {key: fill for fill, key in re.findall(r'<rect [^>]*fill="([^"]+)" data-key="([^"]+)"', html)}
    assert len(fills) == 6  # the lower triangle of T = 3
    fl = bptt.flow(m, x, y)
    lo, hi = np.log10(fl.dE_ds[np.tril_indices(3)]).min(), np.log10(fl.dE_ds.max())
    for key, fill in fills.items():
        t, k = (int(v) for v in key[len("dE_ds["):-1].split(", "))
        assert fill == display.colour((np.log10(fl.dE_ds[t, k]) - lo) / (hi - lo))
    assert display.colour(0) == "#440154" and display.colour(1) == "#fde725"  # viridis' ends


def test_flow_heatmap_of_a_long_sequence_shows_each_blocks_largest_entry():
    m = bptt.random_rnn(6, 3, 3, seed=0, radius=0.9)
    T = 100
    fl = bptt.flow(m, np.arange(T) % 3, np.arange(T) % 3)
    s = shown(fl)
    blocks = {k: float(v) for k, (v, _) in s.keys.items() if k.startswith("dE_ds[") and ":" in k}
    edges = np.linspace(0, T, display.BINS + 1).round().astype(int)
    assert len(blocks) == display.BINS * (display.BINS + 1) // 2
    for key, v in blocks.items():
        (t0, t1), (k0, k1) = (map(int, r.split(":")) for r in key[len("dE_ds["):-1].split(", "))
        assert t0 in edges and k1 in edges
        assert v == fl.dE_ds[t0:t1, k0:k1].max()


def test_flow_of_a_gated_cell_with_one_scored_output():
    m = bptt.random_gated("lstm", 6, 4, 4, seed=0, forget_bias=1.0)
    y = np.full(30, -1)
    y[-1] = 2  # only the last output has a loss, as in the temporal-order task
    fl = bptt.flow(m, np.arange(30) % 4, y)
    s = shown(fl)
    assert s.label("cell") == "lstm" and "verdict" not in s.keys  # no Pascanu bound for an LSTM
    prof = fl.by_lag()
    for l in (0, 1, 10, 29):
        assert s.number(f"count[{l}]") == prof.count[l] == 1
        assert s.number(f"norm_mean[{l}]") == prof.norm_mean[l] == fl.dE_ds[29, 29 - l]
    assert s.number("||dE_29/ds_0||") == fl.dE_ds[29, 0]
    rows = [k for k in s.keys if k.startswith("dE_ds[") and ":" not in k]
    assert sorted(rows) == sorted(f"dE_ds[29, {k}]" for k in range(30))  # the unscored outputs' rows are blank


def test_check_report_shows_each_parameters_row():
    m, x, y = bptt.seed_example()
    rep = bptt.check(m, x, y)
    s = shown(rep)
    assert s.number("loss") == rep.loss and s.number("tol") == rep.tol and s.label("result") == "passed"
    for r in rep.rows:
        assert s.number(f"{r.name}.checked") == r.checked and s.number(f"{r.name}.total") == r.total
        assert s.number(f"{r.name}.max_abs") == r.max_abs and s.number(f"{r.name}.max_rel") == r.max_rel
        assert s.number(f"{r.name}.step") == r.step and s.label(f"{r.name}.result") == "pass"
    assert str(rep).startswith("the fast backend's gradients against finite differences (five-point, float64)")


def test_check_report_shows_a_failure():
    m, x, y = bptt.seed_example()
    _, g = bptt.gradients(m, x, y)
    rep = bptt.check(m, x, y, grads=g.replace(W=2 * g.W))
    s = shown(rep)
    assert s.label("result") == "FAILED" and s.label("W.result") == "FAIL" and s.label("U.result") == "pass"
    assert s.number("W.max_rel") == rep["W"].max_rel == pytest.approx(0.5)


def test_comparison_shows_every_row_and_non_finite_errors():
    rows = (Row("torch", "loss", 0.0, 0.0, True), Row("torch", "W", 1.5e-15, 2.25e-13, True),
            Row("jax", "W", float("nan"), float("nan"), False), Row("jax", "h0", float("inf"), float("inf"), False))
    c = Comparison(rows, 1e-10, 3, "sum")
    s = shown(c)
    for r in rows:
        for f in ("max_abs_err", "max_rel_err"):
            v = s.number(f"{r.framework}.{r.quantity}.{f}")
            assert v == getattr(r, f) or (np.isnan(v) and np.isnan(getattr(r, f)))
        assert s.label(f"{r.framework}.{r.quantity}.result") == ("ok" if r.passed else "FAIL")
    assert s.label("result") == "FAILED (2 of 4)" and s.number("truncate") == 3 and s.number("rtol") == 1e-10


@pytest.mark.frameworks
def test_comparison_with_a_framework_shows_its_numbers():
    from conftest import need
    need("torch")
    m, x, y = bptt.seed_example()
    c = bptt.compare(m, x, y, frameworks=["torch"], truncate=1)
    s = shown(c)
    assert s.label("result") == "passed" and s.number("truncate") == 1
    for r in c.rows:
        assert s.number(f"torch.{r.quantity}.max_rel_err") == r.max_rel_err


def test_training_summary_shows_every_key(tmp_path):
    cfg = resolve({"task": "temporal", "length": 10, "steps": 3, "batch": 4, "hidden": 5, "eval_every": 3,
                   "checkpoint_every": 3})
    summary = train(cfg, tmp_path, progress=False)
    assert isinstance(summary, TrainSummary) and isinstance(summary, dict)
    s = shown(summary)
    for k, v in summary.items():
        if isinstance(v, bool) or v is None:
            assert s.label(k) == display.number(v)
        elif isinstance(v, (int, float)):
            assert s.number(k) == v
        else:
            assert s.label(k) == v
    assert "test_loss" in summary and "baseline" in summary
    assert repr(summary) == repr(dict(summary))  # the plain repr is the dict's


def test_sweep_summary_shows_its_counts():
    sm = SweepSummary(Path("runs/x"), 3, 216, 10, 200, 4, 2, 12.5, 5, 2)
    s = shown(sm)
    for k in ("total", "skipped", "ok", "failed", "lost", "pending", "failed_total", "seconds", "run_id"):
        assert s.number(k) == getattr(sm, k)
    assert s.label("out") == str(Path("runs/x"))
    assert str(sm).startswith("216 points: 10 already done, 200 ok, 4 failed")


def test_text_is_escaped():
    c = Comparison((Row("<script>", "a&b", 0.0, 0.0, True),), 1e-10, None, "sum")
    html = c._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html and "a&amp;b" in html
    s = Shown(html)
    assert s.number("<script>.a&b.max_abs_err") == 0.0 and s.label("truncate") == "full BPTT"


def test_number_formatting():
    assert [display.number(v) for v in (3, 0.5, 1.23456e-10, float("nan"), -float("inf"), None, True)] == \
        ["3", "0.5", "1.235e-10", "nan", "-inf", "-", "yes"]
