"""The HTML report: the notebook's story told with real numbers, in one self-contained file.

    from bptt.report import write_report
    write_report("report.html")             # the full sweep (about a minute)
    write_report("quick.html", quick=True)  # a small one (seconds)

Needs matplotlib (the `plot` extra). `bptt report --out FILE` is the same from a shell.
"""
from __future__ import annotations

from pathlib import Path

from .content import Content, Settings, gather


def build(settings: Settings | None = None, *, progress=True) -> str:
    """The report as an HTML string."""
    from .html import render

    return render(gather(settings or Settings(), progress=progress))


def write_report(path, *, quick=False, seed=0, settings: Settings | None = None, progress=True) -> Path:
    """Write the report to path (an .html file); returns the path."""
    path = Path(path)
    if path.exists() and path.is_dir():
        raise ValueError(f"the report goes into a file, but {path} is a directory")
    st = settings or (Settings.quick(seed) if quick else Settings(seed=seed))
    text = build(st, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


__all__ = ["Content", "Settings", "build", "gather", "write_report"]
