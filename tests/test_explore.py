"""The explorer page: self-contained, its engine equal to the library's in a real browser (headless
Chromium), every control redrawing the views, no console error and no network request."""
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import need

import bptt
from bptt.cli import main
from bptt.explore import MAX_BYTES, cells_json, page, write_explorer

ROOT = Path(__file__).resolve().parents[1]
TOL = 1e-12
# the library's own cells, each of which the page's engine has a step for (a cell registered from
# outside, such as examples/custom_cell.py's, is described in the page but not listed)
BUILT_IN = [n for n in bptt.cells.names() if bptt.cells.get(n).__module__.startswith("bptt.")]


# --- the file ------------------------------------------------------------------------------------
def test_page_is_one_small_file_that_loads_nothing(tmp_path):
    path = write_explorer(tmp_path / "explorer.html")
    html = path.read_text()
    assert html == page() and 10_000 < path.stat().st_size <= MAX_BYTES
    assert not re.search(r"https?://", html)  # no address to fetch from, anywhere
    assert not re.search(r"""(src|href)\s*=""", html) and "url(" not in html and "import(" not in html
    assert "default-src 'none'" in html  # the page forbids itself any request
    assert "/*ENGINE*/" not in html and "window.bpttExplorer" in html and "function decompose" in html
    assert "/*CELLS*/" not in html


def test_the_page_carries_the_registry_s_description_of_every_cell():
    described = json.loads(cells_json())
    assert [c["name"] for c in described] == list(bptt.cells.names())
    for c in described:
        cell = bptt.cells.get(c["name"])
        assert c["params"] == [[k, list(p.shape), p.optional, p.role] for k, p in cell.params.items()]
        assert c["widths"] == list(cell().state_sizes(1)) and c["options"] == list(cell.options())
    assert "</" not in cells_json()  # nothing in it can close the page's script


