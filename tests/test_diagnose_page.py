"""The diagnosis page: self-contained, drawn by a real browser (headless Chromium) without console
errors or network requests, every chart with a size, and its numbers those of the Diagnosis and of
PyTorch's own gradients."""
import json
import math
import re
import shutil

import numpy as np
import pytest
from conftest import need

from bptt.diagnosis import svg
from bptt.diagnosis.numbers import LAGS


def _diagnosis(kind="LSTM", T=24, classify=True, scale=None, seed=0, **options):
    """bptt.diagnose of embedding -> 2-layer bidirectional `kind` -> Linear (float64), and the
    network's .grad after loss.backward() (PyTorch's own)."""
    torch = need("torch")
    import bptt

    torch.manual_seed(seed)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(11, 5, dtype=torch.float64)
            self.rnn = getattr(torch.nn, kind)(5, 6, num_layers=2, bidirectional=True, batch_first=True,
                                               dtype=torch.float64, **options)
            self.out = torch.nn.Linear(12, 3, dtype=torch.float64)

        def forward(self, x):
            h = self.rnn(self.emb(x))[0]
            return self.out(h[:, -1] if classify else h)

    net = Net().eval()
    if scale is not None:
        with torch.no_grad():
            for name, p in net.rnn.named_parameters():
                p.mul_(scale)
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 11, (3, T), generator=g)
    y = torch.randint(0, 3, (3,) if classify else (3, T), generator=g)
    loss_fn = (lambda o: torch.nn.functional.cross_entropy(o, y, reduction="sum")) if classify else \
        (lambda o: torch.nn.functional.cross_entropy(o.reshape(-1, 3), y.reshape(-1), reduction="sum"))
    d = bptt.diagnose(net, net.rnn, x, loss_fn)
    loss_fn(net(x)).backward()
    return d, {n: p.grad.numpy().copy() for n, p in net.rnn.named_parameters()}


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    d, grads = _diagnosis()
    path = tmp_path_factory.mktemp("diagnose") / "page.html"
    d.save(path)
    return d, grads, path


def test_the_page_is_self_contained(page):
    d, _, path = page
    text = path.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:|#)""", text)
    assert "url(" not in text and "<script" not in text and "<img" not in text and "@import" not in text
    charts = sum(3 + 2 * (e["memory"] is not None) for e in d.entries)
    assert text.count("<svg") == charts == 4 * 5
    assert d._repr_html_().count("<svg") == charts and "<html" not in d._repr_html_()
    for line in d.advice():
        assert line.replace("&", "&amp;").replace("'", "&#x27;").replace('"', "&quot;") in text


def _start():
    need("selenium.webdriver")
    from test_explore import _need_chromium

    _need_chromium()
    from bptt.explore.browser import start

    return start(size=(1200, 900))


@pytest.fixture(scope="module")
def browser(page):
    d, grads, path = page
    driver, profile = _start()
    try:
        driver.set_page_load_timeout(60)
        driver.get_log("performance")  # the browser's own start-up requests, before the page
        driver.get(path.resolve().as_uri())
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_the_page_renders_without_errors_or_requests(browser, page):
    d, _, path = page
    assert "bptt diagnosis" in browser.title
    sizes = browser.execute_script("return Array.from(document.querySelectorAll('svg')).map(s => { "
                                   "var r = s.getBoundingClientRect(); return [r.width, r.height, "
                                   "s.querySelectorAll('polyline, circle').length]; });")
    assert len(sizes) == 20
    for w, h, marks in sizes:  # drawn, with a curve or the marks of its points
        assert w > 200 and h > 100 and marks >= 1
    assert [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR", "WARNING")] == []
    requests = []
    for entry in browser.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg["method"] == "Network.requestWillBeSent":
            requests.append(msg["params"]["request"]["url"])
        elif msg["method"] == "Network.webSocketCreated":
            requests.append(msg["params"]["url"])
    requests = [u for u in requests if not u.startswith("chrome://")]
    assert path.resolve().as_uri() in requests  # the log is read: the page's own file is there
    assert [u for u in requests if u != path.resolve().as_uri() and not u.startswith("data:")] == []


def _cells(driver, table):
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('table')[arguments[0]].tBodies[0].rows)"
        ".map(r => Array.from(r.cells).map(c => c.innerText));", table)


def _close(text, want, rtol=6e-4):
    got = float(re.search(r"[-+]?\d[\d.]*(e[-+]?\d+)?", text).group())
    assert abs(got - want) <= rtol * abs(want) + 1e-300, (text, want)


def test_the_numbers_on_the_page_are_the_diagnosis_s(browser, page):
    d, _, _ = page
    rows = _cells(browser, 0)
    assert [r[0] for r in rows] == [e["name"] for e in d.entries]
    for r, e in zip(rows, d.entries):
        assert int(r[2]) == e["H"] and int(r[3]) == e["source"]
        if e["decay"] is None:
            assert r[4] == "n/a" and r[5] == "n/a"
        else:
            _close(r[4], e["decay"])
            _close(r[5].split(" in ")[1], math.log(2) / abs(math.log(e["decay"])))
        _close(r[6], e["lyapunov"])
        _close(r[7], math.exp(e["lyapunov"]))
        radii = dict(line.split() for line in r[8].splitlines())
        assert radii.keys() == e["radius"].keys()
        for gate, v in e["radius"].items():
            _close(radii[gate], v)
        sat = {line.split()[0]: line.split()[1:] for line in r[9].splitlines()}
        for gate, (lo, hi) in e["saturation"].items():
            assert sat[gate][0] == "0%" if lo == 0 else _close(sat[gate][0], 100 * lo) is None
            assert sat[gate][2] == "0%" if hi == 0 else _close(sat[gate][2], 100 * hi) is None
        for K, cell in zip(LAGS, r[10:]):
            share = e["shares"][K]
            assert ("(K ≥ T)" in cell) == (K >= d.T)
            assert cell.startswith("0%") if share == 0 else _close(cell, 100 * share) is None


