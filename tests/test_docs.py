"""Every code block of the README and the docs pages runs, and prints what the page says it prints.

The rules a page follows (its fenced blocks, by info string):

- ```python: run in a fresh interpreter, in a scratch folder that holds links to the repository's
  data/, sweeps/, experiments/ and examples/ (so a block may read them, and what it writes stays there).
- ```sh: a transcript when a line starts with `$ ` (each such line is a command, the lines after it
  up to the next `$ ` its expected output); otherwise every line that is not blank or a comment is
  a command, required to exit 0. Commands run through the shell in the same scratch folder, with
  this interpreter's bin/ first on PATH (so `bptt` and `python` are the ones under test).
- ```toml: parsed; a sweep spec (it has `kind =`) is loaded by `bptt.sweep`, which validates it.
- ```text (or a bare ```) right after a python block: what that block prints.
- ```text elsewhere: formulas and messages, not run.
- `no-run: REASON` after the language: not run (long training, installs, a cluster), and the
  reason is required. `needs=torch,jax` names the optional packages the block imports.
- Every command and python block is watched while it runs (tests/watchdog.py): one that prints
  nothing, on stdout or stderr, for more than watchdog.GAP = 5 s fails, naming the page, its first
  line and the gap. Long work keeps the gaps short with its own progress lines (bptt.progress).
  BPTT_DOCS_GAPS=FILE appends each block's longest gap to FILE, a JSON line a block.
- An output block's `rtol=` / `atol=` compare numbers within a tolerance (digits that depend on
  the machine's BLAS or on Numba); text and every other number must match exactly, whitespace aside.

Numbers quoted from results files sit between `<!-- generated: SOURCE NAME ... -->` and
`<!-- end -->`, written by `python docs/generate.py --write` (`make docs`); a test renders them
again and fails when a page no longer matches its source.
"""
import hashlib
import importlib.util
import json
import math
import os
import re
import shlex
import sys
from pathlib import Path

import pytest

from conftest import need
from watchdog import GAP, marked, silence, watched

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["README.md", "docs/engine.md", "docs/frameworks.md", "docs/analysis.md", "docs/training.md",
         "docs/sweeps.md", "docs/approx.md", "docs/performance.md", "docs/security.md", "docs/memory.md",
         "docs/diagnose.md", "docs/cures.md"]
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.S | re.M)
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
LINKED = ["data", "sweeps", "experiments", "examples"]
WRITTEN = ["runs", "report.html", "report-quick.html", "explorer.html", "diagnosis.html"]  # what .gitignore keeps out of git
CORPUS_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"


def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- reading a page ---------------------------------------------------------------------------

def blocks(text):
    """[(info dict, body, the text between the previous block and this one)] of a page."""
    out, end = [], 0
    for m in FENCE.finditer(text):
        out.append((parse_info(m.group(1)), m.group(2), text[end:m.start()]))
        end = m.end()
    return out


def parse_info(info):
    lang, _, rest = info.strip().partition(" ")
    attrs = {"lang": lang or "text"}
    if rest.strip().startswith("no-run:"):
        attrs["no-run"] = rest.strip()[len("no-run:"):].strip()
        return attrs
    for word in rest.split():
        key, _, value = word.partition("=")
        attrs[key] = value
    return attrs


def cases():
    """Each runnable block with its expected output, as (page, index, info, code, output info, output)."""
    for page in PAGES:
        found = blocks((ROOT / page).read_text())
        for i, (info, body, _) in enumerate(found):
            if info["lang"] not in ("python", "sh", "toml"):
                continue
            following = found[i + 1] if i + 1 < len(found) else None
            output = None
            if info["lang"] == "python" and following and following[2].strip() == "" \
                    and following[0]["lang"] == "text":
                output = following
            yield page, i, info, body, output


def all_cases():
    return [pytest.param(*c, id=f"{c[0]}#{c[1]}") for c in cases()]


# --- comparing what a block prints with what the page says -------------------------------------

