"""Shared test helpers.

Framework cross-checks use `need(name)`: it returns the imported module, skips when the framework
is missing on a developer's machine, and fails when CI=true (CI installs every framework, so a
missing one there is a broken set-up, never a reason to skip).
"""
import importlib
import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1] / "data"


def need(name):
    try:
        return importlib.import_module(name)
    except ImportError as e:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{name} is required when CI=true but cannot be imported: {e}")
        pytest.skip(f"{name} is not installed (pip install 'bptt[all]')")


@pytest.fixture(params=["reference", "fast"])
def each_backend(request, monkeypatch):
    """Run the test once on each backend (BPTT_BACKEND), the reference engine and the fast one."""
    monkeypatch.setenv("BPTT_BACKEND", request.param)
    return request.param


def sentence(kind, call, *words):
    """call() raises exactly kind (ValueError or TypeError) with one line holding every word."""
    with pytest.raises((ValueError, TypeError)) as e:
        call()
    assert isinstance(e.value, kind) and "\n" not in str(e.value), repr(e.value)
    for w in words:
        assert w in str(e.value), (w, str(e.value))


def cli(argv, capsys, *words):
    """bptt argv exits 2 with one line `bptt <verb>: error: ...` on stderr holding every word."""
    from bptt.cli import main

    capsys.readouterr()
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith(f"bptt {argv[0]}: error: ") and "Traceback" not in "\n".join(err), err
    for w in words:
        assert w in err[-1], (w, err[-1])
    return err[-1]
