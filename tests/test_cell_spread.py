"""A built-in cell lives in its own files: the code that names it (identifiers and string literals,
not comments or docstrings) is its cell file, its fast kernels and the files that map it to
PyTorch, Keras/TensorFlow and JAX. Everything else (the verbs, training, checkpoints, sweeps, the
report, `bptt diagnose`, the stacks' import and export) asks the registry, so that a new cell
comes in without touching them. Read with `tokenize` and `ast`; nothing is imported."""
from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "bptt"
FRAMEWORKS = {"frameworks/torch.py", "frameworks/tensorflow.py", "frameworks/jax.py"}
HOMES = {"lstm": {"cells/lstm.py", "fast/lstm.py"} | FRAMEWORKS,
         "gru": {"cells/gru.py", "fast/gru.py"} | FRAMEWORKS}


def docstrings(tree) -> set:
    """The (line, column) where each module, class and function docstring starts."""
    where = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and \
                    isinstance(first.value.value, str):
                where.add((first.lineno, first.col_offset))
    return where


def naming(word) -> dict:
    """{file under src/bptt: lines} where a name or a string (not a docstring) holds `word` as a word
    (lstm in "nn.LSTM", "lstm" and gru_step; not in minlstm, which names another cell)."""
    found = {}
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text()
        skip = docstrings(ast.parse(text))
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.NAME or (tok.type == tokenize.STRING and tok.start not in skip):
                if word in (w.lower() for w in re.split(r"[^A-Za-z0-9]+|_", tok.string)):
                    found.setdefault(path.relative_to(SRC).as_posix(), []).append(tok.start[0])
    return found


def test_the_word_match_finds_what_it_should():
    assert "frameworks/torch.py" in naming("lstm")  # nn.LSTM's mapping lives there
    assert not any(f.endswith("minlstm.py") for f in naming("lstm"))


@pytest.mark.parametrize("cell", sorted(HOMES))
def test_a_built_in_cell_is_named_in_its_own_files_only(cell):
    found = naming(cell)
    outside = {f: lines for f, lines in found.items() if f not in HOMES[cell]}
    assert not outside, f"{cell} is named outside its files (read the registry instead): {outside}"
    assert len(found) <= 6, found
