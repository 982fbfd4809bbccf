"""examples/vanishing-exploding-gradients.ipynb: committed without outputs, equal to what
examples/build_notebook.py writes, and executed top to bottom in a real Jupyter kernel (nbclient +
ipykernel, this interpreter as the kernel, examples/ as its working directory); any cell that
raises fails the test. The outputs of that run are then read back: the rich displays and the
printed checks must show what a fresh computation here gives.

Under CI=true a missing nbclient, nbformat, ipykernel or matplotlib fails (conftest.need), and
so does a framework the notebook had to skip.
"""
import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

import bptt
from conftest import need

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
NOTEBOOK = EXAMPLES / "vanishing-exploding-gradients.ipynb"


def _generator():
    spec = importlib.util.spec_from_file_location("build_notebook", EXAMPLES / "build_notebook.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_committed_notebook_has_no_outputs_and_no_execution_counts():
    raw = json.loads(NOTEBOOK.read_text())
    code = [c for c in raw["cells"] if c["cell_type"] == "code"]
    assert len(code) >= 10
    for c in code:
        assert c["outputs"] == [], f"cell {c.get('id')} holds outputs"
        assert c["execution_count"] is None, f"cell {c.get('id')} holds an execution count"


def test_committed_notebook_is_what_the_generator_writes():
    nbformat = need("nbformat")
    nbformat.validate(nbformat.read(NOTEBOOK, as_version=4))
    assert nbformat.writes(_generator().build()) + "\n" == NOTEBOOK.read_text(), \
        "run: python examples/build_notebook.py"


def _kernel_manager(tmp_path):
    """A kernel manager for this interpreter's ipykernel, whatever kernelspecs the machine has."""
    need("ipykernel")
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    spec_dir = tmp_path / "kernels" / "bptt-test"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "bptt test kernel", "language": "python"}))
    ksm = KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")], ensure_native_kernel=False)
    return KernelManager(kernel_name="bptt-test", kernel_spec_manager=ksm)


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The notebook after a run in a kernel: (nbformat node, every output's text and html by cell)."""
    nbformat = need("nbformat")
    nbclient = need("nbclient")
    need("matplotlib")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    km = _kernel_manager(tmp_path_factory.mktemp("kernel"))
    client = nbclient.NotebookClient(nb, km=km, timeout=300, allow_errors=False,
                                     resources={"metadata": {"path": str(EXAMPLES)}})
    client.execute()  # raises CellExecutionError at the first cell that fails
    return nb


def _texts(cell):
    out = []
    for o in cell.get("outputs", []):
        if o.get("output_type") == "stream":
            out.append(o["text"])
        elif "data" in o and "text/plain" in o["data"]:
            out.append(o["data"]["text/plain"])
    return "".join(out)


def _htmls(nb):
    return [o["data"]["text/html"] for c in nb.cells for o in c.get("outputs", [])
            if "data" in o and "text/html" in o["data"]]


def _cell_with(nb, needle):
    hits = [c for c in nb.cells if c.cell_type == "code" and needle in c.source]
    assert len(hits) == 1, f"{len(hits)} cells contain {needle!r}"
    return hits[0]


def test_notebook_runs_top_to_bottom_in_a_kernel(executed):
    code = [c for c in executed.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    for c in code:
        assert not [o for o in c.outputs if o.output_type == "error"]
        assert "Traceback" not in _texts(c)


def test_rich_displays_show_the_numbers_a_fresh_computation_gives(executed):
    from test_display import Shown

    model, x, y = bptt.seed_example()
    report = bptt.check(model, x, y)
    shown = [Shown(h) for h in _htmls(executed)]
    checks = [s for s in shown if "tol" in s.keys and "W.max_rel" in s.keys]
    assert len(checks) == 1 and checks[0].label("result") == "passed"
    for r in report.rows:
        assert checks[0].number(f"{r.name}.max_rel") == pytest.approx(r.max_rel, rel=1e-6, abs=1e-15)
    models = [s for s in shown if "W[0, 1]" in s.keys]
    assert models and models[0].number("W[0, 1]") == model.W[0, 1]
    flows = [s for s in shown if "dE_ds[2, 0]" in s.keys]
    fl = bptt.flow(model, x, y)
    assert len(flows) == 1 and flows[0].number("dE_ds[2, 0]") == pytest.approx(fl.dE_ds[2, 0], rel=1e-12)
    assert flows[0].number("loss") == pytest.approx(fl.loss, rel=1e-12)
    trains = [s for s in shown if "test_error" in s.keys]
    assert len(trains) == 2 and all(s.label("task") == "temporal" for s in trains)
    images = [o for c in executed.cells for o in c.get("outputs", []) if "data" in o and "image/png" in o["data"]]
    assert len(images) == 3  # the heatmap, the lag curves, the training snapshots


def test_printed_checks_hold(executed):
    terms = _texts(_cell_with(executed, 'terms = fl.terms("W", 2)'))
    diffs = [float(line.rsplit(" ", 1)[1]) for line in terms.splitlines()]
    assert len(diffs) == 5 and max(diffs) < 1e-15
    fixed = _texts(_cell_with(executed, "the one-line fix"))
    assert [float(line.rsplit(" = ", 1)[1]) < 1e-15 for line in fixed.splitlines()] == [True] * 3
    bugs = _texts(_cell_with(executed, "x_onehot = "))
    assert "operands could not be broadcast" in bugs and "x.argmax(-1) = [1, 0, 2]" in bugs
    assert bugs.rstrip().endswith("True")
    trunc = _texts(_cell_with(executed, "for K in (0, 1):")).splitlines()
    assert [float(line.split()[-1]) < 1e-15 for line in trunc[1:]] == [True] * 2
    long = _texts(_cell_with(executed, "f9, K = flows[0.9][0], 10")).splitlines()[-1]
    assert long.startswith("rho = 0.9, K = 10:") and float(long.split()[-1]) < 1e-12
    bounds = _texts(_cell_with(executed, "bound holds everywhere"))
    assert [line.split()[-1] for line in bounds.splitlines()[1:]] == ["True"] * 5
    mcr = _texts(_cell_with(executed, "from min_char_rnn import lossFun"))
    assert float(mcr.splitlines()[-1].split(": ")[1]) < 1e-15
    clip = _texts(_cell_with(executed, "m5 = bptt.random_rnn"))
    assert "by global norm 1.000000" in clip and clip.rstrip().endswith("clipped inside the loss: FAIL")
    assert "unclipped: pass" in clip


def test_each_installed_framework_agrees_and_none_is_skipped_in_ci(executed):
    out = _texts(_cell_with(executed, "frameworks.available()"))
    present = bptt.frameworks.available()
    skipped = [n for n in bptt.frameworks.FRAMEWORKS if f"{n} is not installed" in out]
    assert skipped == [n for n in bptt.frameworks.FRAMEWORKS if n not in present]
    if os.environ.get("CI", "").lower() == "true":
        assert not skipped, f"CI=true, but the notebook skipped {skipped}"
    from test_display import Shown
    comparisons = [Shown(h) for h in _htmls(executed) if "rtol" in h and "max_rel_err" in h]
    assert len(comparisons) == (2 if present else 0)
    for s in comparisons:
        assert s.label("result") == "passed"
        assert {k.split(".")[0] for k in s.keys if k.endswith(".max_rel_err")} == set(present)


def test_the_readme_says_how_to_install_what_the_notebook_needs():
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert "bptt[plot]" in extras["notebook"] and any(r.startswith("notebook") for r in extras["notebook"])
    readme = (ROOT / "README.md").read_text()
    assert "pip install -e '.[notebook]'" in readme and "jupyter notebook examples/vanishing-exploding" in readme