def test_cli_writes_the_page_and_refuses_bad_paths(tmp_path, capsys):
    out = tmp_path / "explorer.html"
    assert main(["explore", "--out", str(out)]) == 0
    assert out.read_text() == page() and str(out) in capsys.readouterr().out
    for bad, words in ((tmp_path / "missing" / "e.html", "does not exist"), (tmp_path, "is a directory")):
        assert main(["explore", "--out", str(bad)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("bptt explore: error:") and words in err and "\n" not in err


def test_write_explorer_refuses_a_path_that_is_not_a_name(tmp_path):
    with pytest.raises(TypeError, match="file name"):
        write_explorer(3)


def test_the_assets_ship_with_the_package():
    from importlib import resources
    files = {p.name for p in resources.files("bptt.explore").iterdir()}
    assert {"template.html", "engine.js", "explorer.js", "explorer.css", "kernels.wat", "kernels.wasm"} <= files
    text = (ROOT / "pyproject.toml").read_text()
    for pattern in ("js", "html", "css", "wat", "wasm"):
        assert f'"explore/*.{pattern}"' in text


# --- the WebAssembly kernel, run here by wasmtime -----------------------------------------------
def _kernel():
    wasmtime = need("wasmtime")
    from importlib import resources
    store = wasmtime.Store()
    module = wasmtime.Module(store.engine, resources.files("bptt.explore").joinpath("kernels.wasm").read_bytes())
    exports = wasmtime.Instance(store, module, []).exports(store)
    return store, exports["memory"], exports["mm"]


def test_the_shipped_kernel_is_its_source_compiled():
    wasmtime = need("wasmtime")
    src = ROOT / "src" / "bptt" / "explore"
    assert bytes(wasmtime.wat2wasm((src / "kernels.wat").read_text())) == (src / "kernels.wasm").read_bytes(), \
        "kernels.wasm is stale: run python scripts/build_wasm.py"


@pytest.mark.parametrize("n,P,Q", [(1, 1, 4), (4, 3, 8), (7, 64, 64), (13, 256, 20), (200, 130, 68)])
def test_the_kernel_product_equals_numpy(n, P, Q):
    store, memory, mm = _kernel()
    rng = np.random.default_rng(n + P + Q)
    rows = -(-n // 4) * 4  # the kernel works on four rows at a time: D's extra rows are zeros
    D, M = np.zeros((rows, P)), rng.normal(size=(P, Q))
    D[:n] = rng.normal(size=(n, P))
    need_bytes = 8 * (D.size + M.size + rows * Q)
    if memory.data_len(store) < need_bytes:
        memory.grow(store, -(-(need_bytes - memory.data_len(store)) // 65536))
    memory.write(store, D.tobytes() + M.tobytes(), 0)
    mm(store, 0, 8 * D.size, 8 * (D.size + M.size), rows // 4, P, Q)
    out = np.frombuffer(memory.read(store, 8 * (D.size + M.size), 8 * (D.size + M.size + rows * Q)), dtype=np.float64)
    want = D @ M
    assert np.max(np.abs(out.reshape(rows, Q) - want)) <= 1e-13 * max(np.max(np.abs(want)), 1.0)
    assert not out.reshape(rows, Q)[n:].any()


# --- the browser ---------------------------------------------------------------------------------
def _need_chromium():
    from bptt.explore.browser import binaries
    if not all(binaries()) and os.environ.get("CI", "").lower() == "true":
        subprocess.run([str(ROOT / "scripts" / "ensure-chromium")], check=False, timeout=900)
    if not all(binaries()):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("chromium and chromedriver are required when CI=true (scripts/ensure-chromium installs them)")
        pytest.skip("chromium/chromedriver not installed (run scripts/ensure-chromium)")


WASM_POLICY = "script-src 'unsafe-inline' 'wasm-unsafe-eval';"


@pytest.fixture(scope="module", params=["wasm", "js"])
def browser(tmp_path_factory, request):
    """The page in headless Chromium: as written ("wasm": its product runs in WebAssembly), and
    served under a policy that forbids WebAssembly ("js": the same loop in JavaScript)."""
    need("selenium.webdriver")
    _need_chromium()
    from bptt.explore.browser import start
    path = write_explorer(tmp_path_factory.mktemp("explore") / "explorer.html")
    if request.param == "js":
        html = path.read_text()
        assert WASM_POLICY in html
        path.write_text(html.replace(WASM_POLICY, "script-src 'unsafe-inline';"))
    driver, profile = start()
    try:
        driver.set_page_load_timeout(60)
        driver.get_log("performance")  # the browser's own start-up requests, before the page
        driver.get(path.resolve().as_uri())
        assert driver.execute_script("return bpttExplorer.product;") == request.param
        yield driver, path
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def rel(a, b):
    """max |a - b| / max |b| (floored at 1e-300): the relative error of a whole array."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a - b), initial=0.0) / max(np.max(np.abs(b), initial=0.0), 1e-300))


def _elman_case(rng):
    H, D, O, T = [int(v) for v in rng.integers(1, 7, 3)] + [int(rng.integers(1, 12))]
    act = str(rng.choice(["tanh", "sigmoid", "relu", "identity"]))
    m = bptt.random_rnn(H, D, O, seed=rng, radius=float(rng.uniform(0.3, 1.8)), activation=act)
    if rng.random() < 0.6:
        m = m.replace(b=rng.normal(size=H), c=rng.normal(size=O))
    dense = rng.random() < 0.4
    x = rng.normal(size=(T, D)) if dense else rng.integers(0, D, T)
    y = rng.integers(0, O, T)
    y[rng.random(T) < 0.2] = -1  # unscored steps
    y[0] = rng.integers(0, O)
    h0 = rng.normal(size=H) if rng.random() < 0.5 else None
    return m, x, y, h0


def _payload(m, x, y, h0, **extra):
    p = {k: v.tolist() for k, v in m.params.items()}
    p.update(x=np.asarray(x).tolist(), y=np.asarray(y).tolist(), **extra)
    if h0 is not None:
        p.update(h0=np.asarray(h0[0] if isinstance(h0, tuple) else h0).tolist())
        if isinstance(h0, tuple):
            p.update(c0=np.asarray(h0[1]).tolist())
    return p


def test_page_engine_equals_bptt_flow_and_gradients_on_drawn_elman_cases(browser):
    driver, _ = browser
    rng = np.random.default_rng(20)
    for case in range(12):
        m, x, y, h0 = _elman_case(rng)
        got = driver.execute_script("return bpttExplorer.flow(arguments[0]);",
                                    _payload(m, x, y, h0, activation=m.activation))  # no cell: "rnn"
        fl = bptt.flow(m, x, y, h0=h0)
        loss, g = bptt.gradients(m, x, y, h0=h0)
        label = f"case {case}: {m!r}, T = {len(y)}"
        assert abs(got["loss"] - loss) <= TOL * abs(loss), label
        assert rel(got["dE_ds"], fl.dE_ds) <= TOL, label
        assert sorted(got["grads"]) == sorted(m.params), label
        for k in m.params:
            assert rel(got["grads"][k], getattr(g, k)) <= TOL, (label, k)
        assert rel(got["h0"], g.h0) <= TOL, label


@pytest.mark.parametrize("cell,reset_after", [("lstm", True), ("gru", True), ("gru", False)])
def test_page_engine_equals_bptt_on_lstm_and_gru(browser, cell, reset_after):
    driver, _ = browser
    rng = np.random.default_rng(5)
    for case in range(4):
        H, D, O, T = (1, 2, 7, 13)[case], 3, 4, 3 + 5 * case  # H from 1 to past the product's 4 columns
        m = bptt.random_gated(cell, H, D, O, seed=rng, bias=case % 2 == 0,
                              **({"reset_after": reset_after} if cell == "gru" else {}))
        x = rng.integers(0, D, T) if case % 2 else rng.normal(size=(T, D))
        y = rng.integers(0, O, T)
        h0 = (rng.normal(size=H), rng.normal(size=H)) if cell == "lstm" else rng.normal(size=H)
        got = driver.execute_script("return bpttExplorer.gatedFlow(arguments[0]);",
                                    _payload(m, x, y, h0, cell=cell, reset_after=reset_after))
        fl = bptt.flow(m, x, y, h0=h0)
        loss, g = bptt.gradients(m, x, y, h0=h0)
        assert abs(got["loss"] - loss) <= TOL * abs(loss)
        assert rel(got["dE_ds"], fl.dE_ds) <= TOL
        if cell == "lstm":
            assert rel(got["dE_dc"], fl.dE_dc) <= TOL and rel(got["c0"], g.c0) <= TOL
        assert sorted(got["grads"]) == sorted(m.params)
        for k in m.params:
            assert rel(got["grads"][k], getattr(g, k)) <= TOL, (cell, case, k)


def _drawn_options(cell, rng):
    """Options of a random model of this cell, drawn among those its random model takes (the
    registry's Cell.options): biases or none, the GRU's reset gate before or after, the LRU's
    normalisation, a ring of eigenvalues, larger weights, the coRNN's damping form and its dt,
    gamma, eps around the authors' sMNIST and adding-problem values."""
    takes = bptt.cells.get(cell).options()
    opts = {k: bool(rng.random() < 0.5) for k in ("bias", "normalise", "reset_after", "implicit") if k in takes}
    for k, lo, hi in (("dt", 0.01, 0.2), ("gamma", 0.0, 70.0), ("eps", 0.0, 16.0)):
        if k in takes:
            opts[k] = float(rng.uniform(lo, hi))
    if "r_min" in takes:
        lo, hi = np.sort(rng.uniform(0, 1, 2))
        opts.update(r_min=float(lo), r_max=float(hi))
    if "std" in takes and rng.random() < 0.5:
        opts["std"] = float(rng.uniform(0.5, 2.0))
    return opts


def _agrees(driver, cell, rng, cases, **fixed):
    """bpttExplorer.flow on `cases` random models of the cell (their options drawn, then `fixed`)
    equals bptt.flow and bptt.gradients: loss, dE_ds (and dE_dc), every gradient, h0 (and c0)."""
    for case in range(cases):
        H, D, O = (int(v) for v in rng.integers(1, 7, 3))
        T = int(rng.integers(1, 13))
        m = bptt.random_model(cell, H, D, O, seed=rng, **{**_drawn_options(cell, rng), **fixed})
        x = rng.normal(size=(T, D)) if case % 2 else rng.integers(0, D, T)
        y = rng.integers(0, O, T)
        y[rng.random(T) < 0.2] = -1  # unscored steps
        y[0] = rng.integers(0, O)
        states = tuple(rng.normal(size=n) for n in m.state_sizes)
        h0 = None if case == 0 else states[0] if len(states) == 1 else states
        settings = {k: getattr(m, k) for k in bptt.cells.get(cell).settings}
        got = driver.execute_script("return bpttExplorer.flow(arguments[0]);",
                                    _payload(m, x, y, h0, cell=cell, **settings))
        fl = bptt.flow(m, x, y, h0=h0)
        loss, g = bptt.gradients(m, x, y, h0=h0)
        label = f"{cell} case {case}: {m!r}, T = {T}, h0 {'given' if h0 is not None else 'zero'}"
        assert abs(got["loss"] - loss) <= TOL * abs(loss), label
        assert rel(got["dE_ds"], fl.dE_ds) <= TOL, label
        if fl.dE_dc is not None:
            assert rel(got["dE_dc"], fl.dE_dc) <= TOL and rel(got["c0"], g.c0) <= TOL, label
        assert sorted(got["grads"]) == sorted(m.params), label
        for k in m.params:
            assert rel(got["grads"][k], getattr(g, k)) <= TOL, (label, k)
        assert rel(got["h0"], g.h0) <= TOL, label


@pytest.mark.parametrize("cell", BUILT_IN)
def test_page_engine_equals_bptt_on_every_registered_cell(browser, cell):
    """bpttExplorer.flow({cell, parameters by name, ...}) against bptt.flow and bptt.gradients on
    random configurations: sizes, ids or dense inputs, unscored steps, h0 (and c0) or none."""
    driver, _ = browser
    assert cell in driver.execute_script("return bpttExplorer.cells;")
    _agrees(driver, cell, np.random.default_rng(sum(map(ord, cell))), 5)


@pytest.mark.parametrize("implicit", [True, False])
def test_page_engine_equals_bptt_on_both_of_the_cornn_s_damping_forms(browser, implicit):
    """The paper's implicit damping and the authors' code's explicit one, each with drawn dt, gamma,
    eps (the page's flow takes the settings by the library's names)."""
    driver, _ = browser
    _agrees(driver, "cornn", np.random.default_rng(31 + implicit), 6, implicit=implicit)


def test_page_engine_takes_the_cornn_s_settings_and_refuses_a_bad_one(browser):
    driver, _ = browser
    m = bptt.random_model("cornn", 3, 2, 2, seed=0)
    p = _payload(m, [0, 1], [1, 0], None, cell="cornn")
    default = driver.execute_script("return bpttExplorer.flow(arguments[0]).loss;", p)
    assert abs(default - bptt.gradients(m, [0, 1], [1, 0])[0]) <= TOL * default  # dt, gamma, eps left out: the defaults
    with pytest.raises(Exception, match="the cornn cell's dt must be a finite number"):
        driver.execute_script("return bpttExplorer.flow(arguments[0]);", {**p, "dt": "0.1"})
    with pytest.raises(Exception, match="the cornn cell's implicit must be a boolean"):
        driver.execute_script("return bpttExplorer.flow(arguments[0]);", {**p, "implicit": 1})
    for k, v in (("cell", "cornn"), ("dt", 0.2), ("gamma", 10), ("eps", 1)):  # gamma dt = 2 eps: no bound
        _set(driver, k, v)
    view = driver.execute_script("return bpttExplorer.view;")
    assert view["stepBound"] is None and "needs implicit damping, gamma > 0 and gamma dt < 2 eps" in view["reason"]
    assert driver.execute_script("return bpttExplorer.current().settings;") == {"dt": 0.2, "gamma": 10, "eps": 1,
                                                                               "implicit": True}


def test_page_engine_refuses_a_parameter_of_the_wrong_size(browser):
    driver, _ = browser
    m = bptt.random_model("lru", 3, 2, 2, seed=0)
    p = _payload(m, [0, 1], [1, 0], None, cell="lru")
    p["theta_log"] = p["theta_log"][:2]
    with pytest.raises(Exception, match=r"theta_log must be \(H\) with H = 3"):
        driver.execute_script("return bpttExplorer.flow(arguments[0]);", p)
    with pytest.raises(Exception, match="unknown cell"):
        driver.execute_script("return bpttExplorer.flow(arguments[0]);", {**p, "cell": "nope"})
    with pytest.raises(Exception, match="the lru cell needs B_re"):
        driver.execute_script("return bpttExplorer.flow(arguments[0]);", {k: v for k, v in p.items() if k != "B_re"})


def test_page_numerics_agree_with_numpy_and_bptt_theory(browser):
    driver, _ = browser
    rng = np.random.default_rng(8)
    for n in (1, 3, 9, 24):
        M = rng.normal(size=(n, n))
        sv = driver.execute_script("return bpttExplorer.singularValues(arguments[0]);", M.tolist())
        assert rel(sv, np.linalg.svd(M, compute_uv=False)) <= 1e-12
        W = bptt.with_spectral_radius(rng.normal(size=(n, n)), 1.3)
        r = driver.execute_script("return bpttExplorer.spectralRadius(arguments[0]);", W.tolist())
        assert abs(r - bptt.spectral_radius(W)) <= 1e-6 * bptt.spectral_radius(W)
        for act in ("tanh", "sigmoid", "identity"):
            for scale in (0.5, 0.9, 2.0):  # away from rho = 1, where the page's estimate of rho cannot decide
                th = bptt.RNN(U=np.ones((n, 1)), W=W * scale / 1.3, V=np.ones((1, n)), activation=act)
                want = bptt.theory.theory(th)
                got = driver.execute_script("return bpttExplorer.theory(arguments[0]);",
                                            {"W": th.W.tolist(), "activation": act})
                assert got["verdict"] == want.verdict, (n, act, scale)
                assert abs(got["lambda1"] - want.lambda1) <= 1e-9 * want.lambda1


def _settle(driver):
    return driver.execute_script("return bpttExplorer.update();")


def _set(driver, control, value):
    driver.execute_script("var e = document.getElementById(arguments[0]); e.value = arguments[1];"
                          "e.dispatchEvent(new Event('input'));", control, str(value))


def _drawn(driver):
    """What the page shows: every canvas's pixels and the texts of the verdict and truncation."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('canvas')).map(c => c.toDataURL())"
        ".concat(['verdict', 'truncation', 'words'].map(i => document.getElementById(i).innerText));")


def _shown(cell):
    """The parameter whose terms the page shows, from the registry: the cell's recurrent W, else its
    first own parameter (no role), else its first input parameter."""
    params = bptt.cells.get(cell).params
    return next(k for role in ("recurrent", None, "input") for k, p in params.items() if p.role == role)


@pytest.mark.parametrize("cell", BUILT_IN)
def test_the_views_show_the_library_numbers_of_the_network_on_display(browser, cell):
    driver, _ = browser
    for k, v in (("cell", cell), ("H", 6), ("T", 30), ("t", 25), ("K", 7), ("rho", 1.2), ("r_min", 0.3),
                 ("r_max", 0.97), ("dt", 0.1), ("gamma", 8.5), ("eps", 3.2)):
        _set(driver, k, v)
    net = driver.execute_script("return bpttExplorer.current();")
    view = driver.execute_script("return bpttExplorer.view;")
    assert net["cell"] == cell and view["settings"]["t"] == 25 and view["settings"]["K"] == 7
    described = bptt.cells.get(cell)
    arrays = {k: np.array(net[k]) for k in (*described.params, "V") if k in net}
    m = getattr(bptt, described.model)(**arrays, **net["settings"])  # bptt.LRU for "lru"
    assert m.H == 6
    x, y = np.array(net["x"]), np.array(net["y"])
    fl = bptt.flow(m, x, y)
    assert abs(view["loss"] - fl.loss) <= TOL * fl.loss
    P = view["param"]
    assert P == _shown(cell)
    terms = fl.terms(P, 25)  # (T, *shape of P)
    assert rel(view["terms"], np.linalg.norm(terms[:26].reshape(26, -1), axis=1)) <= 1e-11
    lost = np.linalg.norm(terms[:25 - 7].sum(axis=0))
    assert abs(view["truncation"]["lost"] - lost) <= 1e-11 * max(lost, 1e-300)
    _, g = bptt.gradients(m, x, y)
    _, gK = bptt.gradients(m, x, y, truncate=7)
    whole = np.linalg.norm(getattr(gK, P) - getattr(g, P)) / np.linalg.norm(getattr(g, P))
    assert abs(view["truncation"]["wholeRelError"] - whole) <= 1e-9 * whole
    ratio = [np.mean([fl.dE_ds[t, t - l] / fl.dE_ds[t, t] for t in range(l, 30)]) for l in range(30)]
    assert rel(view["lagMean"], ratio) <= 1e-11
    for lag, logs in view["spectra"].items():  # log10 of the singular values against bptt's ln
        want = fl.jacobian_spectrum(25, 25 - int(lag)) / np.log(10)
        resolved = want >= want[0] - 8  # float64 resolves sigma_i down to about 1e-16 sigma_1
        assert resolved.sum() >= 1 and len(logs) == len(want)
        assert np.max(np.abs(np.array(logs) - want)[resolved]) <= 1e-7, (cell, lag)
    assert set(view["spectra"]) == {"1", "8"}  # the lags shown (1, 8, 32) up to t = 25
    if described.pascanu:
        th = bptt.theory.theory(m)
        assert view["verdict"] == th.verdict and abs(view["lambda1"] - th.lambda1) <= 1e-9 * th.lambda1
        assert abs(view["rho"] - th.rho) <= 1e-6 * th.rho  # W rescaled by the page's estimate of rho
    elif described.time_invariant:  # a linear recurrence: the verdict of rho(A) = max |lambda|
        assert view["verdict"] == bptt.theory.theory(m).verdict == "vanishing"
    else:
        assert view["verdict"] == bptt.theory.theory(m).verdict == bptt.theory.GATED_VERDICT
    try:  # the cell's bound on every step's Jacobian (the coRNN's), as its bounds() gives it, where it has one
        growth = m.cell.bounds(m)[2] if hasattr(m.cell, "bounds") else None
    except ValueError:  # its assumptions fail
        growth = None
    assert (view["stepBound"] is None) == (growth is None), cell
    if growth is not None:
        assert abs(view["stepBound"] - growth) <= 1e-9 * growth, cell
    ring = "r_min" in described.options()  # a diagonal linear recurrence with its eigenvalues on a ring
    assert (view["envelope"] is not None) == ring
    if ring:  # min|lambda|, max|lambda|: the one-step Jacobian's singular values, by the library
        one = np.exp(fl.jacobian_spectrum(10, 9))
        lo, hi = view["envelope"]
        assert abs(lo - one.min()) <= 1e-12 and abs(hi - one.max()) <= 1e-12 and 0.3 - 1e-12 <= lo <= hi <= 0.97
        for t in range(30):  # the page's dashed lines hold exactly: the error at lag l is lambda^l times it
            lags = np.arange(t + 1)
            r = fl.dE_ds[t, t - lags] / fl.dE_ds[t, t]
            assert np.all(r >= lo ** lags * (1 - 1e-9)) and np.all(r <= hi ** lags * (1 + 1e-9)), t


def test_the_cell_list_is_the_registry_s_and_the_ring_keeps_its_order(browser):
    driver, _ = browser
    options = driver.execute_script("return Array.from(document.getElementById('cell').options)"
                                    ".map(o => [o.value, o.textContent]);")
    assert options == [[n, bptt.cells.get(n).label] for n in BUILT_IN]
    _set(driver, "cell", "lru")
    _set(driver, "r_max", 0.6)
    _set(driver, "r_min", 0.8)  # above r_max: r_max follows
    assert driver.execute_script("return [bpttExplorer.view.settings.rmin, bpttExplorer.view.settings.rmax, "
                                 "+document.getElementById('r_max').value];") == [0.8, 0.8, 0.8]
    _set(driver, "r_max", 0.3)  # below r_min: r_min follows
    ring = "return [bpttExplorer.view.settings.rmin, bpttExplorer.view.settings.rmax];"
    assert driver.execute_script(ring) == [0.3, 0.3]
    lo, hi = driver.execute_script("return bpttExplorer.view.envelope;")
    assert abs(lo - 0.3) <= 1e-9 and abs(hi - 0.3) <= 1e-9  # every |lambda| on the ring of radius 0.3


def _applies(cell):
    """The controls that apply to a cell, from the registry: rho and the initialisation of W to a
    cell with a recurrent W, the activation to a cell with that setting, the ring r_min, r_max to a
    cell whose random model takes them; the others to every cell."""
    described = bptt.cells.get(cell)
    w = any(p.role == "recurrent" for p in described.params.values())
    ring = "r_min" in described.options()
    return {"rho": w, "init": w, "activation": "activation" in described.settings, "r_min": ring, "r_max": ring,
            **{k: k in described.settings for k in ("dt", "gamma", "eps")}}


def test_for_every_cell_each_control_that_applies_changes_what_is_drawn_and_the_others_are_off(browser):
    driver, _ = browser
    start = {"H": 8, "T": 40, "rho": 0.9, "activation": "tanh", "init": "uniform", "r_min": 0.5, "r_max": 0.95,
             "dt": 0.042, "gamma": 2.7, "eps": 4.7, "inputScale": 1, "seed": 0, "t": 30, "K": 5}
    moves = {"H": 12, "T": 50, "rho": 1.5, "activation": "relu", "init": "orthogonal", "r_min": 0.8, "r_max": 0.99,
             "dt": 0.2, "gamma": 10, "eps": 1, "inputScale": 2.5, "seed": 7, "t": 12, "K": 2}
    for cell in BUILT_IN:
        _set(driver, "cell", cell)
        for k, v in start.items():
            _set(driver, k, v)
        applies = _applies(cell)
        off = driver.execute_script("return arguments[0].filter(id => document.getElementById(id).disabled);",
                                    list(moves))
        assert set(off) == {k for k in moves if not applies.get(k, True)}, cell
        before = _drawn(driver)
        for control, value in moves.items():
            if applies.get(control, True):
                _set(driver, control, value)
                now = _drawn(driver)
                assert now != before, f"{cell}: moving {control} to {value} changed nothing on the page"
                before = now
    errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR", "WARNING")]
    assert errors == [], errors


def test_every_control_changes_what_is_drawn_without_console_errors(browser):
    driver, _ = browser
    for k, v in (("cell", "rnn"), ("H", 8), ("T", 40), ("rho", 0.9), ("activation", "tanh"), ("init", "uniform"),
                 ("inputScale", 1), ("seed", 0), ("t", 30), ("K", 5)):
        _set(driver, k, v)
    moves = [("cell", "gru"), ("cell", "lru"), ("cell", "rnn"), ("H", 12), ("T", 50), ("rho", 1.5),
             ("activation", "relu"),
             ("init", "orthogonal"), ("inputScale", 2.5), ("seed", 7), ("t", 12), ("K", 2)]
    before = _drawn(driver)
    updates = driver.execute_script("return bpttExplorer.updates;")
    for control, value in moves:
        _set(driver, control, value)
        now = _drawn(driver)
        assert now != before, f"moving {control} to {value} changed nothing on the page"
        before = now
    assert driver.execute_script("return bpttExplorer.updates;") == updates + len(moves)
    errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR", "WARNING")]
    assert errors == [], errors


# --- the drawings, measured from the canvas calls the page makes ---------------------------------
# Every fillText, fillRect and strokeRect on the page's canvases is recorded with its box on the
# canvas (the text's measured extent under the current transform), so that a test reads where
# things landed rather than what the page says it drew.
HOOK = """
(function () {
  var P = CanvasRenderingContext2D.prototype;
  if (P.__recorded) return;
  P.__recorded = true;
  function corners(m, xs, ys) {
    var X = [], Y = [];
    xs.forEach(function (x) { ys.forEach(function (y) { X.push(m.a * x + m.c * y + m.e); Y.push(m.b * x + m.d * y + m.f); }); });
    return [Math.min.apply(null, X), Math.min.apply(null, Y), Math.max.apply(null, X), Math.max.apply(null, Y)];
  }
  ["fillText", "fillRect", "strokeRect"].forEach(function (fn) {
    var orig = P[fn];
    P[fn] = function (a, b, c, d) {
      if (this.canvas.id && window.__draws) {
        var m = this.getTransform(), rec = {fn: fn, style: fn === "strokeRect" ? this.strokeStyle : this.fillStyle};
        if (fn === "fillText") {
          var t = this.measureText(a);
          rec.text = String(a);
          rec.box = corners(m, [b - t.actualBoundingBoxLeft, b + t.actualBoundingBoxRight],
                            [c - t.actualBoundingBoxAscent, c + t.actualBoundingBoxDescent]);
          rec.rotated = Math.abs(m.b) > 1e-9;
        } else rec.box = corners(m, [a, a + c], [b, b + d]);
        (window.__draws[this.canvas.id] = window.__draws[this.canvas.id] || []).push(rec);
      }
      return orig.apply(this, arguments);
    };
  });
})();
"""
LEGEND_FILL = "rgba(255, 255, 255, 0.85)"  # the legend's box, as the canvas spells the page's colour
FRAME = "#444444"
NUMBER = re.compile(r"^[-\u2212]?\d+(\.\d+)?(e[-+]?\d+)?$")


def _record(driver, settings):
    """Set the controls, redraw once, and return {canvas id: [drawing call, ...]}."""
    driver.execute_script(HOOK)
    for k, v in settings.items():
        _set(driver, k, v)
    return driver.execute_script("window.__draws = {}; bpttExplorer.update(); var d = window.__draws;"
                                 "window.__draws = null; return d;")


def _inside(a, b, tol=0.5):
    """Box a = [x0, y0, x1, y1] lies within box b."""
    return a[0] >= b[0] - tol and a[1] >= b[1] - tol and a[2] <= b[2] + tol and a[3] <= b[3] + tol


def _overlap(a, b):
    return min(a[2], b[2]) - max(a[0], b[0]) > 0.5 and min(a[3], b[3]) - max(a[1], b[1]) > 0.5


def _frame(calls):
    frames = [c["box"] for c in calls if c["fn"] == "strokeRect" and c["style"] == FRAME]
    assert len(frames) == 1, frames
    return frames[0]


DRAWING_CASES = [  # the cases: Elman identity at rho = 1.5, the lag chart's bound, an LRU's envelope
    {"cell": "rnn", "H": 16, "T": 40, "rho": 1.5, "activation": "identity", "init": "uniform", "seed": 0, "t": 39, "K": 10},
    {"cell": "rnn", "H": 16, "T": 60, "rho": 1.1, "activation": "tanh", "init": "orthogonal", "seed": 3, "t": 59, "K": 12},
    {"cell": "rnn", "H": 4, "T": 40, "rho": 0.9, "activation": "identity", "init": "uniform", "seed": 0, "t": 39, "K": 10},
    {"cell": "lru", "H": 8, "T": 30, "r_min": 0.3, "r_max": 0.97, "seed": 1, "t": 20, "K": 4},
    {"cell": "lstm", "H": 8, "T": 30, "seed": 2, "t": 29, "K": 30},
    {"cell": "cornn", "H": 8, "T": 50, "rho": 1.0, "init": "orthogonal", "dt": 0.06, "gamma": 66, "eps": 15, "seed": 1,
     "t": 49, "K": 10},  # the authors' adding-problem settings
]


@pytest.mark.parametrize("case", range(len(DRAWING_CASES)))
def test_legends_lie_inside_their_frames_and_cover_no_bar(browser, case):
    driver, _ = browser
    draws = _record(driver, DRAWING_CASES[case])
    assert set(draws) == {"heatmap", "lags", "spectra", "terms"}
    for canvas in ("lags", "terms", "spectra", "heatmap"):
        calls = draws[canvas]
        frame = _frame(calls)
        boxes = [c["box"] for c in calls if c["fn"] == "fillRect" and c["style"] == LEGEND_FILL]
        assert boxes, f"{canvas}: no legend box"
        for legend in boxes:
            assert _inside(legend, frame), (canvas, legend, frame)
            # every text that starts in the legend's box ends in it
            for c in calls:
                if c["fn"] == "fillText" and legend[0] <= c["box"][0] <= legend[2] and legend[1] <= c["box"][1] <= legend[3]:
                    assert _inside(c["box"], legend), (canvas, c["text"], c["box"], legend)
    # the bars: the filled rectangles drawn after the frame and before the legend's box
    calls = draws["terms"]
    order = [c["fn"] == "strokeRect" and c["style"] == FRAME for c in calls].index(True)
    legend_at = [c["style"] == LEGEND_FILL for c in calls].index(True)
    bars = [c["box"] for c in calls[order:legend_at] if c["fn"] == "fillRect"]
    assert len(bars) == DRAWING_CASES[case]["t"] + 1
    frame, legend = _frame(calls), calls[legend_at]["box"]
    for bar in bars:
        assert _inside(bar, frame), ("a bar outside the frame", bar, frame)
        assert not _overlap(bar, legend), ("the legend covers a bar", bar, legend)


@pytest.mark.parametrize("case", range(len(DRAWING_CASES)))
def test_every_axis_has_four_ticks_and_no_number_reads_minus_zero(browser, case):
    driver, _ = browser
    draws = _record(driver, DRAWING_CASES[case])
    for canvas, calls in draws.items():
        frame = _frame(calls)
        numbers = [c for c in calls if c["fn"] == "fillText" and NUMBER.match(c["text"]) and not c["rotated"]]
        below = [c for c in numbers if c["box"][1] > frame[3] and frame[0] - 1 <= (c["box"][0] + c["box"][2]) / 2 <= frame[2] + 1]
        left = [c for c in numbers if c["box"][2] < frame[0] and frame[1] - 1 <= (c["box"][1] + c["box"][3]) / 2 <= frame[3] + 1]
        assert len(below) >= 4, (canvas, "x axis", [c["text"] for c in below])
        assert len(left) >= 4, (canvas, "y axis", [c["text"] for c in left])
        for c in calls:
            for token in re.findall(r"[-\u2212]?\d+(?:\.\d+)?(?:e[-+]?\d+)?", c.get("text", "")):
                assert not (token[0] in "-\u2212" and float(token.replace("\u2212", "-")) == 0), (canvas, c["text"])
    words = driver.execute_script("return ['verdict', 'truncation', 'words', 'timing']"
                                  ".map(i => document.getElementById(i).innerText).join(' ');")
    for token in re.findall(r"[-\u2212]\d+(?:\.\d+)?(?:e[-+]?\d+)?", words):
        assert float(token.replace("\u2212", "-")) != 0, (token, words)


ZERO_CASE = {"cell": "rnn", "H": 16, "T": 200, "rho": 0.1, "activation": "sigmoid", "init": "uniform", "seed": 0,
             "t": 199, "K": 10, "inputScale": 1}  # errors that underflow to exactly 0 within 200 steps


def test_exact_zeros_have_a_colour_of_their_own_and_a_key(browser):
    driver, _ = browser
    draws = _record(driver, ZERO_CASE)
    net = driver.execute_script("return bpttExplorer.current();")
    m = bptt.RNN(**{k: np.array(net[k]) for k in ("U", "W", "b", "V") if k in net}, **net["settings"])
    fl = bptt.flow(m, np.array(net["x"]), np.array(net["y"]))
    T = 200
    lower = np.tril(np.ones((T, T), bool))
    zero = (fl.dE_ds == 0) & lower
    assert zero.sum() > 10 and (lower & ~zero).sum() > 10  # both kinds of cell on display
    frame = _frame(draws["heatmap"])
    cw = (frame[2] - frame[0]) / T
    tt, kk = np.indices((T, T))
    clear = (tt < T - 3) & (kk > 1) & (np.abs(kk - (T - 1 - 10)) > 2)  # away from the frame, row t and K's tick
    cells = [tuple(map(int, c)) for c in np.argwhere(zero & clear)[::37]]
    cells += [tuple(map(int, c)) for c in np.argwhere(lower & ~zero & clear)[::97]]
    colours = driver.execute_script(
        "var g = document.getElementById('heatmap').getContext('2d');"
        "return arguments[0].map(p => Array.from(g.getImageData(p[0], p[1], 1, 1).data.slice(0, 3)));",
        [[frame[0] + (k + 0.5) * cw, frame[1] + (t + 0.5) * cw] for t, k in cells])
    zero_rgb = {tuple(c) for c, (t, k) in zip(colours, cells) if zero[t, k]}
    assert len(zero_rgb) == 1, zero_rgb  # one colour for every exact zero
    (z,) = zero_rgb
    assert all(tuple(c) != z for c, (t, k) in zip(colours, cells) if not zero[t, k])
    # not a colour of the colour bar (its one-pixel rows), not the background, and a key that says so
    bar = [tuple(int(c["style"][i:i + 2], 16) for i in (1, 3, 5)) for c in draws["heatmap"]
           if c["fn"] == "fillRect" and c["box"][3] - c["box"][1] == 1 and c["style"].startswith("#")]
    assert len(bar) > 100 and min(np.abs(np.subtract(bar, z)).sum(axis=1)) > 60 and sum(z) < 3 * 240
    swatch = "#%02x%02x%02x" % z
    keys = [c["box"] for c in draws["heatmap"] if c["fn"] == "fillRect" and c["style"] == swatch]
    assert keys, f"no key swatch of the zero colour {swatch}"
    texts = [c for c in draws["heatmap"] if c["fn"] == "fillText" and "exactly 0" in c["text"]]
    assert any(t["box"][0] > k[2] and min(t["box"][3], k[3]) > max(t["box"][1], k[1]) for t in texts for k in keys)
    # the terms chart: the Elman cell's term k = 0 of dE_t/dW is exactly 0 (h_{-1} = 0): a mark in that colour
    terms = np.linalg.norm(fl.terms("W", 199).reshape(T, -1), axis=1)
    assert terms[0] == 0 and (terms[1:] > 0).any()
    calls = draws["terms"]
    frame = _frame(calls)
    w = (frame[2] - frame[0]) / T
    marks = [c["box"] for c in calls if c["fn"] == "fillRect" and c["style"] == swatch]
    for k in np.flatnonzero(terms == 0):
        slot = [frame[0] + k * w, frame[1], frame[0] + (k + 1) * w, frame[3]]
        assert any(_overlap(b, slot) or _inside(b, slot) for b in marks if b[3] <= frame[3] + 0.5), k
    assert any("exactly 0" in c.get("text", "") for c in calls)


def test_no_network_request_and_a_screenshot(browser, tmp_path):
    driver, path = browser
    _set(driver, "T", 60)
    _settle(driver)
    requests = []  # every request and web socket, except the browser's own pages (chrome://)
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg["method"] == "Network.requestWillBeSent":
            requests.append(msg["params"]["request"]["url"])
        elif msg["method"] == "Network.webSocketCreated":
            requests.append(msg["params"]["url"])
    requests = [u for u in requests if not u.startswith("chrome://")]
    page_url = path.resolve().as_uri()
    assert page_url in requests  # the log is read: the page's own file is there
    assert [u for u in requests if u != page_url and not u.startswith(("data:", "blob:"))] == []
    shot = tmp_path / "explorer.png"
    assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 20_000


def test_the_docs_page_shows_the_screenshot_and_its_command():
    text = (ROOT / "docs" / "explorer.md").read_text()
    assert "](explorer.png)" in text and "python -m bptt.explore.browser docs/explorer.png" in text
    assert "bptt explore --out explorer.html" in text and "What to try first" in text
    png = (ROOT / "docs" / "explorer.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000
    assert "docs/explorer.md" in (ROOT / "README.md").read_text()


def test_the_report_names_the_explorer_command():
    from bptt.report import html
    assert "<code>bptt explore --out explorer.html</code>" in Path(html.__file__).read_text()


def test_the_screenshot_command_writes_a_picture_of_the_page(tmp_path):
    need("selenium.webdriver")
    _need_chromium()
    from bptt.explore.browser import DOCS_SETTINGS, screenshot
    png = screenshot(tmp_path / "explorer.png", settings=DOCS_SETTINGS)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000


def test_a_described_cell_the_engine_has_no_step_for_is_left_out_of_the_list(tmp_path):
    need("selenium.webdriver")
    _need_chromium()
    from bptt.explore.browser import start
    described = json.loads(cells_json())
    extra = described + [{"name": "unknown", "label": "Unknown", "params": [["U", ["H", "D"], False, "input"]],
                          "settings": {}, "state": ["h"], "widths": [1], "options": [], "pascanu": False}]
    html = page()
    assert cells_json() in html
    path = tmp_path / "explorer.html"
    path.write_text(html.replace(cells_json(), json.dumps(extra), 1))
    driver, profile = start()
    try:
        driver.get(path.resolve().as_uri())
        assert driver.execute_script("return bpttExplorer.cells;") == BUILT_IN
        assert [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR", "WARNING")] == []
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