def tokens(line):
    """A line as alternating text and numbers, whitespace runs collapsed."""
    parts, end = [], 0
    for m in NUMBER.finditer(line):
        parts.append(" ".join(line[end:m.start()].split()))
        parts.append(float(m.group()))
        end = m.end()
    parts.append(" ".join(line[end:].split()))
    return parts


def same_line(got, want, rtol, atol):
    a, b = tokens(got), tokens(want)
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if isinstance(y, float):
            if not (x == y or (math.isfinite(y) and abs(x - y) <= atol + rtol * abs(y))):
                return False
        elif x != y:
            return False
    return True


def assert_prints(got, want, info):
    rtol, atol = float(info.get("rtol", 0)), float(info.get("atol", 0))
    got, want = got.strip().splitlines(), want.strip().splitlines()
    assert len(got) == len(want), f"{len(got)} lines printed, the page shows {len(want)}:\n" + "\n".join(got)
    for g, w in zip(got, want):
        assert same_line(g, w, rtol, atol), f"printed\n  {g}\nthe page shows\n  {w}\n(rtol={rtol}, atol={atol})"


# --- running ------------------------------------------------------------------------------------

@pytest.fixture
def scratch(tmp_path):
    for name in LINKED:
        (tmp_path / name).symlink_to(ROOT / name)
    (tmp_path / "docs").mkdir()
    return tmp_path


def environment():
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.setdefault("MPLBACKEND", "Agg")
    env["PYTHONUNBUFFERED"] = "1"  # lines arrive as printed, as in a terminal: the watch sees when they come
    return env


def run_watched(args, cwd, page, first, shell=False, marks=False):
    """Run a command or block, watched for silence; fails on a non-zero exit or a gap over GAP."""
    got = watched(args, cwd=cwd, env=environment(), shell=shell, timeout=600, marks=marks)
    record = os.environ.get("BPTT_DOCS_GAPS")
    if record:
        with open(record, "a") as f:
            f.write(json.dumps({"page": page, "first": first, "gap": round(got.gap, 2), "at": round(got.at, 2),
                                "before": got.before}) + "\n")
    assert not got.timed_out, f"{page}: {first!r} ran past 600 s"
    assert got.returncode == 0, f"{page}: {first}\nexit {got.returncode}\n{got.stdout}\n{got.stderr}"
    assert got.gap <= GAP, f"{page}: " + silence(got, repr(first))
    return got


def shell(command, cwd, page="a page"):
    return run_watched(command, cwd, page, f"$ {command}", shell=True).stdout


def first_line(code):
    return next((l.strip() for l in code.splitlines() if l.strip()), "")


def commands(body):
    """[(command, expected output or None)] of a sh block."""
    lines = body.splitlines()
    if any(l.startswith("$ ") for l in lines):
        out = []
        for line in lines:
            if line.startswith("$ "):
                out.append([line[2:], []])
            elif out:
                out[-1][1].append(line)
        return [(c, "\n".join(o)) for c, o in out]
    return [(re.sub(r"\s+#\s.*$", "", l).strip(), None) for l in lines if l.strip() and not l.lstrip().startswith("#")]


@pytest.mark.parametrize("page,index,info,code,output", all_cases())
def test_block_runs_and_prints_what_the_page_says(page, index, info, code, output, scratch):
    if "no-run" in info:
        assert info["no-run"], f"{page}: a no-run block must say why"
        return
    for name in filter(None, info.get("needs", "").split(",")):
        need(name)
    if info["lang"] == "python":
        # watched from after its leading imports to its last line (tests/watchdog.py says why)
        run = run_watched([sys.executable, "-c", marked(code)], scratch, page, first_line(code), marks=True)
        if output is not None:
            assert_prints(run.stdout, output[1], output[0])
    elif info["lang"] == "sh":
        for command, want in commands(code):
            got = shell(command, scratch, page)
            if want is not None and want.strip():
                assert_prints(got, want, info)
        stray = sorted(p.name for p in scratch.iterdir() if p.name not in LINKED + ["docs"] + WRITTEN)
        assert not stray, f"{page}: a command wrote {stray} where a user's clone would keep it (write under runs/)"
    else:
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib
        spec = tomllib.loads(code)
        if "kind" in spec:
            from bptt import sweep
            path = scratch / "spec.toml"
            path.write_text(code)
            sweep.load_spec(path)