def test_the_gradients_on_the_page_are_pytorch_s(browser, page):
    d, grads, _ = page
    rows = _cells(browser, 1)
    assert sorted(r[0] for r in rows) == sorted(grads)
    for name, shape, norm, peak in rows:
        g = grads[name]  # PyTorch's own .grad, not the diagnosis's
        assert shape == " x ".join(map(str, g.shape))
        _close(norm, float(np.linalg.norm(g)))
        _close(peak, float(np.abs(g).max()))


def test_the_charts_draw_the_curves_and_the_fitted_decay(page):
    d, _, path = page
    text = path.read_text()
    e = d.entries[0]
    first = text[text.index("<svg"):text.index("</svg>")]
    points = re.findall(r'<polyline class="curve" points="([^"]*)"', first)
    assert len(points[0].split()) == len(e["curve"]) and "stroke-dasharray" in first  # the curve, then the fit
    assert f"fit: {e['decay']:.4g} per step" in first


def test_a_curve_with_zeros_marks_them_and_says_so():
    d, _ = _diagnosis()  # a classifier reads the last step only: the reverse direction's error above
    e = d.entries[-1]    # arrives at its first step, so its lag curve from later steps is zero
    from bptt.diagnosis.page import charts

    assert np.all(e["curve"][1:] == 0) and e["decay"] is None
    first = charts(e, d.T).split("</svg>")[0]
    assert first.count('class="zero"') == int(np.sum(e["curve"] == 0)) and "exactly 0 (off the log scale)" in first


def test_a_non_finite_run_is_shown_with_its_first_step():
    d, _ = _diagnosis(kind="RNN", T=30, classify=False, scale=1e30, nonlinearity="relu")  # overflows
    assert d.nonfinite is not None and "forward" in d.nonfinite
    html = d._repr_html_()
    assert f"First non-finite value: {d.nonfinite}" in html.replace("&#x27;", "'").replace("&#x27;", "'")
    assert "not finite (NaN or Inf)" in html and html.count('class="nonfinite"') > 0


# --- the charts' axes ---------------------------------------------------------------------------

def _ticks(chart, axis):
    return re.findall(rf'class="{axis}t">([^<]*)<', chart)


@pytest.mark.parametrize("y, log", [
    (np.linspace(-0.3, 0.3, 9), False), (np.array([2.0, 2.0, 2.0]), False), (np.array([0.0]), False),
    (np.array([1.0, 1.1, 1.2]), True), (np.logspace(-300, 300, 50), True), (np.array([3e-5, 0.0, 4e-5]), True),
    (np.array([np.nan, np.inf, 0.0]), True), (np.array([5e-324, 1.0]), True), (np.array([-1e9, 1e9]), False)])
def test_every_axis_has_four_ticks_or_more_and_no_minus_zero(y, log):
    chart = svg.chart([{"x": np.arange(len(y)), "y": y, "label": "y"}], title="t", xlabel="x", ylabel="y", log=log)
    for axis in "xy":
        ticks = _ticks(chart, axis)
        assert len(ticks) >= 4, (axis, ticks)
        assert not any(re.fullmatch(r"-0(\.0*)?(e.*)?", t) for t in ticks), ticks
        assert len(set(ticks)) == len(ticks), ticks
    assert chart.count('class="zero"') == (int(np.sum(y == 0)) if log else 0)
    assert chart.count('class="nonfinite"') == int(np.sum(~np.isfinite(y)))
    assert ("exactly 0" in chart) == (log and bool(np.any(y == 0)))
    assert ("not finite" in chart) == bool(np.any(~np.isfinite(y)))


def test_tick_labels():
    assert [svg.label(v) for v in (0.0, -0.0, -1e-17 * 0, 1e-5, 2e-5, 0.5, 1000.0, -0.2)] == \
        ["0", "0", "0", "1e-5", "2e-5", "0.5", "1e3", "-0.2"]
    ticks, lo, hi = svg.linear_ticks(-0.1, 0.1)
    assert lo <= -0.1 and hi >= 0.1 and len(ticks) >= 4 and 0.0 in [round(t, 12) for t in ticks]


def test_shares_left_out_are_said_so(page):
    import dataclasses

    from bptt.diagnosis.page import numbers_table

    d, _, _ = page
    table = numbers_table(dataclasses.replace(d, entries=[{**e, "shares": {}} for e in d.entries]))
    assert table.count("not computed") == len(d.entries) * len(LAGS)
    assert "not computed" not in numbers_table(d)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_a_sequence_of_one_step_still_draws_every_axis(kind):
    d, _ = _diagnosis(kind=kind, T=1, classify=False)
    html = d._repr_html_()
    charts = html.split("</svg>")[:-1]
    assert len(charts) == sum(3 + 2 * (e["memory"] is not None) for e in d.entries)
    for chart in charts:
        assert len(_ticks(chart, "x")) >= 4 and len(_ticks(chart, "y")) >= 4
