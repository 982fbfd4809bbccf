"""`bptt explore`: write the interactive explorer, one HTML file that computes BPTT in the browser."""
from __future__ import annotations

HELP = "write the interactive explorer page (one self-contained HTML file, works offline)"


def add_arguments(p):
    p.add_argument("--out", default="explorer.html", help="the HTML file to write (default explorer.html)")


def run(args) -> int:
    from ..explore import write_explorer

    path = write_explorer(args.out)
    size = path.stat().st_size
    print(f"wrote {path} ({size / 1024:.0f} KiB): open it in a browser; it needs no server and no network")
    return 0