def test_the_pages_have_runnable_blocks_and_few_are_skipped():
    found = list(cases())
    assert len(found) >= 25
    skipped = [c for c in found if "no-run" in c[2]]
    assert len(skipped) <= len(found) // 3, [f"{p}#{i}: {c['no-run']}" for p, i, c, _, _ in skipped]


def test_every_block_has_a_known_language():
    for page in PAGES:
        for info, _, _ in blocks((ROOT / page).read_text()):
            assert info["lang"] in ("python", "sh", "toml", "text"), f"{page}: a block of language {info['lang']!r}"


# --- comparing outputs: the comparison itself -------------------------------------------------

def test_the_comparison_holds_text_exactly_and_numbers_within_the_tolerance():
    assert same_line("E = 3.285370  ok", "E =  3.285370 ok", 0, 0)
    assert not same_line("E = 3.285371", "E = 3.285370", 0, 0)
    assert same_line("E = 3.285371", "E = 3.285370", 1e-6, 0)
    assert not same_line("W 1.0e-12 fail", "W 1.0e-12 ok", 0, 1e-10)
    assert same_line("W 3.2e-13 ok", "W 1.0e-12 ok", 0, 1e-10)
    assert not same_line("W 1 2", "W 1", 1, 1)
    assert not same_line("nan", "1.0", 1, 1)


def test_commands_of_a_transcript_and_of_a_list():
    assert commands("$ bptt demo\nE = 1\n$ bptt check\n") == [("bptt demo", "E = 1"), ("bptt check", "")]
    assert commands("# comment\nbptt sweep a.toml --out runs/a   # runs it\n\n") == [("bptt sweep a.toml --out runs/a", None)]


# --- numbers quoted from results files -------------------------------------------------------

def test_generated_regions_match_their_results_files():
    generate = load("docs_generate", ROOT / "docs" / "generate.py")
    for page in PAGES:
        text = (ROOT / page).read_text()
        assert generate.render(text, ROOT) == text, f"{page} no longer matches its results files: run make docs"


def test_generated_regions_exist_and_name_their_sources():
    generate = load("docs_generate", ROOT / "docs" / "generate.py")
    regions = [r for page in PAGES for r in generate.regions((ROOT / page).read_text())]
    assert len(regions) >= 5
    for source, name, _ in regions:
        assert (ROOT / source).is_file(), source
        assert name in generate.RENDERERS, name


def test_a_changed_result_changes_the_page(tmp_path):
    generate = load("docs_generate", ROOT / "docs" / "generate.py")
    page = (ROOT / "docs" / "training.md").read_text()
    source = "experiments/results/min_char_rnn_parity.json"
    assert f"<!-- generated: {source} " in page
    data = json.loads((ROOT / source).read_text())
    data["summary"]["final_smooth_bptt"][0] += 1.0
    (tmp_path / "experiments" / "results").mkdir(parents=True)
    (tmp_path / source).write_text(json.dumps(data))
    for other in generate.regions(page):
        if other[0] != source:
            (tmp_path / other[0]).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / other[0]).write_bytes((ROOT / other[0]).read_bytes())
    assert generate.render(page, tmp_path) != page


def test_the_generated_figures_are_the_committed_bytes_drawn_twice_alike():
    # make docs rewrites every figure of generate.FIGURES: drawn twice from the same results file they
    # are the same bytes (no date, no version), and the committed files are those bytes (git status clean)
    need("matplotlib")
    generate = load("docs_generate", ROOT / "docs" / "generate.py")
    first, second = generate.drawn(), generate.drawn()
    assert first.keys() == second.keys() and len(first) >= 3
    for path, data in first.items():
        assert data == second[path], f"{path}: two drawings differ"
        assert b"tEXtDate" not in data and b"tEXtSoftware" not in data, path
        assert (ROOT / path).read_bytes() == data, f"{path} is not what make docs draws: run make docs"


