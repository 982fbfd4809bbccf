"""Part 8: the explorer page's update after a control moves, in headless Chromium.

The page (bptt explore) recomputes everything in JavaScript when a control moves. For each cell the
page has (the registry's) at H = 64, T = 200 (the largest the controls allow) the spectral radius
(where it applies) and the seed are moved back and forth, so every update draws the network anew and makes its whole decomposition (the worst
case), and the output t is moved, which redraws from the decomposition already made. The time is the page's own
(performance.now() around its update: computing and drawing), the median of `rounds` moves after
one warm-up move. Target: at most 100 ms per update after a change of the network.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

H, T = 64, 200
TARGET_S = 0.1
MOVE = """
var set = function (id, v) { var e = document.getElementById(id); if (e.type === 'range') e.max = Math.max(+e.max, +v); e.value = v; };
for (var k in arguments[0]) set(k, arguments[0][k]);
return bpttExplorer.update();
"""


def measure(driver, cell, rounds):
    """(network change, output change) medians in seconds for one cell."""
    driver.execute_script(MOVE, {"cell": cell, "H": H, "T": T, "t": T - 1, "K": 20, "rho": 0.9})
    network = [driver.execute_script(MOVE, {"rho": 0.9 + 0.05 * (i % 2 + 1), "seed": i % 2 + 1}) for i in range(rounds)]
    output = [driver.execute_script(MOVE, {"t": T - 1 - (i % 2 + 1) * 10}) for i in range(rounds)]
    return float(np.median(network)) / 1e3, float(np.median(output)) / 1e3


def run(report, *, rounds):
    from bptt import cells
    from bptt.explore import write_explorer
    from bptt.explore.browser import binaries, start

    print(f"\n== 8. the explorer page: one update after a control moves, H = {H}, T = {T}, headless Chromium ==")
    if not all(binaries()):
        print("   chromium and chromedriver are not on the PATH (scripts/ensure-chromium): part skipped")
        report.target("explore", "explorer update (chromium missing)", float("inf"), TARGET_S)
        return
    tmp = tempfile.mkdtemp(prefix="bptt-explore-bench-")
    driver, profile = start()
    try:
        driver.get(write_explorer(Path(tmp) / "explorer.html").resolve().as_uri())
        for cell in cells.names():
            network, output = measure(driver, cell, max(rounds, 5))
            load = os.getloadavg()[0]  # other work on the machine slows the page down
            print(f"   {cell}: a change of the network {network * 1e3:.1f} ms, a change of the output t "
                  f"{output * 1e3:.1f} ms (load average {load:.2f})", flush=True)
            report.record(part="explore", cell=cell, H=H, T=T, network_s=network, output_s=output, load=load)
            report.target("explore", f"explorer update after a network control, {cell}, H = {H}, T = {T} (s)",
                          network, TARGET_S)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
