"""python -m benchmarks.tables [--write docs/performance.md]: the results of the last benchmark run
(benchmarks/results/results.json) as Markdown tables. With --write, the tables replace the part of
the page between its markers, so the page quotes no number that the results file does not hold
(tests/test_docs.py checks that it does not).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "results.json"
BEGIN, END = "<!-- results: begin (python -m benchmarks.tables --write) -->", "<!-- results: end -->"


def _time(s):
    return f"{s * 1e6:.0f} µs" if s < 1e-3 else f"{s * 1e3:.2f} ms" if s < 1 else f"{s:.2f} s"


def gradient_table(records, part="gradients") -> list[str]:
    rows = [r for r in records if r["part"] == part]
    if not rows:
        return []
    cell = "cell | " if part != "gradients" else ""
    lines = [f"| {cell}(N, T, H, O) | dtype | bptt | PyTorch | JAX | bptt / faster of the two |",
             "|" + " --- |" * (6 + bool(cell))]
    for r in rows:
        name = f"{r['cell']} | " if cell else ""
        lines.append(f"| {name}{tuple(r['config'])} | {r['dtype']} | {_time(r['bptt_s'])} | {_time(r['torch_s'])} | "
                     f"{_time(r['jax_s'])} | **{r['ratio']:.2f}** |")
    return lines


def modern_table(records) -> list[str]:
    """The modern part: bptt (and its scan="parallel") against JAX's two scans and a PyTorch loop."""
    rows = [r for r in records if r["part"] == "modern"]
    if not rows:
        return []
    lines = ["| cell | (N, T, H, D) | dtype | bptt | bptt scan=\"parallel\" | JAX lax.scan | JAX associative_scan "
             "| PyTorch loop | bptt / fastest peer |", "|" + " --- |" * 9]
    for r in rows:
        lines.append(f"| {r['cell']} | {tuple(r['config'])} | {r['dtype']} | {_time(r['bptt_s'])} | "
                     f"{_time(r['bptt_parallel_s'])} | {_time(r['jax_scan_s'])} | {_time(r['jax_assoc_s'])} | "
                     f"{_time(r['torch_s'])} | **{r['ratio']:.2f}** |")
    return lines


def scan_summary(records) -> list[str]:
    """bptt's scan="parallel" against its sequential loop, row by row of the modern part."""
    rows = [r for r in records if r["part"] == "modern"]
    if not rows:
        return []
    ratios = sorted(r["bptt_parallel_s"] / r["bptt_s"] for r in rows)
    slower = sum(x > 1 for x in ratios)
    return [f"bptt's scan=\"parallel\" against its sequential loop, the same gradient: {ratios[0]:.2f} to "
            f"{ratios[-1]:.2f} times the loop's time (median {ratios[len(ratios) // 2]:.2f}); slower on "
            f"{slower} of {len(ratios)} rows."]


def target_table(targets) -> list[str]:
    lines = ["| part | what | measured | target | holds |", "| --- | --- | --- | --- | --- |"]
    for t in targets:
        lines.append(f"| {t['part']} | {t['what']} | {t['value']:.3g} | {t['kind']} {t['limit']:g} | "
                     f"{'yes' if t['holds'] else '**no**'} |")
    return lines


def tables(results) -> str:
    records, targets = results["records"], results["targets"]
    out = ["One full gradient of an Elman RNN (forward + backward, softmax cross-entropy summed over time",
           "and batch, D = O):", ""] + gradient_table(records)
    gated = gradient_table(records, "gated")
    if gated:
        out += ["", "The same for LSTM and GRU (PyTorch's nn.LSTM / nn.GRU + nn.Linear, JAX's lax.scan):", ""] + gated
    modern = modern_table(records)
    if modern:
        out += ["", "LRU, minGRU and minLSTM (benchmarks/modern.py; the peers' models written in JAX and PyTorch as "
                "their users write them):", ""] + modern + [""] + scan_summary(records)
    busy = gradient_table(records, "contention")
    if busy:
        k = next(r["busy"] for r in records if r["part"] == "contention")
        out += ["", f"Every row of both tables with {k} busy processes beside it, one per core (benchmarks/contention.py):",
                ""] + busy
    held = sum(t["holds"] for t in targets)
    out += ["", f"Every target of the run ({held} of {len(targets)} hold):", ""] + target_table(targets)
    return "\n".join(out)


def spliced(page: str, block: str) -> str:
    """The page with the text between its markers replaced by block."""
    if BEGIN not in page or END not in page:
        raise ValueError(f"the page has no markers {BEGIN} ... {END}")
    head, rest = page.split(BEGIN, 1)
    return head + BEGIN + "\n" + block + "\n" + END + rest.split(END, 1)[1]


def merged(old: dict | None, new: dict, parts) -> dict:
    """The results file after a run of some parts: the new run's records and targets, and those of
    the other parts from the old file (a record or target belongs to part p when its part is p or
    starts with "p-"), so that running one part does not erase the others'."""
    if old is None:
        return new

    def ran(part):
        return any(part == p or part.startswith(p + "-") for p in parts)

    return {"records": [r for r in old.get("records", []) if not ran(r.get("part", ""))] + new["records"],
            "targets": [t for t in old.get("targets", []) if not ran(t.get("part", ""))] + new["targets"]}

def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.tables", description=__doc__.splitlines()[0])
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--write", type=Path, help="the Markdown page whose marked part is replaced")
    args = p.parse_args(argv)
    block = tables(json.loads(args.results.read_text()))
    if args.write is None:
        print(block)
    else:
        args.write.write_text(spliced(args.write.read_text(), block))
    return 0


if __name__ == "__main__":
    sys.exit(main())
