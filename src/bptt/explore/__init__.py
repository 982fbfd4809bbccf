"""The interactive explorer: one self-contained HTML page that computes BPTT in the browser.

write_explorer(path) inlines the page's engine (engine.js: the forward pass, the backward pass and
the per-step decomposition in float64, with the library's names U, W, V, s, z, q, o and its
conventions, a step forward and back for each cell it implements), its views (explorer.js) and its
style (explorer.css) into template.html, with its hot loop compiled to WebAssembly (kernels.wat ->
kernels.wasm, inlined as base64), and the registry's description of every cell (cells_json: its
parameters with their shapes and roles, its state, settings and options), from which the page
builds its cell list and decides which controls apply. The page loads nothing: no server, no
network request; it opens from disk.
Its engine is exposed as window.bpttExplorer.flow({cell, <parameters by name>, x, y, h0}) ->
{loss, dE_ds, grads by name, h0}, which the test suite compares with bptt.flow and bptt.gradients
in a headless browser.
"""
from __future__ import annotations

import base64
import json
from importlib import resources
from pathlib import Path

from ..validate import show

MAX_BYTES = 2_000_000
ASSETS = ("template.html", "engine.js", "explorer.js", "explorer.css", "kernels.wat")


def asset(name: str) -> str:
    """The text of one of the page's files (ASSETS), shipped inside the package."""
    if name not in ASSETS:
        raise ValueError(f"unknown explorer asset {show(name)}: expected one of {', '.join(ASSETS)}")
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def cells_json() -> str:
    """The registered cells as the page reads them, a JSON list in the registry's order: for each,
    name, label, params ([name, shape, optional, role] in declared order), settings, state (its
    entries' names), widths (the entries' widths for H = 1: the LRU's h is 2H wide), options (what
    its random model takes: r_min and r_max for a ring of eigenvalues) and pascanu. The page shows
    those of them its engine has a step for."""
    from .. import cells

    out = []
    for name in cells.names():
        c = cells.get(name)
        out.append({"name": name, "label": c.label or name,
                    "params": [[k, list(p.shape), bool(p.optional), p.role] for k, p in c.params.items()],
                    "settings": dict(c.settings), "state": list(c.state), "widths": list(c().state_sizes(1)),
                    "options": list(c.options()), "pascanu": bool(c.pascanu)})
    return json.dumps(out, default=repr).replace("</", "<\\/")


def page() -> str:
    """The whole page as one HTML string: the template with its style, scripts and the registry's
    cells inlined."""
    html = asset("template.html")
    for marker, name in (("/*CSS*/", "explorer.css"), ("/*ENGINE*/", "engine.js"), ("/*EXPLORER*/", "explorer.js")):
        text = asset(name)
        if "</script" in text.lower() or "</style" in text.lower():
            raise ValueError(f"{name} must not contain a closing </script> or </style> tag")
        html = html.replace(marker, text, 1)
    kernels = resources.files(__package__).joinpath("kernels.wasm").read_bytes()
    html = html.replace("/*WASM*/", base64.b64encode(kernels).decode("ascii"), 1)
    return html.replace("/*CELLS*/", cells_json(), 1)


def output_path(path) -> Path:
    """path as a Path for a new or existing file in an existing directory; a ValueError otherwise."""
    if not isinstance(path, (str, Path)) or str(path) == "":
        raise TypeError(f"the explorer's path must be a file name (str or Path), got {show(path)}")
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"the explorer's path must be a file, but {p} is a directory")
    if not p.parent.is_dir():
        raise ValueError(f"cannot write the explorer to {p}: the directory {p.parent} does not exist")
    return p


def write_explorer(path) -> Path:
    """Write the explorer page to path (an .html file, at most 2 MB) and return its Path."""
    p = output_path(path)
    html = page()
    size = len(html.encode("utf-8"))
    if size > MAX_BYTES:  # the page's own assets: a limit on what ships, checked where it is written
        raise ValueError(f"the explorer page would be {size} bytes, more than its limit of {MAX_BYTES}")
    p.write_text(html, encoding="utf-8")
    return p
