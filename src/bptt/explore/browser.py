"""Headless Chromium for the explorer page: open it, and keep a screenshot of it.

    python -m bptt.explore.browser docs/explorer.png     # the screenshot in docs/explorer.md

needs selenium (the `browser` extra) and chromium + chromedriver on the PATH.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def binaries():
    """(chromium, chromedriver) paths, None where one is not on the PATH."""
    return shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")


def start(size=(1400, 1500)):
    """(driver, profile directory): a headless Chromium with its console and network logs kept.
    Quit the driver and remove the profile directory when done."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = binaries()
    if not (browser and driver_path):
        raise ValueError("chromium and chromedriver must be on the PATH (scripts/ensure-chromium installs them)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    profile = tempfile.mkdtemp(prefix="bptt-explorer-")
    for flag in FLAGS + [f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}"]:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=driver_path), options=opts), profile


def screenshot(png, *, settings=None) -> Path:
    """Write the explorer page to a temporary file, open it, set the controls given in settings
    (id -> value), and save a screenshot of the window to png."""
    from . import write_explorer

    png = Path(png)
    with tempfile.TemporaryDirectory() as tmp:
        page = write_explorer(Path(tmp) / "explorer.html")
        driver, profile = start()
        try:
            driver.get(page.resolve().as_uri())
            for name, value in (settings or {}).items():
                driver.execute_script("var e = document.getElementById(arguments[0]);"
                                      "if (e.type === 'range') e.max = Math.max(+e.max, +arguments[1]);"
                                      "e.value = arguments[1];", name, str(value))
            driver.execute_script("bpttExplorer.update();")
            height = driver.execute_script("return document.documentElement.scrollHeight;")
            driver.set_window_size(driver.get_window_size()["width"], int(height) + 140)  # the window's frame
            if not driver.save_screenshot(str(png)):
                raise ValueError(f"Chromium could not write the screenshot {png}")
        finally:
            driver.quit()
            shutil.rmtree(profile, ignore_errors=True)
    return png


# the docs' screenshot: an Elman network on the edge, where the lesson is easiest to see
DOCS_SETTINGS = {"cell": "rnn", "H": 16, "T": 60, "rho": 1.1, "activation": "tanh", "init": "orthogonal",
                 "seed": 3, "t": 59, "K": 12}

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m bptt.explore.browser OUT.png")
    print(screenshot(sys.argv[1], settings=DOCS_SETTINGS))
