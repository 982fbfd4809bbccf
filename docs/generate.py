"""Write the numbers the docs quote from the results files that hold them.

    python docs/generate.py --write      # rewrite every generated region and figure (make docs)
    python docs/generate.py --check      # exit 1 when a page or a figure no longer matches its results files
    python docs/generate.py --from-sweep runs/flow-phase sweeps/results/flow-phase.json
                                         # a sweep's results, averaged over seeds, as a results file

A generated region of a page is

    <!-- generated: SOURCE NAME [ARG ...] -->
    ... written here by RENDERERS[NAME](the data in SOURCE, *ARG) ...
    <!-- end -->

SOURCE is a path from the repository's root (a .json or .jsonl results file written by the command
the page names); everything between the markers is replaced. tests/test_docs.py renders every page
again and fails when it differs.

FIGURES: figures drawn from a results file by a function of the script that wrote it, `figures(results)`
-> {path: matplotlib Figure}; written as PNG at 150 dpi without the metadata that would change from one
run to the next (matplotlib's version), so drawing them again from the same file gives the same bytes.
"""
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["README.md", "docs/engine.md", "docs/frameworks.md", "docs/analysis.md", "docs/training.md",
         "docs/sweeps.md", "docs/approx.md", "docs/memory.md", "docs/cures.md"]
FIGURES = [("experiments/results/curse_of_memory.json", "experiments/curse_of_memory.py"),
           ("experiments/results/success_vs_length.jsonl", "experiments/success_vs_length.py"),
           ("experiments/results/copy_1000.json", "experiments/copy_1000.py")]
REGION = re.compile(r"(<!-- generated: (\S+) ([^>]*?) -->\n)(.*?)(<!-- end -->)", re.S)
METHODS = {"vanilla": "vanilla", "clip": "clip", "clip+Omega": "clip+Ω", "IRNN": "IRNN", "LSTM": "LSTM", "GRU": "GRU",
           "LRU": "LRU", "minGRU": "minGRU", "exp": "expm(A), Henaff, modReLU", "coRNN": "coRNN",
           "floss": "clip + flossing (k = 5)"}
TASK_TITLES = {"adding": "adding (Le et al.)", "temporal": "temporal order"}


def read(path):
    text = path.read_text()
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return json.loads(text)


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# --- renderers: data -> markdown ----------------------------------------------------------------

def success_table(runs, task):
    """Successes / runs per method and length, from experiments/success_vs_length.py's records."""
    runs = [r for r in runs if r["task"] == task]
    lengths = sorted({r["T"] for r in runs})
    rows = []
    for method, label in METHODS.items():
        mine = [r for r in runs if r["method"] == method]
        if mine:
            rows.append([label] + [f"{sum(r['success'] for r in mine if r['T'] == T)}/"
                                   f"{sum(1 for r in mine if r['T'] == T)}" if any(r["T"] == T for r in mine)
                                   else "not run" for T in lengths])
    return table([TASK_TITLES[task]] + [f"T = {T}" for T in lengths], rows)


def success_losses(runs, task, T):
    """One sentence: each method's held-out losses at one length, seed by seed."""
    parts = []
    for method, label in METHODS.items():
        mine = sorted((r for r in runs if r["task"] == task and r["method"] == method and r["T"] == T),
                      key=lambda r: r["seed"])
        if mine:
            losses = ", ".join("diverged" if "test_loss" not in r else f"{r['test_loss']:.3g}" for r in mine)
            parts.append(f"{label} {losses}")
    return f"Held-out losses at T = {T}, seeds in order: " + "; ".join(parts) + "."


def parity(res):
    """The min-char-rnn parity run: final smoothed losses, their spread, time per update."""
    s = res["summary"]
    mcr = ", ".join(f"{v:.2f}" for v in s["final_smooth_min_char_rnn"])
    ours = ", ".join(f"{v:.2f}" for v in s["final_smooth_bptt"])
    held = ", ".join(f"{res['bptt'][str(seed)]['test_loss']:.2f}" for seed in res["seeds"])
    inside = "inside" if s["within_spread"] else "outside"
    return (f"Smoothed loss after {res['steps']} updates, seeds {', '.join(map(str, res['seeds']))}: "
            f"min-char-rnn {mcr} (spread {s['seed_spread_min_char_rnn']:.2f}); `bptt train` {ours}; "
            f"the means differ by {s['mean_difference']:+.2f}, {inside} the seed-to-seed spread. "
            f"`bptt train`'s held-out loss: {held} nats per character (memoryless baseline "
            f"{s['memoryless_baseline_nats_per_char']:.2f}, uniform guessing {s['chance_nats_per_char']:.2f}). "
            f"Wall time per update, the two alternating on the same machine: min-char-rnn "
            f"{s['ms_per_step_min_char_rnn']:.1f} ms, `bptt train` {s['ms_per_step_bptt']:.1f} ms (float32, "
            f"metrics written every step, the lag analysis and held-out evaluation at the end included).")