def test_the_performance_page_quotes_the_results_file():
    # the page's tables are written by benchmarks/tables.py from benchmarks/results/results.json;
    # loaded by path, not as the benchmarks package, which sets thread variables on import
    tables = load("bench_tables", ROOT / "benchmarks" / "tables.py")
    page = (ROOT / "docs" / "performance.md").read_text()
    want = tables.tables(json.loads(tables.RESULTS.read_text()))
    assert tables.spliced(page, want) == page, "run: python -m benchmarks.tables --write docs/performance.md"


def test_a_run_of_some_benchmark_parts_keeps_the_other_parts_results():
    harness = load("bench_tables", ROOT / "benchmarks" / "tables.py")
    old = {"records": [{"part": "flow", "v": 1}, {"part": "flow-memory", "v": 2}, {"part": "explore", "v": 3},
                       {"part": "flowers", "v": 4}],
           "targets": [{"part": "flow", "what": "a"}, {"part": "explore", "what": "b"}]}
    new = {"records": [{"part": "flow", "v": 5}], "targets": [{"part": "flow", "what": "c"}]}
    got = harness.merged(old, new, ["flow"])
    assert got["records"] == [{"part": "explore", "v": 3}, {"part": "flowers", "v": 4}, {"part": "flow", "v": 5}]
    assert got["targets"] == [{"part": "explore", "what": "b"}, {"part": "flow", "what": "c"}]
    assert harness.merged(None, new, ["flow"]) == new


# --- the pages themselves -----------------------------------------------------------------------

def test_each_docs_page_opens_with_a_table_of_contents_that_links_its_sections():
    for page in PAGES[1:]:
        text = (ROOT / page).read_text()
        outside = FENCE.sub("", text)
        sections = re.findall(r"^## (.+)$", outside, re.M)
        toc = re.findall(r"^- \[(.+?)\]\(#([^)]+)\)$", outside.split("\n## ", 1)[0], re.M)
        assert sections and [t for t, _ in toc] == sections, f"{page}: the contents do not list its sections"
        for title, anchor in toc:
            assert anchor == slug(title), f"{page}: #{anchor} does not link to {title!r}"


def slug(title):
    """GitHub's anchor of a heading."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def test_links_between_pages_point_at_files_that_exist_or_are_announced():
    announced = {"docs/explorer.md", "examples/vanishing-exploding-gradients.ipynb"}
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", (ROOT / page).read_text()):
            if "://" in target:
                continue
            path = (ROOT / page).parent / target
            rel = os.path.relpath(path.resolve(), ROOT)
            assert path.exists() or rel in announced, f"{page} links to {target}, which does not exist"


def test_the_readme_is_a_front_page():
    text = (ROOT / "README.md").read_text()
    assert len(text.encode()) < 12_000
    for verb in ("demo", "check", "flow", "report", "train", "sample", "evaluate", "sweep", "approx", "explore"):
        assert f"`bptt {verb}" in text, verb
    for extra in ("torch", "jax", "tensorflow", "frameworks", "plot", "sweep", "browser", "all", "test"):
        assert f"`{extra}`" in text, extra


def test_no_page_reaches_outside_the_repository():
    """Every path a page names with ../ resolves to a file inside the repository."""
    for page in PAGES + ["data/README.md"]:
        for rel in re.findall(r"\.\./[\w./-]*\w", (ROOT / page).read_text()):
            target = ((ROOT / page).parent / rel).resolve()
            assert target.is_relative_to(ROOT) and target.exists(), (page, rel)


def test_the_corpus_is_the_one_data_readme_names():
    corpus = ROOT / "data" / "tinyshakespeare.txt"
    assert hashlib.sha256(corpus.read_bytes()).hexdigest() == CORPUS_SHA256
    assert CORPUS_SHA256 in (ROOT / "data" / "README.md").read_text()
