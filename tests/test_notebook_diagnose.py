"""examples/diagnose-pytorch.ipynb: committed with the outputs of a full run, its cells those
examples/build_diagnose_notebook.py writes; executed again top to bottom in a real Jupyter kernel
(the lesson notebook's mechanism, tests/test_notebook_exec.py), where any cell that raises fails the
test (its last cell asserts the held-out criterion itself). The printed results of that run are then
read back: the fixed model learns, the broken one does not, the fix is the advised value, and the
Keras LSTM's cell path shrinks by sigma(1) per step.

Under CI=true a missing nbclient, nbformat, ipykernel, torch or keras fails (conftest.need).
"""
import importlib.util
import json
import math
import re
from pathlib import Path

import pytest

from conftest import need
from test_notebook_exec import _kernel_manager

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
NOTEBOOK = EXAMPLES / "diagnose-pytorch.ipynb"


def _generator():
    spec = importlib.util.spec_from_file_location("build_diagnose_notebook", EXAMPLES / "build_diagnose_notebook.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _texts(cell):
    """What a cell printed (nbformat stores a text as one string or as a list of lines)."""
    return "".join("".join(o["text"]) for o in cell.get("outputs", []) if o.get("output_type") == "stream")


def _cell_with(cells, needle):
    hits = [c for c in cells if c["cell_type"] == "code" and needle in "".join(c["source"])]
    assert len(hits) == 1, f"{len(hits)} cells contain {needle!r}"
    return hits[0]


def _committed():
    return json.loads(NOTEBOOK.read_text())["cells"]


def test_committed_cells_are_what_the_generator_writes():
    need("nbformat")
    built = _generator().build().cells
    committed = _committed()
    assert [(c["cell_type"], c["id"], "".join(c["source"])) for c in committed] == \
        [(c.cell_type, c.id, c.source) for c in built], "run: python examples/build_diagnose_notebook.py"


def test_committed_outputs_are_those_of_one_full_run():
    code = [c for c in _committed() if c["cell_type"] == "code"]
    assert [c["execution_count"] for c in code] == list(range(1, len(code) + 1))
    for c in code:
        assert c["outputs"], f"cell {c['id']} has no output"
        assert not [o for o in c["outputs"] if o["output_type"] == "error" or o.get("name") == "stderr"], c["id"]
    page = [c for c in code if "".join(c["source"]) == "d"]  # the diagnosis's own HTML view
    assert len(page) == 1 and "bptt-diagnosis" in "".join(page[0]["outputs"][0]["data"]["text/html"])
    _criterion(_texts(_cell_with(_committed(), "acc_broken, acc_fixed = ")))


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The generator's cells after a run in a kernel of this interpreter (outputs as plain dicts)."""
    need("torch")
    need("keras")
    nbclient = need("nbclient")
    need("nbformat")
    nb = _generator().build()
    km = _kernel_manager(tmp_path_factory.mktemp("kernel"))
    nbclient.NotebookClient(nb, km=km, timeout=300, allow_errors=False,
                            resources={"metadata": {"path": str(EXAMPLES)}}).execute()
    return json.loads(json.dumps(nb.cells))


def _criterion(text):
    """(broken, fixed) held-out accuracies from the last cell's lines, checked against the criterion."""
    broken = float(re.search(r"training, held-out accuracy ([\d.]+) \(chance ([\d.]+)\)", text).group(1))
    fixed = float(re.search(r"the same training reaches held-out accuracy ([\d.]+)\.", text).group(1))
    assert fixed >= 0.9 and broken < 0.4, (broken, fixed)
    return broken, fixed


def test_it_runs_top_to_bottom_and_the_fixed_model_learns(executed):
    code = [c for c in executed if c["cell_type"] == "code"]
    assert [c["execution_count"] for c in code] == list(range(1, len(code) + 1))
    for c in code:
        assert not [o for o in c["outputs"] if o["output_type"] == "error" or o.get("name") == "stderr"], c["id"]
    _criterion(_texts(_cell_with(executed, "acc_broken, acc_fixed = ")))
    page = [c for c in code if c["source"] == "d"]
    assert len(page) == 1 and "bptt-diagnosis" in page[0]["outputs"][0]["data"]["text/html"]
    trained = _texts(_cell_with(executed, "fixed = train(fixed_init)")).splitlines()
    assert float(trained[-1].rsplit(" ", 1)[1]) >= 0.9


def test_the_diagnosis_gradients_are_pytorchs_and_the_fix_is_the_advised_value(executed):
    diag = _texts(_cell_with(executed, "d, m64 = diagnose(broken)"))
    assert float(re.search(r"PyTorch's \.grad: (\S+)", diag).group(1)) < 1e-12
    advised = [float(v) for v in re.findall(r"raise the f gate's bias by about ([\d.]+)\)", diag)]
    fix = _texts(_cell_with(executed, "raise_by = ["))
    applied = [float(v) for v in re.findall(r"raise the forget bias by ([\d.]+) ", fix)]
    assert len(advised) == len(applied) == 2
    assert [f"{v:.3g}" for v in applied] == [f"{v:.3g}" for v in advised]
    biases = [float(v) for v in re.search(r"forget biases now: \[(.+)\]", fix).group(1).split(", ")]
    assert biases == pytest.approx([-3 + v for v in applied], abs=1e-4)
    before = _texts(_cell_with(executed, "d_fixed, _ = diagnose(fixed_init)"))
    kept = [float(v) for v in re.findall(r"memory path after \d+ steps ([\d.]+);", before)]
    assert len(kept) == 2 and all(0.3 < v < 0.7 for v in kept)  # about half, as the advice aims


def test_the_keras_cell_path_shrinks_by_sigma_of_its_forget_bias(executed):
    text = _texts(_cell_with(executed, "import keras"))
    ratios = [float(v) for v in re.search(r"lags 1 to 8: (.+)", text).group(1).split()]
    sigma1 = 1 / (1 + math.exp(-1))
    assert len(ratios) == 8 and max(abs(r - sigma1) for r in ratios) < 1e-3
    assert "bptt diagnosis of a Keras LSTM" in text
