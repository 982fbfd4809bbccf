"""Every Python block of the docs pages listed here runs, and prints what the page says it prints.

A block of ```python followed directly by a plain ``` block is run in a fresh interpreter; the
second block is its expected output, compared line by line.
"""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["docs/engine.md", "docs/approx.md"]
PAIR = re.compile(r"```python\n(.*?)```\n```\n(.*?)```", re.S)


def examples():
    for page in PAGES:
        for i, (code, output) in enumerate(PAIR.findall((ROOT / page).read_text())):
            yield pytest.param(code, output, id=f"{page}#{i}")


@pytest.mark.parametrize("code,output", list(examples()))
def test_docs_example_prints_what_the_page_says(code, output):
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines() == output.strip().splitlines()


def test_every_page_has_examples():
    assert len(list(examples())) >= 2


def test_the_performance_page_quotes_the_results_file():
    # the page's tables are written by benchmarks/tables.py from benchmarks/results/results.json;
    # loaded by path, not as the benchmarks package, which sets thread variables on import
    import importlib.util
    import json
    spec = importlib.util.spec_from_file_location("bench_tables", ROOT / "benchmarks" / "tables.py")
    tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tables)
    page = (ROOT / "docs" / "performance.md").read_text()
    want = tables.tables(json.loads(tables.RESULTS.read_text()))
    assert tables.spliced(page, want) == page, "run: python -m benchmarks.tables --write docs/performance.md"