def copy_table(runs):
    rows = [[r["T"], r["seed"], f"{r['final_test_loss']:.4f}", f"{r['baseline']:.4f}",
             f"{r['final_test_loss'] / r['baseline']:.3f}", f"{100 * r['recall']:.1f}%"] for r in runs]
    return table(["T", "seed", "held-out loss", "baseline 10 ln 8 / (T + 20)", "ratio", "symbols recalled"], rows)


def adding_t100(runs):
    rows = [[METHODS.get(r["method"], r["method"]), r["seed"], f"{r['test_mse']:.4f}",
             f"{100 * r['test_correct']:.0f}%", "yes" if r["success"] else "no"]
            for r in sorted(runs, key=lambda r: (list(METHODS).index(r["method"]) if r["method"] in METHODS else 99,
                                                 r["seed"]))]
    return table(["method", "seed", "held-out MSE", "sequences within 0.04", "criterion met"], rows)


def flow_phase(summary, length):
    """The flow-phase sweep at one length: decay rate and long-lag share per radius and activation."""
    rows = [r for r in summary["points"] if r["length"] == length]
    acts = sorted({r["activation"] for r in rows}, key=["tanh", "relu"].index)
    radii = sorted({r["radius"] for r in rows})

    def cell(r, key, fmt):
        if r["finite"] == 0:
            return "overflow"
        mark = "*" if r["finite"] < r["points"] else ""
        return format(r[key], fmt) + mark

    out = []
    for radius in radii:
        row = [radius]
        for a in acts:
            r = next(r for r in rows if r["radius"] == radius and r["activation"] == a)
            row += [cell(r, "decay_rate", ".3f"), cell(r, "long_lag_fraction", ".2g")]
        out.append(row)
    header = ["ρ"] + [f"{a}: {what}" for a in acts for what in ("decay rate", f"share beyond lag {rows[0]['long_lag']}")]
    return table(header, out)


def summarise_sweep(folder):
    """A flow sweep's points averaged over seeds: {spec, points: [...]} (needs the sweep extra)."""
    from bptt import sweep
    df = sweep.results(folder)
    df = df[df.status == "ok"]
    if str(df.kind.iloc[0]) == "train":
        return summarise_training(df)
    keys = ["activation", "radius", "length", "long_lag"]
    points = []
    for values, g in df.groupby(keys):
        fin = g[g.finite.astype(bool)]
        points.append({**dict(zip(keys, [v.item() if hasattr(v, "item") else v for v in values])),
                       "points": int(len(g)), "finite": int(len(fin)),
                       "decay_rate": float(fin.decay_rate.mean()) if len(fin) else None,
                       "long_lag_fraction": float(fin.long_lag_fraction.mean()) if len(fin) else None})
    return {"spec": str(df.spec.iloc[0]), "seeds": int(df.seed.nunique()), "points": points}


def summarise_training(df):
    """A train sweep's points: successes per method and length."""
    points = [{"method": str(method), "length": int(length), "points": int(len(g)),
               "successes": int(g.success.astype(bool).sum()), "diverged": int(g.diverged.astype(bool).sum())}
              for (method, length), g in df.groupby(["method", "length"])]
    return {"spec": str(df.spec.iloc[0]), "seeds": int(df.seed.nunique()), "max_steps": int(df.steps.max()),
            "points": points}


def sweep_success(summary):
    """A train sweep's successes per method (rows) and length (columns)."""
    order = ["vanilla", "clip", "clip_omega", "irnn"]
    methods = sorted({r["method"] for r in summary["points"]}, key=lambda m: (order + [m]).index(m))
    lengths = sorted({r["length"] for r in summary["points"]})
    rows = []
    for m in methods:
        cells = {r["length"]: r for r in summary["points"] if r["method"] == m}
        rows.append([m] + [f"{cells[T]['successes']}/{cells[T]['points']}" + (" (diverged: "
                     f"{cells[T]['diverged']})" if cells[T]["diverged"] else "") for T in lengths])
    return table(["method"] + [f"T = {T}" for T in lengths], rows)


def _g(v, digits=3):
    """A number in a table: 3 significant digits, exponents for the very large and small."""
    return "–" if v is None else f"{v:.{digits}g}".replace("e+0", "e").replace("e+", "e").replace("e-0", "e-")


