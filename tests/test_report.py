"""The HTML report: self-contained, and rendered without errors by a real browser (headless Chromium)."""
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from conftest import need

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def report_file(tmp_path_factory):
    need("matplotlib")
    from bptt.report import write_report
    return write_report(tmp_path_factory.mktemp("report") / "report.html", quick=True, progress=False)


def test_report_is_self_contained_and_tells_the_story(report_file):
    html = report_file.read_text()
    # nothing to fetch: no remote URL in any src, href or CSS url()
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:|#)""", html)
    assert "url(" not in html and "<script" not in html
    imgs = re.findall(r'<img src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"', html)  # SVG: sharp at any zoom
    assert len(imgs) == html.count("<img") >= 11
    for heading in ("The model", "The derivation, term by term", "Verification", "How far back",
                    "Theory's verdicts", "The cliff", "10. The cures that keep the gradient alive",
                    "11. What to conclude"):
        assert heading in html
    cures = html[html.index("<h2>10. The cures"):html.index("<h2>11.")]  # flossing, orthogonal W: tables, spectra
    assert cures.count("<img") == 4 and "before flossing" in cures and "orthogonal" in cures
    assert "FAIL" not in html and html.count('class="ok">pass') >= 3  # U, W, V checked by finite differences
    assert "bound holds" in html and '<span class="bad">NO</span>' not in html


def _chromium():
    """Paths of chromium and chromedriver, installing them with scripts/ensure-chromium when missing."""
    found = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
    if not all(found) and os.environ.get("CI", "").lower() == "true":
        subprocess.run([str(ROOT / "scripts" / "ensure-chromium")], check=False, timeout=900)
        found = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
    if not all(found):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("chromium and chromedriver are required when CI=true (scripts/ensure-chromium installs them)")
        pytest.skip("chromium/chromedriver not installed (run scripts/ensure-chromium)")
    return found


def test_report_renders_in_headless_chromium(report_file):
    webdriver = need("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = _chromium()
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    profile = tempfile.mkdtemp(prefix="bptt-chromium-")
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={profile}", "--window-size=1200,900"]:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    try:
        driver.set_page_load_timeout(60)
        driver.get(report_file.resolve().as_uri())
        assert "Vanishing and exploding gradients" in driver.title
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight, i.alt]);")
        assert len(images) >= 11
        cures = driver.execute_script(  # the cures' figures: error tables and spectra, each decoded
            "return Array.from(document.images).filter(i => /flossing|orthogonal/.test(i.alt)).length;")
        assert cures == 4
        for complete, width, height, alt in images:
            assert complete and width > 300 and height > 200, f"image {alt!r} did not decode"
        errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        assert errors == [], errors
        height = driver.execute_script("return document.documentElement.scrollHeight;")
        assert height > 3000  # the whole story is laid out, not an empty page
        driver.set_window_size(1200, min(int(height) + 100, 16000))
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "report.png"
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_report_puts_elman_lstm_and_gru_side_by_side_with_their_numbers(report_file):
    import numpy as np

    import bptt
    from bptt.report.content import CELL_LAG, Settings, cell_data, cell_models

    from bptt import cells

    html = report_file.read_text()
    import re

    labels = [cells.get(n).label + (" (tanh)" if "activation" in cells.get(n).settings else "") for n in cells.names()
              if cells.get(n).__module__.startswith("bptt.cells.")]
    title = re.search(r"<h2>8\. (.*?) side by side</h2>", html).group(1)  # every registered cell, in order: the
    shown = [w for w in re.split(r", | and ", title)]                    # built-in ones, then any a test registered
    assert shown[:len(labels)] == labels, title
    start = html.index(title)
    section = html[start:html.index("<h2>", start)]
    assert section.count("<img") == 2
    st = Settings.quick()
    x, y = cell_data(st)
    models = cell_models(st)
    assert len({(m.H, m.D, m.O) for m in models.values()}) == 1  # the same size
    lag = min(CELL_LAG, st.T - 1)
    for name, m in models.items():  # the decay rates and lag ratios, recomputed here (the built-in cells)
        if not m.cell.__module__.startswith("bptt.cells."):
            continue
        fls = [bptt.flow(m, x[i], y[i]) for i in range(st.N)]
        decay = np.mean([f.decay_rate() for f in fls])
        ratio = np.mean([f.by_lag().ratio_mean[lag] for f in fls])
        assert f"{decay:.4g} &plusmn;" in section and f"{decay:.3g} of its size" in section, name
        assert f"{ratio:.3g}</td>" in section and f"{ratio:.2g} of its lag-0 size" in section, name
    lstm = models["LSTM"]
    sats = [bptt.flow(lstm, x[i], y[i]).saturation() for i in range(st.N)]
    assert f"forget gates average {np.mean([s.mean('f') for s in sats]):.3g}" in section
    assert "does not apply" in section and "applies (" in section
    lru = models["LRU"]  # from its own initialisation, the ring: its transition's rho is max |lambda|
    rho = np.exp(-np.exp(lru.nu_log)).max()
    assert lru.gamma_log is not None and f"rho(A) = {rho:.3g} (vanishing)" in section
    assert f"{rho:.3g} in the LRU (theory: vanishing)" in section and "are linear recurrences" in section