MEMORY_COLUMNS = {"h2": "E[h²]", "lambda": "λ (raw)", "nu": "ν: λ = exp(−exp ν)", "gamma": "λ, input × √(1−λ²)",
                  "nu+gamma": "ν and √(1−λ²)"}


def memory_closed(res, rho):
    """The closed forms at one rho, each with the Monte Carlo estimate's ratio to it and its
    relative standard error."""
    part = res["closed"]
    rho = float(rho)  # the marker's argument, e.g. 0.9
    rows = []
    for r in (r for r in part["rows"] if r["rho"] == rho):
        cells = [r["lam"]]
        for k in MEMORY_COLUMNS:
            mc = r["monte_carlo"][k]
            cells.append(f"{_g(r['closed'][k])} ({mc['mean'] / r['closed'][k]:.3f} ± {mc['se'] / mc['mean']:.3f})")
        rows.append(cells)
    return table(["λ"] + [f"E[(dh/dθ)²], θ = {v}" if k != "h2" else v for k, v in MEMORY_COLUMNS.items()], rows)


def memory_sensitivity(res):
    """The state's sensitivity against the memory, beside the error flow, per model."""
    part = res["sensitivity"]
    rows = [[r["model"], r["memory"], f"d h/d {r['param']}", _g(r["moment"]), _g(r["state"]), f"{r['decay']:.4f}",
             _g(r["ratio_10"]), _g(r["ratio_100"])] for r in part["rows"]]
    return table(["model", "memory", "θ", "mean ‖dh_T/dθ_p‖²", "E‖h_T‖²/H", "error decay rate",
                  "error ratio at lag 10", "at lag 100"], rows)


def memory_teacher(res):
    """The held-out loss after training, per teacher nu0 (rows) and student (columns)."""
    part = res["teacher"]
    students = [k for k in ("rnn", "lru", "cdiag") if any(r["student"] == k for r in part["runs"])]
    names = {"rnn": "tanh Elman RNN", "lru": "LRU", "cdiag": "complex diagonal, no normalisation"}
    rows = []
    for nu0 in part["nu0"]:
        row = [nu0]
        for k in students:
            r = next(r for r in part["runs"] if r["student"] == k and r["nu0"] == nu0)
            row.append("diverged" if r["final_loss"] is None else _g(r["final_loss"]))
        rows.append(row)
    return table(["ν₀"] + [f"{names[k]} (lr {part['lr'][k]:g})" for k in students], rows)


def memory_timing(res):
    """One sentence: each part's wall time in the last run that wrote it."""
    names = {"closed": "closed forms", "sensitivity": "sensitivity", "teacher": "teacher-student", "pilot": "pilot"}
    parts = [f"{names[k]} {res[k]['part_seconds']:.0f} s" for k in names if k in res and "part_seconds" in res[k]]
    return "Wall time of each part on 2 cores shared with other jobs: " + ", ".join(parts) + "."


def memory_pilot(res):
    """The learning rates' pilot: held-out loss per student (rows) and rate (columns)."""
    p = res["pilot"]
    names = {"rnn": "tanh Elman RNN", "lru": "LRU", "cdiag": "complex diagonal, no normalisation"}
    rows = []
    for k in ("rnn", "lru", "cdiag"):
        mine = {r["lr"]: r for r in p["runs"] if r["student"] == k}
        rows.append([names[k]] + ["diverged" if mine[lr]["final_loss"] is None else _g(mine[lr]["final_loss"])
                                  for lr in p["lrs"]] + [f"{res['teacher']['lr'][k]:g}"])
    return table(["student"] + [f"lr {lr:g}" for lr in p["lrs"]] + ["chosen"], rows)


def memory_teacher_setup(res):
    """One sentence: what the teacher part ran and how long it took."""
    p = res["teacher"]
    return (f"{len(p['runs'])} runs ({len(p['nu0'])} values of ν₀ × {len(p['runs']) // len(p['nu0'])} students), "
            f"{p['steps']} Adam updates of {p['batch']} sequences of T = {p['length']} each, teacher of "
            f"{p['teacher_units']} complex units, students of H = {p['hidden']}, seed {p['seed']}, "
            f"{p['jobs']} processes: {p['wall_seconds']:.0f} s of wall time.")


def copy_1000(res):
    """experiments/copy_1000.py's runs: updates, budget, time per update, held-out losses against the
    memoryless baseline, recall of the copied symbols."""
    b = res["baseline"]

    def reached(r):
        hit = next((h for h in r["held_out"] if h["test_loss"] < b / 100), None)
        return "not reached" if hit is None else f"update {hit['update']}, {hit['wall_s'] / 60:.1f} min"

    rows = [[r["label"], f"{r['minutes']:g}", r["updates"], f"{r['wall_s'] / r['updates']:.2f}",
             f"{r['best_test_loss']:.3g} ({r['best_test_loss'] / b:.3g}×)",
             f"{r['final_test_loss']:.3g} ({r['final_test_loss'] / b:.3g}×)", f"{100 * r['final_test_recall']:.1f}%",
             reached(r)] for r in res["runs"]]
    return table(["run", "budget (min)", "updates", "s per update", "best held-out loss (× baseline)",
                  "last held-out loss (× baseline)", "copied symbols right (last)", "held-out loss < 1% of baseline"],
                 rows)


def copy_1000_setup(res):
    """One sentence: where and how experiments/copy_1000.py ran."""
    load = res["load_average_1min"]
    orth = [r["max_orthogonality"] for r in res["runs"] if "max_orthogonality" in r]
    return (f"Ran at nice {res['nice']} on {res['cpus']} cores beside other jobs (1-minute load average "
            f"{min(load):.1f} to {max(load):.1f} at the runs' starts and ends), bptt {res['bptt_version']} at "
            f"commit {res['commit']}, {res['total_s'] / 60:.0f} minutes in all; memoryless baseline "
            f"{res['baseline_text']} = {res['baseline']:.5f} nats per step, target 1% of it "
            f"({res['baseline'] / 100:.6f}); the paper's script runs {res['paper_iterations']} updates"
            + (f"; W = expm(A) stayed orthogonal to {max(orth):.1e} (max |WᵀW − I|, float32 W) after every update"
               if orth else "") + ".")


RENDERERS = {
    "copy-1000": copy_1000,
    "copy-1000-setup": copy_1000_setup,
    "success-table": success_table,
    "success-losses": success_losses,
    "parity": parity,
    "copy-table": copy_table,
    "adding-t100": adding_t100,
    "flow-phase": flow_phase,
    "sweep-success": sweep_success,
    "memory-closed": memory_closed,
    "memory-sensitivity": memory_sensitivity,
    "memory-teacher": memory_teacher,
    "memory-teacher-setup": memory_teacher_setup,
    "memory-pilot": memory_pilot,
    "memory-timing": memory_timing,
}


# --- pages --------------------------------------------------------------------------------------

def arguments(words):
    return [int(w) if w.isdigit() else w for w in words]


def regions(text):
    """[(source, renderer name, arguments)] of a page's generated regions."""
    out = []
    for m in REGION.finditer(text):
        name, *args = m.group(3).split()
        out.append((m.group(2), name, arguments(args)))
    return out


def render(text, root=ROOT):
    """The page with every generated region written again from its source under root."""
    def one(m):
        name, *args = m.group(3).split()
        body = RENDERERS[name](read(Path(root) / m.group(2)), *arguments(args))
        return m.group(1) + body.rstrip() + "\n" + m.group(5)
    return REGION.sub(one, text)


def load(name, path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def png(fig) -> bytes:
    """A figure's PNG bytes at 150 dpi (bptt.plots.finish first), with no Software entry: the same
    results file gives the same bytes."""
    import io
    from bptt import plots

    plots.finish(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=plots.DPI, metadata={"Software": None})
    return buf.getvalue()


def drawn(root=ROOT):
    """{path: PNG bytes} of every figure of FIGURES, drawn from its results file under root."""
    out = {}
    for source, script in FIGURES:
        module = load(Path(script).stem, Path(root) / script)
        for path, fig in module.figures(read(Path(root) / source)).items():
            out[path] = png(fig)
    return out


def main(argv):
    if len(argv) == 3 and argv[0] == "--from-sweep":
        Path(argv[2]).parent.mkdir(parents=True, exist_ok=True)
        Path(argv[2]).write_text(json.dumps(summarise_sweep(argv[1]), indent=1) + "\n")
        print(f"wrote {argv[2]}")
        return 0
    if argv not in (["--write"], ["--check"]):
        sys.exit("usage: python docs/generate.py --write | --check")
    stale = []
    for page in PAGES:
        path = ROOT / page
        text = path.read_text()
        new = render(text)
        if new != text:
            stale.append(page)
            if argv == ["--write"]:
                path.write_text(new)
    for path, data in drawn().items():
        if not (ROOT / path).exists() or (ROOT / path).read_bytes() != data:
            stale.append(path)
            if argv == ["--write"]:
                (ROOT / path).write_bytes(data)
    verb = "rewrote" if argv == ["--write"] else "out of date:"
    print(f"{verb} {', '.join(stale)}" if stale else "every generated region matches its results file")
    return 1 if stale and argv == ["--check"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
